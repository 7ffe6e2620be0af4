"""The contract every estimator in the catalogue keeps (forecaster.estimators.base.Estimator).

Each test runs against every catalogue name, on synthetic daily-seasonal series at 10-minute bins,
with settings that keep the slow models (SARIMAX, Prophet, GBM) to about a second a fit.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from forecaster.errors import InsufficientHistory, NotFitted
from forecaster.estimators import BASELINES, ESTIMATORS, make_estimator

STEP = 600
BINS_PER_DAY = 86_400 // STEP
START = "2025-03-03T00:00:00Z"  # a Monday
NAMES = list(ESTIMATORS)
SEASONAL = [n for n in NAMES if n != "last_value"]

# Test-size settings: the defaults are tuned for 14 days at 5-minute bins; these keep tests quick.
FAST: dict[str, dict] = {
    "gbm": {"max_rows": 4000, "max_iter": 50},
    "sarimax_fourier": {"max_fit_bins": 432, "calibration_origins": 8},
    "mstl": {"calibration_origins": 24},
    "prophet": {"n_changepoints": 5},
    # Two quick members: what is tested here is the averaging, not the members (tested above).
    "ensemble": {"members": ("holt_winters", "seasonal_naive_daily")},
}

# Days of history below which each estimator must refuse (its seasons do not fit).
MIN_DAYS = {
    "last_value": 0.01,
    "seasonal_naive_daily": 2,
    "seasonal_naive_weekly": 8,
    "holt_winters": 3,
    "mstl": 3,
    "sarimax_fourier": 2,
    "prophet": 2,
    "gbm": 2,
    "ensemble": 3,  # its members' longest need (holt_winters)
}


def seasonal_series(days: float, noise: float = 5.0, seed: int = 0) -> pd.Series:
    """A daily cycle around 100 req/s (two harmonics), Gaussian noise, 10-minute bins, UTC."""
    index = pd.date_range(START, periods=int(days * BINS_PER_DAY), freq=f"{STEP}s", tz="UTC")
    t = np.arange(index.size) * STEP
    rng = np.random.default_rng(seed)
    y = 100 + 60 * np.sin(2 * np.pi * t / 86_400) + 15 * np.sin(4 * np.pi * t / 86_400)
    return pd.Series(y + rng.normal(0, noise, index.size), index=index, name="requests")


def new(name: str):
    return make_estimator(name, **FAST.get(name, {}))


def check_forecast(frame: pd.DataFrame, after: pd.Timestamp, horizon: int, keys: list[str]) -> None:
    assert list(frame.columns) == ["mean", *keys]
    expected = pd.date_range(after + pd.Timedelta(seconds=STEP), periods=horizon, freq=f"{STEP}s")
    assert frame.index.equals(expected)
    values = frame.to_numpy()
    assert np.isfinite(values).all(), frame
    assert (values >= 0).all()
    assert (np.diff(frame[keys].to_numpy(), axis=1) >= -1e-9).all(), "quantiles cross"


@pytest.fixture(scope="module")
def clean_fits() -> dict:
    """Each estimator fitted once on 15 clean days (shared by the read-only tests)."""
    series = seasonal_series(15)
    return {name: (new(name).fit(series), series) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_forecast_has_the_requested_quantiles_in_order(name: str, clean_fits: dict) -> None:
    estimator, series = clean_fits[name]
    frame = estimator.predict(12)
    check_forecast(frame, series.index[-1], 12, ["0.5", "0.9", "0.95"])
    # Quantiles asked out of order come back sorted, with their own names.
    frame = estimator.predict(3, quantiles=(0.99, 0.1, 0.5))
    check_forecast(frame, series.index[-1], 3, ["0.1", "0.5", "0.99"])


@pytest.mark.parametrize("name", NAMES)
def test_predict_before_fit_raises_not_fitted(name: str) -> None:
    with pytest.raises(NotFitted, match=name):
        new(name).predict(6)


@pytest.mark.parametrize("name", NAMES)
def test_pickled_estimator_gives_the_same_forecast(name: str, clean_fits: dict) -> None:
    estimator, _ = clean_fits[name]
    restored = pickle.loads(pickle.dumps(estimator))
    pd.testing.assert_frame_equal(restored.predict(12), estimator.predict(12))


@pytest.mark.parametrize("name", NAMES)
def test_history_equal_to_the_training_data_gives_the_plain_forecast(
    name: str, clean_fits: dict
) -> None:
    estimator, series = clean_fits[name]
    pd.testing.assert_frame_equal(
        estimator.predict(12, history=series), estimator.predict(12), rtol=1e-6
    )


@pytest.mark.parametrize("name", NAMES)
def test_gaps_are_skipped_not_read_as_zero(name: str) -> None:
    series = seasonal_series(15, seed=1)
    rng = np.random.default_rng(2)
    series[rng.random(series.size) < 0.10] = np.nan  # 10% scattered gaps
    hole_end = series.size - BINS_PER_DAY
    series.iloc[hole_end - 36 : hole_end] = np.nan  # a 6-hour hole a day before the end
    series.iloc[-1] = np.nan  # and the latest bin missing
    estimator = new(name).fit(series)
    frame = estimator.predict(6)
    check_forecast(frame, series.index[-1], 6, ["0.5", "0.9", "0.95"])
    # Had a gap been read as zero, the forecast would sit far below the 40..175 req/s cycle.
    assert frame["mean"].min() > 20


@pytest.mark.parametrize("name", NAMES)
def test_constant_series_gives_a_flat_forecast_with_a_tight_interval(name: str) -> None:
    index = pd.date_range(START, periods=9 * BINS_PER_DAY, freq=f"{STEP}s", tz="UTC")
    series = pd.Series(5.0, index=index)
    frame = new(name).fit(series).predict(6)
    check_forecast(frame, series.index[-1], 6, ["0.5", "0.9", "0.95"])
    np.testing.assert_allclose(frame["mean"], 5.0, rtol=0.01)
    assert (frame["0.95"] - frame["0.5"]).max() <= 0.05


@pytest.mark.parametrize("days", [1.5, 4.0], ids=["1.5d", "4d"])
@pytest.mark.parametrize("name", NAMES)
def test_short_history_raises_when_the_seasons_do_not_fit(name: str, days: float) -> None:
    series = seasonal_series(days)
    if days < MIN_DAYS[name]:
        with pytest.raises(InsufficientHistory, match=name) as caught:
            new(name).fit(series)
        assert "days" in str(caught.value)  # says how much there is, in words
    else:
        frame = new(name).fit(series).predict(6)
        check_forecast(frame, series.index[-1], 6, ["0.5", "0.9", "0.95"])


@pytest.fixture(scope="module")
def holdout() -> dict:
    """Per estimator: fitted on 12 days, forecasting from 36 later origins without refitting."""
    series = seasonal_series(15, noise=3.0, seed=3)
    train_bins = 12 * BINS_PER_DAY
    origins = range(train_bins, series.size - 6, 12)
    scores = {}
    for name in NAMES:
        estimator = new(name).fit(series.iloc[:train_bins])
        errors, covered = [], []
        for origin in origins:
            frame = estimator.predict(6, history=series.iloc[: origin + 1])
            actual = series.iloc[origin + 1 : origin + 7].to_numpy()
            errors.append(np.abs(actual[-1] - frame["mean"].iloc[-1]))
            covered.extend(actual <= frame["0.9"].to_numpy())
        scores[name] = {"mae_1h": float(np.mean(errors)), "coverage90": float(np.mean(covered))}
    return scores


@pytest.mark.parametrize("name", SEASONAL)
def test_seasonal_estimator_beats_last_value_on_a_seasonal_series(name: str, holdout: dict) -> None:
    assert holdout[name]["mae_1h"] < 0.8 * holdout["last_value"]["mae_1h"], holdout


@pytest.mark.parametrize("name", NAMES)
def test_the_0_9_quantile_covers_about_90_percent(name: str, holdout: dict) -> None:
    assert 0.75 <= holdout[name]["coverage90"] <= 0.99, holdout[name]


@pytest.mark.parametrize("name", NAMES)
def test_forecast_from_a_later_origin_follows_the_new_data(name: str) -> None:
    series = seasonal_series(14, seed=4)
    early = series.iloc[: 12 * BINS_PER_DAY]
    later = series.iloc[: 13 * BINS_PER_DAY]
    kept = new(name).fit(early).predict(6, history=later)
    refitted = new(name).fit(later).predict(6)
    assert kept.index.equals(refitted.index)
    # Same parameters or refitted ones: both forecasts follow the cycle from the new origin.
    assert np.abs(kept["mean"] - refitted["mean"]).max() < 0.1 * series.mean()


@pytest.mark.parametrize("name", NAMES)
def test_history_at_another_bin_is_refused(name: str, clean_fits: dict) -> None:
    estimator, series = clean_fits[name]
    coarse = series.resample("1800s").mean()
    coarse.index.freq = pd.tseries.frequencies.to_offset("1800s")
    with pytest.raises(ValueError, match="1800s differs"):
        estimator.predict(6, history=coarse)


def test_baselines_are_marked_and_the_rest_are_not() -> None:
    for name in NAMES:
        assert new(name).is_baseline == (name in BASELINES), name
