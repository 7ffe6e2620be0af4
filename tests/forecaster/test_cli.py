"""`prescaler backtest / train / forecast` end to end on the shipped trace, and their error lines."""

from __future__ import annotations

import json

import pytest
import typer
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from forecaster.cli import register
from forecaster.contract import Forecast
from forecaster.sources import shipped_trace_path

TRACE = str(shipped_trace_path())
BASELINES = "last_value,seasonal_naive_daily"


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    register(app)
    return app


def run(app, *args: str):
    return CliRunner().invoke(app, list(args))


def test_backtest_shipped_trace_writes_the_json_contract(app, tmp_path):
    out = tmp_path / "bt.json"
    # One OpenMP thread: scikit-learn's default of one per core spins and thrashes on a shared CI
    # machine (56 CPU s instead of 4 for one gbm fit). threadpoolctl only limits libraries already
    # loaded, so load scikit-learn's OpenMP runtime first (gbm imports it lazily).
    import sklearn.ensemble  # noqa: F401

    with threadpool_limits(1):
        result = run(app, "backtest", TRACE, "--models", f"{BASELINES},gbm", "--refits", "1", "--eval-days", "1",
                     "--json", str(out))
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["bin_seconds"] == 600  # the shipped trace's native 10 minutes, not its 1-minute rows
    assert data["selected"] in ("last_value", "seasonal_naive_daily", "gbm")
    assert data["selection"]["selected"] == data["selected"]
    assert set(data["scores"]) == {"15m", "60m"}
    for horizon in ("15m", "60m"):
        for model in ("last_value", "seasonal_naive_daily", "gbm"):
            entry = data["scores"][horizon][model]
            assert {"mase", "smape", "pinball", "coverage90", "under_rate", "fit_seconds",
                    "predict_seconds"} <= set(entry)
            assert {"0.05", "0.5", "0.9", "0.95", "mean"} == set(entry["pinball"])
            assert 0.0 <= entry["coverage90"] <= 1.0
    assert "selected" in result.stdout and data["selected"] in result.stdout


def test_train_then_forecast_round_trip(app, tmp_path):
    registry = str(tmp_path / "models")
    result = run(app, "train", TRACE, "--workload", "m-small", "--models", BASELINES, "--refits", "2",
                 "--registry", registry)
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    assert card["workload"] == "m-small" and card["model"] in BASELINES.split(",")
    assert card["selection"]["selected"] == card["model"]

    result = run(app, "forecast", "--workload", "m-small", "--horizon", "2h", "--registry", registry, "--json")
    assert result.exit_code == 0, result.output
    forecast = Forecast.model_validate_json(result.stdout)
    assert forecast.model == card["model"] and forecast.model_version == card["version"]
    assert forecast.step_seconds == 600 and len(forecast.points) == 12  # 2 h of 10-minute bins
    assert set(forecast.points[0].quantiles) == {"0.05", "0.5", "0.9", "0.95"}

    table = run(app, "forecast", "--workload", "m-small", "--horizon", "30m", "--registry", registry)
    assert table.exit_code == 0 and "q0.9" in table.stdout


def test_train_all_signals(app, tmp_path):
    registry = tmp_path / "models"
    result = run(app, "train", TRACE, "--workload", "m-small", "--signal", "all", "--models", "last_value",
                 "--refits", "1", "--eval-days", "1", "--registry", str(registry))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (registry / "m-small").iterdir()) == [
        "output_tokens", "prompt_tokens", "requests",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["backtest", "no/such.csv"], "trace file no/such.csv does not exist", id="no-trace"),
        pytest.param(["backtest", TRACE, "--models", "last_value,nope"], "unknown model 'nope'",
                     id="unknown-model"),
        pytest.param(["backtest", TRACE, "--horizons", "15m,soon"], "duration 'soon' is not like",
                     id="bad-duration"),
        pytest.param(["backtest", TRACE, "--bin", "1m"], "finer than the trace's native bin 10m",
                     id="finer-than-native"),
        pytest.param(["backtest", TRACE, "--bin", "7m"], "bin '7m' is not supported", id="odd-bin"),
        pytest.param(["backtest", TRACE, "--signal", "tokens"], "--signal 'tokens' is not one of",
                     id="bad-signal"),
        pytest.param(["backtest", TRACE, "--objective", "rmse"], "objective 'rmse' is not one of",
                     id="bad-objective"),
        pytest.param(["train", TRACE, "--workload", "Bad Name"], "workload name 'Bad Name' is invalid",
                     id="bad-workload"),
        pytest.param(["forecast", "--workload", "ghost", "--registry", "/nonexistent/models"],
                     "no model stored for workload 'ghost'", id="no-model"),
        pytest.param(["forecast", "--workload", "w", "--horizon", "-2h"], "is not like", id="bad-horizon"),
        # Checked before the registry is read: 1000 days once wrote a 33 MB forecast.
        pytest.param(["forecast", "--workload", "w", "--horizon", "1000d", "--registry", "/nonexistent/models"],
                     "--horizon 1000d is over the limit of 14d", id="horizon-limit"),
    ],
)
def test_errors_are_one_line_and_exit_2(app, args, message):
    result = run(app, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0  # one line


def test_bad_trace_content_names_the_line(app, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,requests\n2025-01-01T00:00:00Z,5\n2025-01-01T00:01:00Z,-3\n")
    result = run(app, "backtest", str(bad))
    assert result.exit_code == 2
    assert "line 3" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["train", "--workload", "w"], "give either a TRACE file or --prometheus URL", id="no-source"),
        pytest.param(["train", TRACE, "--workload", "w", "--prometheus", "http://localhost:1"],
                     "exactly one", id="two-sources"),
        pytest.param(["train", "--workload", "w", "--prometheus", "http://localhost:1"],
                     "--prometheus needs --model-name", id="no-model-name"),
    ],
)
def test_train_source_errors(app, args, message):
    result = run(app, *args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_train_all_signals_prints_one_json_object_keyed_by_signal(app, tmp_path):
    """`--signal all` printed three card documents stuck together, which no JSON reader parses: it
    prints one object, each signal's card under its name (one signal still prints the card itself)."""
    registry = tmp_path / "models"
    result = run(app, "train", TRACE, "--workload", "m-small", "--signal", "all", "--models", "last_value",
                 "--refits", "1", "--eval-days", "1", "--registry", str(registry))
    assert result.exit_code == 0, result.output
    cards = json.loads(result.stdout)
    assert sorted(cards) == ["output_tokens", "prompt_tokens", "requests"]
    for signal, card in cards.items():
        assert card["signal"] == signal and card["workload"] == "m-small"
        assert (registry / "m-small" / signal / card["version"] / "card.json").is_file()


def test_forecast_horizon_is_bounded_in_steps_of_the_models_bin(app, tmp_path):
    """At a 1-minute model 3 days are 4320 steps, past forecaster.service.config.MAX_HORIZON_STEPS:
    refused with the limit and the longest horizon at that bin, before anything is predicted."""
    import numpy as np
    import pandas as pd

    index = pd.date_range("2025-01-01", periods=3 * 1440, freq="1min", tz="UTC")
    counts = np.random.default_rng(0).poisson(30, index.size)
    trace = tmp_path / "one-minute.csv"
    pd.DataFrame({"timestamp": index.strftime("%Y-%m-%dT%H:%M:%SZ"), "requests": counts}).to_csv(trace, index=False)
    registry = str(tmp_path / "models")
    trained = run(app, "train", str(trace), "--workload", "w", "--models", "last_value", "--refits", "1",
                  "--eval-days", "1", "--registry", registry)
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["bin_seconds"] == 60
    result = run(app, "forecast", "--workload", "w", "--horizon", "3d", "--registry", registry, "--json")
    assert result.exit_code == 2, result.output
    assert ("--horizon 3d at bin 1m is 4320 steps, over the limit of 4032 steps (2d19h12m at this bin)"
            in result.output)
    assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output
