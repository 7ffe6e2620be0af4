"""Baselines and the conformal residual quantiles: values checked by hand on tiny series."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecaster.errors import InsufficientHistory
from forecaster.estimators import ESTIMATORS, available, make_estimator
from forecaster.estimators.baselines import naive_errors, naive_point, phase_ffill
from forecaster.estimators.calibration import LeadErrors, conformal_level, error_quantiles

NAN = np.nan


def series(values, step: int = 600, start: str = "2025-03-03T00:00:00Z") -> pd.Series:
    index = pd.date_range(start, periods=len(values), freq=f"{step}s", tz="UTC")
    return pd.Series(np.asarray(values, dtype="float64"), index=index)


# ---- the rule, by hand ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, season, expected",
    [
        pytest.param([1, 2, 3, 4, 5, 6], 3, [1, 2, 3, 4, 5, 6], id="no-gaps"),
        pytest.param([1, 2, 3, NAN, 5, NAN], 3, [1, 2, 3, 1, 5, 3], id="gap-takes-same-phase"),
        pytest.param([NAN, 2, 3, NAN, 5, 6], 3, [NAN, 2, 3, NAN, 5, 6], id="phase-never-seen"),
        pytest.param([4, NAN, NAN, 7], 1, [4, 4, 4, 7], id="season-one-is-ffill"),
    ],
)
def test_phase_ffill(values, season, expected) -> None:
    np.testing.assert_array_equal(phase_ffill(np.array(values, dtype=float), season), expected)


@pytest.mark.parametrize(
    "values, season, horizon, expected",
    [
        pytest.param([1, 2, 3, 4], 1, 3, [4, 4, 4], id="last-value"),
        pytest.param([1, 2, 3, NAN], 1, 2, [3, 3], id="last-observed-value"),
        pytest.param([1, 2, 3, 4, 5, 6], 3, 4, [4, 5, 6, 4], id="season-repeats"),
        pytest.param([1, 2, 3, 4, NAN, 6], 3, 3, [4, 2, 6], id="gap-uses-older-same-phase"),
        pytest.param([NAN, 2, 3, NAN, 5, 6], 3, 1, [6], id="unseen-phase-falls-back-to-last"),
    ],
)
def test_naive_point(values, season, horizon, expected) -> None:
    np.testing.assert_array_equal(naive_point(np.array(values, dtype=float), season, horizon), expected)


def test_naive_errors_are_observed_minus_forecast_per_lead() -> None:
    errors = naive_errors(np.array([1.0, 3.0, NAN, 4.0]), season=1, horizon=2)
    # lead 1: 3-1, (nan target), 4-3 (the NaN was carried as 3); lead 2: nan-1 dropped, 4-3
    np.testing.assert_array_equal(errors[0], [2.0, 1.0])
    np.testing.assert_array_equal(errors[1], [1.0])


def test_last_value_follows_the_new_history_without_refitting() -> None:
    estimator = make_estimator("last_value").fit(series([5.0, 6.0, 7.0, 8.0] * 10))
    frame = estimator.predict(3, history=series([5.0, 6.0, 7.0, 8.0] * 10 + [42.0, NAN]))
    assert (frame["mean"] == 42.0).all()
    assert frame.index[0] == series([0.0] * 42).index[-1] + pd.Timedelta(seconds=600)


def test_seasonal_naive_daily_repeats_yesterday_and_its_intervals_are_its_errors() -> None:
    day = 10.0 + np.arange(144, dtype=float)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, 3 * 144)
    estimator = make_estimator("seasonal_naive_daily").fit(series(np.tile(day, 3) + noise))
    frame = estimator.predict(144, quantiles=(0.5, 0.9))
    np.testing.assert_allclose(frame["mean"], day + noise[-144:])
    # The lead-1 errors are differences of two N(0, 1) draws: N(0, 2), 0.9-quantile about 1.81.
    width = (frame["0.9"] - frame["mean"]).iloc[0]
    assert 1.2 < width < 2.5


def test_weekly_naive_needs_a_week_and_a_day_and_says_so() -> None:
    with pytest.raises(InsufficientHistory) as caught:
        make_estimator("seasonal_naive_weekly").fit(series(np.ones(int(3.5 * 144))))
    message = str(caught.value)
    assert "seasonal_naive_weekly needs 8 days" in message
    assert "600 s bins" in message and "got 3.5 days" in message


def test_error_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="error_window_days must be positive, got 0"):
        make_estimator("last_value", error_window_days=0)


@settings(max_examples=40)
@given(
    st.lists(st.one_of(st.floats(0, 1e6), st.just(NAN)), min_size=300, max_size=400),
    st.sampled_from(["last_value", "seasonal_naive_daily"]),
    st.integers(1, 30),
)
def test_baseline_forecasts_are_ordered_and_non_negative(values, name, horizon) -> None:
    data = series(values)
    if data.notna().sum() < 2:
        return
    frame = make_estimator(name).fit(data).predict(horizon, quantiles=(0.05, 0.5, 0.9, 0.95))
    body = frame.to_numpy()
    assert len(frame) == horizon
    finite = np.isfinite(body).all(axis=1)
    assert finite.all() or not np.isfinite(data).any()
    assert (body[finite] >= 0).all()
    assert (np.diff(frame[["0.05", "0.5", "0.9", "0.95"]].to_numpy(), axis=1) >= 0).all()


# ---- conformal residual quantiles ----------------------------------------------------------------


@pytest.mark.parametrize(
    "q, n, expected",
    [
        pytest.param(0.9, 9, 1.0, id="small-n-takes-the-max"),
        pytest.param(0.9, 99, 90 / 99, id="ceil((n+1)q)/n"),
        pytest.param(0.1, 99, 10 / 99, id="floor-below-the-median"),
        pytest.param(0.5, 0, 0.5, id="no-errors"),
    ],
)
def test_conformal_level(q, n, expected) -> None:
    assert conformal_level(q, n) == pytest.approx(expected)


def test_error_quantiles_ignore_nan_and_are_zero_without_errors() -> None:
    np.testing.assert_array_equal(error_quantiles(np.array([NAN, NAN]), [0.5, 0.9]), [0.0, 0.0])
    assert error_quantiles(np.array([1.0, NAN, 3.0] + [2.0] * 97), [0.5])[0] == 2.0


def test_lead_errors_widen_beyond_the_last_measured_lead_by_sqrt() -> None:
    errors = LeadErrors([np.linspace(-1, 1, 101), np.linspace(-2, 2, 101)])
    offsets = errors.offsets(8, [0.5, 0.9])
    assert offsets[1, 1] == pytest.approx(1.6, abs=0.05)
    assert offsets[7, 1] == pytest.approx(offsets[1, 1] * 2.0)  # sqrt(8 / 2)


def test_lead_errors_pool_neighbours_when_a_lead_is_thin() -> None:
    errors = LeadErrors([np.zeros(3), np.full(30, 5.0)])
    assert errors.offsets(1, [0.5])[0, 0] == 5.0  # 3 zeros and 30 fives: the median is 5


@settings(max_examples=50)
@given(
    st.lists(st.lists(st.floats(-1e3, 1e3), min_size=0, max_size=40), min_size=1, max_size=5),
    st.lists(st.floats(0.01, 0.99), min_size=1, max_size=5, unique=True),
)
def test_lead_error_offsets_rise_with_the_level(errors, quantiles) -> None:
    qs = sorted(quantiles)
    offsets = LeadErrors([np.array(e) for e in errors]).offsets(7, qs)
    assert offsets.shape == (7, len(qs))
    assert (np.diff(offsets, axis=1) >= -1e-9).all()


# ---- the catalogue -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names, expected",
    [
        pytest.param("all", list(ESTIMATORS), id="all"),
        pytest.param("gbm, last_value", ["gbm", "last_value"], id="comma-list"),
        pytest.param(["mstl", "mstl"], ["mstl"], id="deduplicated"),
    ],
)
def test_available(names, expected) -> None:
    assert available(names) == expected


def test_an_unknown_model_is_named_with_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown models 'arima', 'lstm'; known models: last_value"):
        available("arima,gbm,lstm")
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        make_estimator("nope")
    with pytest.raises(ValueError, match="no model named"):
        available(" , ")


def test_importing_the_catalogue_and_baselines_loads_no_statistics_library() -> None:
    code = (
        "import sys, forecaster.estimators as e; e.make_estimator('last_value');"
        "heavy = [m for m in ('statsmodels', 'prophet', 'sklearn') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
