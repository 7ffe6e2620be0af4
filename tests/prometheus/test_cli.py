"""`prescaler prometheus backfill` end to end: a trace into blocks Prometheus then serves."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from forecaster.prometheus.cli import register
from forecaster.prometheus.config import PrometheusConfig
from forecaster.prometheus.loader import load_history
from tests.promfixture import SKIP_MESSAGE, start_prometheus


@pytest.fixture()
def app():
    app = typer.Typer()
    register(app)
    return app


def small_trace(tmp_path):
    index = pd.date_range("2025-01-05T16:00Z", periods=180, freq="60s", tz="UTC")
    rows = ["timestamp,requests,prompt_tokens,output_tokens"]
    for i, t in enumerate(index):
        cell = "" if 50 <= i < 53 else str(10 + i % 7)  # a three-minute gap
        rows.append(f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{cell},{cell and int(cell) * 100},{cell and int(cell) * 20}")
    path = tmp_path / "trace.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_backfill_then_prometheus_serves_it(app, tmp_path):
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        pytest.skip(SKIP_MESSAGE)
    trace = small_trace(tmp_path)
    out = tmp_path / "tsdb"
    kept = tmp_path / "history.om"
    result = CliRunner().invoke(
        app, ["prometheus", "backfill", str(trace), "--model-name", "demo", "--out", str(out),
              "--keep-openmetrics", str(kept)],
    )
    assert result.exit_code == 0, result.output
    assert "backfilled model_name='demo'" in result.output and kept.read_text().endswith("# EOF\n")
    server = start_prometheus(out, tmp_path)
    try:
        got = load_history(PrometheusConfig(url=server.url), model_name="demo",
                           start="2025-01-05T16:00Z", end="2025-01-05T19:00Z")
    finally:
        server.stop()
    assert got["requests"].isna().sum() == 4  # the 3-minute gap and the minute after it
    assert got["output_tokens"].iloc[0] == 200.0 and got["prompt_tokens"].iloc[-1] == 100.0 * (10 + 179 % 7)


@pytest.mark.parametrize(
    "args, message",
    [
        pytest.param(["missing.csv", "--model-name", "m", "--out", "o"], "missing.csv", id="no-trace"),
        pytest.param(["TRACE", "--model-name", " ", "--out", "o"], "--model-name must not be empty", id="blank-model"),
        pytest.param(["TRACE", "--model-name", "m", "--out", "o", "--promtool", "no-such-promtool"],
                     "promtool 'no-such-promtool' not found", id="no-promtool"),
    ],
)
def test_backfill_errors(app, tmp_path, args, message):
    trace = small_trace(tmp_path)
    args = [str(trace) if a == "TRACE" else (str(tmp_path / a) if a in ("missing.csv", "o") else a) for a in args]
    result = CliRunner().invoke(app, ["prometheus", "backfill", *args])
    assert result.exit_code != 0
    assert message in result.output
