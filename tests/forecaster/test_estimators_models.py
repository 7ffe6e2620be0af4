"""What is particular to each non-baseline model: its recursion, its cost guards, its settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecaster.errors import InsufficientHistory
from forecaster.estimators import make_estimator
from forecaster.estimators.gbm import lag_set
from forecaster.estimators.statsmodels_models import (
    fourier_terms,
    holt_winters_init,
    holt_winters_states,
)

NAN = np.nan


def daily(days: float, step: int, noise: float = 2.0, seed: int = 0) -> pd.Series:
    index = pd.date_range("2025-03-03", periods=int(days * 86_400 / step), freq=f"{step}s", tz="UTC")
    t = np.arange(index.size) * step
    rng = np.random.default_rng(seed)
    y = 50 + 30 * np.sin(2 * np.pi * t / 86_400) + rng.normal(0, noise, index.size)
    return pd.Series(y, index=index)


# ---- Holt-Winters ---------------------------------------------------------------------------------


def test_holt_winters_recursion_matches_statsmodels() -> None:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    values = daily(6, 1800).to_numpy()
    season, params = 48, (0.3, 0.05, 0.1, 0.95)
    init = holt_winters_init(values, season)
    level, trend, seasonal = holt_winters_states(values, season, params, init)
    reference = ExponentialSmoothing(
        values, trend="add", damped_trend=True, seasonal="add", seasonal_periods=season,
        initialization_method="known", initial_level=init[0], initial_trend=init[1],
        initial_seasonal=init[2],
    ).fit(
        smoothing_level=params[0], smoothing_trend=params[1], smoothing_seasonal=params[2],
        damping_trend=params[3], optimized=False,
    )
    h = np.arange(1, 6)
    ours = level[-1] + np.cumsum(0.95 ** h) * trend[-1] + seasonal[values.size - 1 + h - season]
    np.testing.assert_allclose(ours, reference.forecast(5), rtol=1e-9)


def test_holt_winters_gap_moves_the_state_as_forecast() -> None:
    values = np.array([10.0] * 8 + [NAN] + [10.0] * 3)
    level, trend, seasonal = holt_winters_states(
        values, 2, (0.5, 0.1, 0.1, 0.9), holt_winters_init(values, 2)
    )
    assert np.isfinite(level).all()
    np.testing.assert_allclose(level, 10.0)  # a missing bin is not a drop to zero
    np.testing.assert_allclose(seasonal, 0.0, atol=1e-12)


def test_holt_winters_settings_are_validated() -> None:
    with pytest.raises(ValueError, match=r"fit_window_days \(2\)"):
        make_estimator("holt_winters", fit_window_days=2)


# ---- MSTL -----------------------------------------------------------------------------------------


def test_mstl_refuses_one_minute_bins_and_says_to_resample() -> None:
    with pytest.raises(InsufficientHistory, match="5-minute bins or coarser.*got 60 s bins"):
        make_estimator("mstl").fit(daily(4, 60))


def test_mstl_adds_the_weekly_period_only_with_more_than_two_weeks() -> None:
    short = make_estimator("mstl", calibration_origins=8).fit(daily(10, 3600))
    long = make_estimator("mstl", calibration_origins=8).fit(daily(15, 3600))
    assert short.periods_ == [24]
    assert long.periods_ == [24, 168]


# ---- SARIMAX --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, message",
    [
        pytest.param({"order": (3, 1, 1)}, r"p \+ d \+ q <= 4", id="order-too-big"),
        pytest.param({"n_daily": 0}, r"n_daily \(0\) must be >= 1", id="no-daily-terms"),
        pytest.param({"calibration_origins": 2}, "at least 4, got 2", id="too-few-origins"),
    ],
)
def test_sarimax_settings_are_validated(settings, message) -> None:
    with pytest.raises(ValueError, match=message):
        make_estimator("sarimax_fourier", **settings)


def test_fourier_terms_are_unit_waves_of_the_day_and_week() -> None:
    bins = np.arange(0, 48)  # one day of 30-minute bins from the epoch
    terms = fourier_terms(bins, 1800, n_daily=2, n_weekly=1)
    assert terms.shape == (48, 6)
    np.testing.assert_allclose(terms[:, 0], np.sin(2 * np.pi * bins / 48), atol=1e-12)
    np.testing.assert_allclose(np.hypot(terms[:, 4], terms[:, 5]), 1.0)


def test_sarimax_one_pass_calibration_equals_apply_at_an_origin() -> None:
    series = daily(4, 1800)
    estimator = make_estimator("sarimax_fourier", calibration_origins=8).fit(series)
    values = series.to_numpy()
    forecast, _, _ = estimator._calibration_forecasts(values)
    end = values.size - 10
    via_apply = make_estimator("sarimax_fourier", state_window_days=10, calibration_origins=8)
    via_apply.fit(series)
    np.testing.assert_allclose(
        forecast(end, 5), via_apply._point(values[:end], series.index[end - 1], 5), rtol=1e-6
    )


# ---- Prophet --------------------------------------------------------------------------------------


def test_prophet_fits_on_five_minute_bins_without_sampling() -> None:
    series = daily(3, 60)
    estimator = make_estimator("prophet", n_changepoints=3).fit(series)
    assert estimator.model_.uncertainty_samples == 0
    assert len(estimator.model_.history) == 3 * 288  # aggregated from 1-minute bins
    frame = estimator.predict(5)
    assert frame.index.freq == pd.tseries.frequencies.to_offset("60s")
    assert frame["mean"].between(10, 90).all()


def test_prophet_level_correction_follows_a_day_running_high() -> None:
    series = daily(4, 600)
    estimator = make_estimator("prophet", n_changepoints=3).fit(series)
    later = daily(5, 600)
    later.iloc[-6:] += 40  # the last hour runs 40 above the usual curve
    plain = make_estimator("prophet", n_changepoints=3, correction_half_life_minutes=0)
    plain = plain.fit(series)
    shift = estimator.predict(3, history=later)["mean"] - plain.predict(3, history=later)["mean"]
    assert (shift > 20).all()


# ---- GBM ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bins_per_hour, expected",
    [
        pytest.param(2, [0, 1, 2, 3, 4], id="30-minute-bins"),
        pytest.param(6, [0, 1, 2, 3, 4, 5, 6, 9, 12], id="10-minute-bins"),
        pytest.param(60, [0, 1, 2, 3, 4, 5, 15, 30, 45, 60, 90, 120], id="1-minute-bins"),
    ],
)
def test_gbm_lags_reach_two_hours(bins_per_hour, expected) -> None:
    assert lag_set(bins_per_hour) == expected


@pytest.mark.parametrize(
    "settings, message",
    [
        pytest.param({"point_loss": "huber"}, "point_loss must be", id="loss"),
        pytest.param({"calibration_fraction": 0.9}, r"\[0.05, 0.5\], got 0.9", id="calibration"),
        pytest.param({"max_rows": 10}, "at least 500, got 10", id="rows"),
        pytest.param({"level_statistic": "mode"}, "mean or median", id="level"),
    ],
)
def test_gbm_settings_are_validated(settings, message) -> None:
    with pytest.raises(ValueError, match=message):
        make_estimator("gbm", **settings)


def test_gbm_learns_the_shape_at_any_traffic_volume() -> None:
    """Level-relative features: fitted at ~50 req/s, it forecasts the same shape at 10x the volume."""
    series = daily(8, 1800, noise=0.5)
    estimator = make_estimator("gbm", max_iter=60).fit(series)
    scaled = series * 10
    scaled.index.freq = series.index.freq
    ten_x = estimator.predict(6, history=scaled)["mean"].to_numpy()
    one_x = estimator.predict(6)["mean"].to_numpy()
    np.testing.assert_allclose(ten_x, 10 * one_x, rtol=0.05)


def test_gbm_forecast_is_deterministic_for_a_seed() -> None:
    series = daily(4, 1800)
    a = make_estimator("gbm", max_iter=30).fit(series).predict(4)
    b = make_estimator("gbm", max_iter=30).fit(series).predict(4)
    pd.testing.assert_frame_equal(a, b)
