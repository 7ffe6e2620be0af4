"""GBM quantiles: quantile-loss boosters, their conformal correction (CQR), recency-weighted errors."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecaster.estimators import make_estimator
from forecaster.estimators.calibration import LeadErrors, error_quantiles

QUANTILES = (0.05, 0.5, 0.9, 0.95)
STEP = 1800


def noisy_daily(days: float, noise_by_hour=lambda hour: 3.0, seed: int = 0) -> pd.Series:
    index = pd.date_range("2025-03-03", periods=int(days * 86_400 / STEP), freq=f"{STEP}s", tz="UTC")
    t = np.arange(index.size) * STEP
    hour = (t % 86_400) / 3600
    rng = np.random.default_rng(seed)
    sd = np.array([noise_by_hour(h) for h in hour])
    y = 60 + 25 * np.sin(2 * np.pi * t / 86_400) + rng.normal(0, 1, index.size) * sd
    return pd.Series(y, index=index)


def small_gbm(**settings):
    return make_estimator("gbm", max_iter=40, min_samples_leaf=20, **settings)


# ---- weighted error quantiles ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights, q, expected",
    [
        # Equal weights: the midpoint (Hazen) quantile, widened by (q - 0.5) / n.
        pytest.param([1, 1, 1, 1], 0.5, 2.5, id="equal-median"),
        # All the weight on the last error: every quantile is that error.
        pytest.param([0, 0, 0, 1], 0.1, 4.0, id="only-recent"),
        pytest.param([0, 0, 0, 1], 0.9, 4.0, id="only-recent-upper"),
        # Recent errors count more: positions (0.5, 2, 5, 11) / 15, so the median moves up from 2.5
        # to 3 + (0.5 - 5/15) / (6/15) = 3.417.
        pytest.param([1, 2, 4, 8], 0.5, 3.417, id="recency-moves-median"),
    ],
)
def test_weighted_error_quantiles(weights, q, expected) -> None:
    errors = np.array([1.0, 2.0, 3.0, 4.0])
    got = error_quantiles(errors, [q], np.array(weights, dtype=float))[0]
    assert got == pytest.approx(expected, abs=1e-3)


def test_weighted_error_quantiles_ignore_nan_and_refuse_a_shape_mismatch() -> None:
    errors = np.array([1.0, np.nan, 3.0])
    assert error_quantiles(errors, [0.5], np.array([1.0, 5.0, 1.0]))[0] == pytest.approx(2.0)
    with pytest.raises(ValueError, match=r"weights shape \(2,\) differs from errors shape \(3,\)"):
        error_quantiles(errors, [0.5], np.array([1.0, 1.0]))


@settings(max_examples=60)
@given(
    st.lists(st.floats(-100, 100), min_size=1, max_size=40).flatmap(
        lambda e: st.tuples(st.just(e), st.lists(st.floats(0.01, 10), min_size=len(e), max_size=len(e)))
    ),
    st.lists(st.floats(0.01, 0.99), min_size=2, max_size=5),
)
def test_weighted_quantiles_are_ordered_and_inside_the_errors(data, quantiles) -> None:
    errors, weights = (np.array(v) for v in data)
    qs = sorted(quantiles)
    got = error_quantiles(errors, qs, weights)
    assert np.all(np.diff(got) >= -1e-9)
    assert got.min() >= errors.min() - 1e-9 and got.max() <= errors.max() + 1e-9


def test_lead_errors_keep_weights_through_pickle_and_load_old_state() -> None:
    errors = [np.arange(30, dtype=float), np.arange(30, dtype=float)]
    recent = [np.r_[np.zeros(29), 1.0]] * 2  # only the last error counts
    weighted = pickle.loads(pickle.dumps(LeadErrors(errors, recent)))
    assert weighted.offsets(2, [0.5])[:, 0] == pytest.approx([29.0, 29.0])
    old = LeadErrors.__new__(LeadErrors)
    old.__setstate__({"errors_by_lead": errors})  # an artifact saved before weights existed
    # Unweighted split conformal: level ceil(31 * 0.5) / 30 of 0..29, i.e. 16/30 * 29.
    assert old.offsets(1, [0.5])[0, 0] == pytest.approx(16 / 30 * 29)
    with pytest.raises(ValueError, match="lead 1: 2 weights for 30 errors"):
        LeadErrors(errors, [np.ones(2), np.ones(30)])


# ---- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, message",
    [
        pytest.param({"quantile_max_rows": 100}, "at least 500, got 100", id="rows"),
        pytest.param({"interval_method": "bootstrap"}, "conformal, quantile_loss, cqr, got 'bootstrap'", id="method"),
        pytest.param({"fit_quantiles": (0.5, 1.0)}, r"strictly between 0 and 1, got \[1.0\]", id="quantile"),
        pytest.param({"interval_method": "cqr", "fit_quantiles": ()}, "'cqr' needs at least one", id="none"),
        pytest.param({"calibration_half_life_hours": 0}, "positive or None, got 0", id="half-life"),
    ],
)
def test_gbm_interval_settings_are_validated(settings, message) -> None:
    with pytest.raises(ValueError, match=message):
        make_estimator("gbm", **settings)


# ---- behaviour ------------------------------------------------------------------------------------


def test_quantile_boosters_widen_where_the_noise_is() -> None:
    """Conformal offsets are one width per lead; a quantile booster sees the hour of the target."""
    series = noisy_daily(10, noise_by_hour=lambda h: 12.0 if h < 12 else 1.0)
    estimator = small_gbm(interval_method="quantile_loss").fit(series)  # series ends at midnight
    frame = estimator.predict(48, quantiles=QUANTILES)
    width = (frame["0.95"] - frame["0.05"]).to_numpy()
    hours = frame.index.hour
    # Twelve times the noise: the boosters (40 trees) give about twice the width; conformal gives one
    # level-relative width whatever the hour.
    assert width[hours < 12].mean() > 1.6 * width[hours >= 12].mean()


@pytest.mark.parametrize("method", ["conformal", "quantile_loss", "cqr"])
def test_interval_covers_a_stationary_future(method) -> None:
    series = noisy_daily(9, noise_by_hour=lambda h: 6.0 if 8 <= h < 16 else 2.0, seed=3)
    train_bins = int(7 * 86_400 / STEP)
    estimator = small_gbm(interval_method=method).fit(series.iloc[:train_bins])
    hits = total = 0
    for end in range(train_bins, series.size - 2, 3):
        history = series.iloc[:end]
        history.index.freq = series.index.freq
        frame = estimator.predict(2, quantiles=QUANTILES, history=history)
        actual = series.iloc[end : end + 2].to_numpy()
        hits += int(((actual >= frame["0.05"]) & (actual <= frame["0.95"])).sum())
        total += actual.size
    assert 0.75 <= hits / total <= 1.0, f"{method}: coverage {hits / total:.2f} of {total}"


def test_a_quantile_without_a_booster_gets_the_point_models_conformal_offset() -> None:
    series = noisy_daily(4)
    asked = (0.5, 0.99)  # with 0.95 asked too the sort could swap the columns where they cross
    conformal = small_gbm(interval_method="conformal").fit(series).predict(4, quantiles=asked)
    boosted = small_gbm(interval_method="quantile_loss").fit(series).predict(4, quantiles=asked)
    pd.testing.assert_series_equal(conformal["mean"], boosted["mean"])
    pd.testing.assert_series_equal(conformal["0.99"], boosted["0.99"])
    # The absolute-error point model is the median: quantile_loss reports it as 0.5.
    np.testing.assert_allclose(boosted["0.5"], boosted["mean"])


def test_recency_weights_follow_a_noise_that_grew() -> None:
    """Noise three times larger over the last two days: weighting recent misses widens the interval."""
    calm = noisy_daily(8, noise_by_hour=lambda h: 2.0, seed=1)
    wild = noisy_daily(8, noise_by_hour=lambda h: 6.0, seed=2)
    series = pd.concat([calm.iloc[: 6 * 48], wild.iloc[6 * 48 :]])
    series.index.freq = calm.index.freq
    common = {"interval_method": "conformal", "calibration_fraction": 0.4}
    flat = small_gbm(calibration_half_life_hours=None, **common).fit(series).predict(2, quantiles=QUANTILES)
    recent = small_gbm(calibration_half_life_hours=12, **common).fit(series).predict(2, quantiles=QUANTILES)
    width = lambda f: float((f["0.95"] - f["0.05"]).mean())  # noqa: E731
    assert width(recent) > 1.3 * width(flat)


@pytest.mark.parametrize(
    "point_loss, expected",
    [
        # The absolute-error point model is the median: no booster of its own for 0.5.
        pytest.param("absolute_error", [0.05, 0.9, 0.95], id="median-is-the-point"),
        pytest.param("squared_error", [0.05, 0.5, 0.9, 0.95], id="mean-point-needs-a-median"),
    ],
)
def test_cqr_fits_one_booster_and_one_correction_per_quantile(point_loss, expected) -> None:
    estimator = small_gbm(interval_method="cqr", point_loss=point_loss).fit(noisy_daily(4))
    assert sorted(estimator.boosters_) == expected
    assert sorted(estimator.booster_errors_) == expected
