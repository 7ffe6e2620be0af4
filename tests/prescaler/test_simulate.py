"""`prescaler simulate` and `prescaler demo` through typer, on small synthetic traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from controller.sim.results import OUTCOME_KEYS
from prescaler.simulate import register
from tests.sim.conftest import daily_frame


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    frame = daily_frame(2, noise=0.05)
    path = tmp_path / "synthetic_1min.csv"
    frame.index = frame.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame.to_csv(path, index_label="timestamp")
    return path


def test_simulate_writes_the_promised_json_keys(app: typer.Typer, trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "sim.json"
    result = CliRunner().invoke(app, ["simulate", str(trace), "--policy", "oracle,static",
                                      "--replay-days", "0.25", "--peak-replicas", "8", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert [o["policy"] for o in data["outcomes"]] == ["oracle", "static"]
    for outcome in data["outcomes"]:
        assert set(OUTCOME_KEYS) <= set(outcome)
    oracle, static = data["outcomes"]
    assert oracle["gpu_hours_vs_oracle"] == 1.0 and static["gpu_hours_vs_oracle"] > 1.0
    assert data["settings"]["lead_seconds"] == 300 and data["trace"] == "synthetic"
    assert "oracle" in result.output and "static" in result.output
    assert not list(out.parent.glob(".sim.json.*"))  # the temp file was renamed, not left behind


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--policy", "hpa,magic"], "unknown policy magic", id="unknown-policy"),
        pytest.param(["--lead", "soon"], "--lead: duration 'soon'", id="bad-lead"),
        pytest.param(["--tokens", "sharegpt"], "tokens 'sharegpt' unknown", id="bad-tokens"),
        pytest.param(["--peak-replicas", "40", "--max-replicas", "10"],
                     "max_replicas (10) must be >= peak_replicas (40.0)", id="max-below-peak"),
        pytest.param(["--replay-from", "2030-01-01T00:00Z"], "outside the trace", id="window-outside"),
    ],
)
def test_simulate_refuses_bad_options_with_a_clear_message(app, trace, args, message) -> None:
    result = CliRunner().invoke(app, ["simulate", str(trace), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_simulate_names_a_missing_trace(app, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2 and "nope.csv does not exist" in result.output


def test_simulate_all_policies_from_the_short_history_of_a_small_trace(app, tmp_path: Path) -> None:
    frame = daily_frame(3, noise=0.05)
    frame.index = frame.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    trace = tmp_path / "three_days_1min.csv"
    frame.to_csv(trace, index_label="timestamp")
    out = tmp_path / "all.json"
    result = CliRunner().invoke(app, ["simulate", str(trace), "--replay-days", "0.25", "--peak-replicas", "10",
                                      "--model", "auto", "--json", str(out)])
    assert result.exit_code == 0, result.output
    outcomes = {o["policy"]: o for o in json.loads(out.read_text())["outcomes"]}
    assert list(outcomes) == ["hpa", "prescaler", "oracle", "static"]
    assert outcomes["oracle"]["slo_attainment"] == 1.0
    for policy in ("hpa", "prescaler"):
        assert 0.9 < outcomes[policy]["slo_attainment"] <= 1.0
        assert outcomes[policy]["gpu_hours"] < outcomes["static"]["gpu_hours"]
