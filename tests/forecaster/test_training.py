"""The training pipeline: backtest, select, fit on all history, save with its card."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from forecaster.backtest import BacktestConfig
from forecaster.registry import InvalidName, Registry
from forecaster.training import evaluate_and_fit, make_config, select_and_fit, train
from tests.forecaster._backtest_fakes import Broken, Flat, FlatBaseline, Oracle, daily_series

SERIES = daily_series(6, gaps=5)
FAST = BacktestConfig(refits=2, eval_days=1.5, origin_every="2h")


def clock() -> datetime:
    return datetime(2025, 3, 10, 12, 0, tzinfo=timezone.utc)


class OracleThatCannotRefit(Oracle):
    """Scores perfectly in the backtest but fails on the full history (the last bin)."""

    name = "oracle"

    def _fit(self, series):
        if series.index[-1] == self.truth.index[-1]:
            raise ValueError("cannot fit the full history")


def test_select_and_fit_fits_the_winner_on_all_history():
    estimator, record = select_and_fit(
        SERIES, models={"flat_baseline": FlatBaseline, "oracle": lambda: Oracle(SERIES)}, config=FAST,
    )
    assert record.selected == "oracle" and estimator.name == "oracle"
    assert estimator.last_timestamp_ == SERIES.index[-1]  # fitted on everything, not the backtest window


def test_select_and_fit_keeps_the_baseline_when_nothing_beats_it():
    estimator, record = select_and_fit(
        SERIES, models={"flat_baseline": FlatBaseline, "flat": lambda: Flat(window=500)}, config=FAST,
    )
    assert record.selected == "flat_baseline" and estimator.is_baseline
    assert "does not beat" in record.reason


def test_falls_back_to_the_best_baseline_when_the_final_fit_fails():
    trained = evaluate_and_fit(
        SERIES, models={"flat_baseline": FlatBaseline, "oracle": lambda: OracleThatCannotRefit(SERIES)},
        config=FAST,
    )
    assert trained.selection.selected == "flat_baseline"
    assert "fitting oracle on all history failed (ValueError: cannot fit the full history)" in (
        trained.selection.reason
    )
    assert trained.selection.best_model == "oracle"


def test_make_config_adds_the_objective_quantile():
    assert make_config(("15m",), (0.05, 0.5, 0.95), "pinball@0.8", controller_quantile=0.8).quantiles == (
        0.05, 0.5, 0.8, 0.95,
    )


def test_train_saves_a_card_with_backtest_and_selection(tmp_path):
    registry = Registry(tmp_path / "models", clock=clock)
    card = train(
        SERIES, workload="chat-small", signal="requests", registry=registry,
        models={"flat_baseline": FlatBaseline, "flat": lambda: Flat(window=3), "broken": Broken},
        config=FAST,
    )
    assert card.workload == "chat-small" and card.signal == "requests"
    assert card.model == card.selection.selected
    assert card.bin_seconds == 600
    assert card.quantiles == (0.05, 0.5, 0.9, 0.95)
    assert card.training_window.bins == len(SERIES)
    assert card.training_window.observed_bins == len(SERIES) - 5
    assert set(card.backtest["scores"]) == {"15m", "60m"}
    assert card.backtest["models"]["broken"]["status"] == "failed"
    estimator, loaded, _skipped = registry.load_latest_good("chat-small", "requests")
    assert loaded.version == card.version and estimator.name == card.model
    frame = estimator.predict(3, card.quantiles)
    assert list(frame.columns) == ["mean", "0.05", "0.5", "0.9", "0.95"]


def test_train_checks_names_before_the_backtest(tmp_path):
    calls = []

    def factory():
        calls.append(1)
        return FlatBaseline()

    with pytest.raises(InvalidName, match="workload name 'Bad_Name'"):
        train(SERIES, workload="Bad_Name", signal="requests", registry=Registry(tmp_path), models={"f": factory})
    assert calls == []


def test_train_refuses_a_series_of_another_signal(tmp_path):
    with pytest.raises(Exception, match="series is 'requests' but the signal to train is 'output_tokens'"):
        train(SERIES, workload="w", signal="output_tokens", registry=Registry(tmp_path),
              models={"f": FlatBaseline})


def test_catalogue_models_by_name():
    estimator, record = select_and_fit(
        daily_series(3), models="last_value,seasonal_naive_daily", config=FAST,
    )
    assert record.selected in ("last_value", "seasonal_naive_daily")
    assert estimator.name == record.selected


def test_unknown_model_name_is_refused():
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        select_and_fit(SERIES, models="last_value,nope")
