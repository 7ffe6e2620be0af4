"""The rolling-origin backtest, driven by tiny estimators whose scores are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from forecaster.backtest import BacktestConfig, backtest, make_horizons, plan_origins
from tests.forecaster._backtest_fakes import (
    BINS_PER_DAY,
    Broken,
    Counting,
    Flat,
    FlatBaseline,
    NeedsDays,
    Oracle,
    daily_series,
)

SERIES = daily_series(8, gaps=12)
# Two-hourly origins over two days (24): enough to test every rule, a third of the default's cost.
QUICK = BacktestConfig(eval_days=2, origin_every="2h")


def test_oracle_scores_perfectly_so_targets_are_aligned():
    # A forecast of the true series at the target bin scores 0 only if the target bin is the one
    # ending at origin + horizon; an off-by-one would compare neighbouring bins and score > 0.
    result = backtest(SERIES, {"oracle": lambda: Oracle(SERIES, spread=1.0)}, QUICK)
    run = result.runs["oracle"]
    assert run.status == "ok"
    for label in ("15m", "60m"):
        score = run.scores[label]
        assert score.mase == 0.0
        assert score.smape == 0.0
        assert score.pinball["0.5"] == 0.0
        assert score.coverage90 == 1.0
        assert score.under_rate == 0.0


@pytest.mark.parametrize(
    ("horizon", "step", "bins"),
    [
        pytest.param(900, 600, 2, id="15m-at-10m-rounds-up"),
        pytest.param(3600, 600, 6, id="60m-at-10m-exact"),
        pytest.param(300, 600, 1, id="shorter-than-a-bin-is-one-bin"),
        pytest.param(3600, 3600, 1, id="one-hour-bin"),
    ],
)
def test_horizon_rounds_up_to_whole_bins(horizon, step, bins):
    (h,) = make_horizons([horizon], step)
    assert h.bins == bins
    assert h.label == f"{horizon // 60}m"


def test_default_plan_has_hourly_origins_over_three_days():
    plan = plan_origins(daily_series(14), BacktestConfig())
    n = 14 * BINS_PER_DAY
    assert 60 <= plan.origins.size <= 72
    assert plan.origins[-1] == n - 1 - 6  # the last origin whose 60-minute target is observed
    assert set(np.diff(plan.origins)) == {6}  # hourly at 10-minute bins
    assert plan.origins[0] >= n - 3 * BINS_PER_DAY
    assert len(plan.groups) == 10
    assert plan.scale.method == "seasonal_naive_daily"


@settings(max_examples=40)
@given(
    days=st.floats(1.0, 20.0),
    every=st.sampled_from([600, 1800, 3600, 7200]),
    refits=st.integers(1, 15),
    eval_days=st.floats(0.2, 5.0),
)
def test_plan_invariants(days, every, refits, eval_days):
    series = daily_series(days, noise=1.0)
    config = BacktestConfig(origin_every=every, refits=refits, eval_days=eval_days)
    plan = plan_origins(series, config)
    n = len(series)
    assert np.all(np.diff(plan.origins) > 0)
    assert plan.origins[-1] + 6 <= n - 1  # every target is inside the series
    assert plan.origins[0] >= n - n // 2  # at least half the series is history before the first origin
    assert 1 <= len(plan.groups) <= refits
    assert np.array_equal(np.concatenate(plan.groups), plan.origins)


def test_fits_once_per_group_and_predicts_from_later_origins_between():
    counting = Counting(lambda: Flat())
    result = backtest(SERIES, {"flat": counting}, QUICK.model_copy(update={"refits": 4}))
    n_origins = len(result.origins)
    assert result.runs["flat"].status == "ok"
    assert counting.fits == 4
    assert counting.predicts_from == n_origins - 4
    assert result.runs["flat"].n_fits == 4
    assert len(result.refit_origins) == 4


def test_flat_forecast_scores_match_a_hand_computation():
    # Flat(window=1) forecasts the origin's own value at every lead: recompute its 60m MAE directly.
    result = backtest(SERIES, {"flat": lambda: Flat(window=1, spread=0.0)}, QUICK)
    values = SERIES.to_numpy()
    origins = SERIES.index.get_indexer(result.origins)
    last_observed = SERIES.ffill().to_numpy()  # Flat(window=1) holds the last observed value
    actual, forecast = values[origins + 6], last_observed[origins]
    keep = np.isfinite(actual)
    mae = np.mean(np.abs(actual[keep] - forecast[keep]))
    score = result.runs["flat"].scores["60m"]
    assert score.mase == pytest.approx(mae / result.scale.value)
    assert score.n_points == int(np.isfinite(actual).sum())


def test_gaps_in_actuals_are_excluded_from_scores():
    series = daily_series(8)
    holed = series.copy()
    result_full = backtest(series, {"oracle": lambda: Oracle(series)}, QUICK)
    origins = series.index.get_indexer(result_full.origins)
    holed.iloc[origins[:5] + 6] = np.nan  # five 60-minute targets go missing
    result = backtest(holed, {"oracle": lambda: Oracle(holed)}, QUICK)
    assert result.runs["oracle"].scores["60m"].n_points == len(origins) - 5
    assert result.runs["oracle"].scores["60m"].mase == 0.0


def test_skipped_and_failed_models_are_recorded_while_others_score():
    result = backtest(
        SERIES,
        {"flat": lambda: Flat(), "needs_days": lambda: NeedsDays(30), "broken": lambda: Broken()},
        QUICK,
    )
    assert result.runs["flat"].status == "ok"
    skipped, failed = result.runs["needs_days"], result.runs["broken"]
    assert (skipped.status, skipped.reason) == ("skipped", "needs_days needs 30 days of history")
    assert failed.status == "failed" and failed.reason == "RuntimeError: singular matrix"
    assert result.scored == ["flat"]
    assert set(result.scores_table()["60m"]) == {"flat"}
    assert result.to_dict()["models"]["needs_days"]["status"] == "skipped"


def test_progress_reports_every_fit_and_completes_skipped_models():
    calls = []
    backtest(
        SERIES, {"flat": lambda: Flat(), "needs_days": lambda: NeedsDays(30)},
        QUICK.model_copy(update={"refits": 3}), progress=lambda *a: calls.append(a),
    )
    assert calls == [("flat", 1, 3), ("flat", 2, 3), ("flat", 3, 3), ("needs_days", 3, 3)]


def test_deterministic():
    models = {"flat": lambda: Flat(window=3), "base": lambda: FlatBaseline(window=1)}
    a = backtest(SERIES, models, QUICK).scores_table()
    b = backtest(SERIES, models, QUICK).scores_table()

    def strip(t):
        return {h: {m: {k: v for k, v in s.items() if not k.endswith("_seconds")} for m, s in r.items()}
                for h, r in t.items()}

    assert strip(a) == strip(b)


def test_refuses_a_bin_finer_than_native():
    with pytest.raises(ValueError, match="finer than the trace's native bin 30m"):
        backtest(SERIES, {"flat": lambda: Flat()}, native_bin_seconds=1800)


def test_refuses_a_series_too_short_for_the_horizon():
    from forecaster.errors import InsufficientHistory

    with pytest.raises(InsufficientHistory, match="too short to backtest a 1h horizon"):
        backtest(daily_series(0.05), {"flat": lambda: Flat()})


def test_catalogue_names_resolve_to_baselines():
    result = backtest(daily_series(3), ["last_value", "seasonal_naive_daily"], BacktestConfig(refits=2))
    assert all(run.is_baseline for run in result.runs.values())
    assert result.runs["last_value"].status == "ok"
    assert math.isfinite(result.runs["last_value"].scores["15m"].pinball["mean"])


def test_coverage_and_under_rate_of_a_wide_flat_band():
    # A band of +-1000 around any value of this series contains every actual: coverage 1, under 0.
    result = backtest(SERIES, {"flat": lambda: Flat(spread=1000 / 0.9)}, QUICK)
    score = result.runs["flat"].scores["15m"]
    assert score.coverage90 == 1.0 and score.under_rate == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"quantiles": (0.5, 0.9)}, r"must include \[0.05, 0.95\]", id="no-interval"),
        pytest.param({"quantiles": (0.05, 0.5, 0.95), "controller_quantile": 0.8}, r"include \[0.8\]",
                     id="no-controller-q"),
        pytest.param({"horizons": ("15m", "900s")}, "horizons repeat", id="repeat"),
        pytest.param({"horizons": ("soon",)}, "not like 90s", id="bad-duration"),
        pytest.param({"refits": 0}, "greater than or equal to 1", id="refits"),
        pytest.param({"quantiles": (0.05, 0.95, 1.5)}, "strictly between 0 and 1", id="q-range"),
    ],
)
def test_config_refuses(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        BacktestConfig(**kwargs)


def test_config_parses_durations_and_sorts_quantiles():
    config = BacktestConfig(horizons="15m,2h", origin_every="30m", quantiles=[0.95, 0.05, 0.9])
    assert config.horizons == (900, 7200)
    assert config.origin_every == 1800
    assert config.quantiles == (0.05, 0.9, 0.95)


class NaNForecast(Flat):
    """Forecasts NaN: a model bug the backtest must report, not score."""

    name = "nan_forecast"

    def _from(self, values, horizon, quantiles):
        point = np.full(horizon, np.nan)
        return point, np.full((horizon, len(quantiles)), np.nan)


def test_a_model_forecasting_nan_is_recorded_as_failed():
    result = backtest(SERIES, {"nan_forecast": NaNForecast}, QUICK)
    run = result.runs["nan_forecast"]
    assert run.status == "failed" and "NaN or infinite" in run.reason


@pytest.mark.parametrize(
    ("columns", "rows", "message"),
    [
        pytest.param(["mean", "0.05", "0.95"], [[1.0, 2.0, 1.0]], "quantiles decrease", id="crossing"),
        pytest.param(["mean", "0.05"], [[1.0, 0.5]], r"lacks columns \['0.95'\]", id="missing-column"),
        pytest.param(["mean", "0.05", "0.95"], [[1.0, 0.5, 2.0]] * 2, "has 2 rows, asked for 1", id="rows"),
    ],
)
def test_check_frame_refuses(columns, rows, message):
    import pandas as pd

    from forecaster.backtest_run import _check_frame

    with pytest.raises(ValueError, match=message):
        _check_frame(pd.DataFrame(rows, columns=columns), "m", 1, ["0.05", "0.95"])


@settings(max_examples=8)
@given(spread=st.floats(0.0, 50.0), extra=st.floats(0.1, 50.0))
def test_a_wider_band_never_covers_less_and_scores_stay_in_range(spread, extra):
    series = daily_series(3, seed=1)
    config = BacktestConfig(eval_days=1, origin_every="2h", refits=1)
    narrow = backtest(series, {"f": lambda: Flat(spread=spread)}, config).runs["f"].scores
    wide = backtest(series, {"f": lambda: Flat(spread=spread + extra)}, config).runs["f"].scores
    for label in ("15m", "60m"):
        assert 0.0 <= narrow[label].coverage90 <= wide[label].coverage90 <= 1.0
        assert wide[label].under_rate <= narrow[label].under_rate  # the 0.9 quantile only rose
        assert narrow[label].mase == wide[label].mase  # same point forecast
        assert all(v >= 0 for v in narrow[label].pinball.values())
