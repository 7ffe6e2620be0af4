"""forecaster.metrics against values computed by hand on tiny series (the arithmetic is in comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecaster import metrics

NAN = float("nan")


@pytest.mark.parametrize(
    ("actual", "forecast", "expected"),
    [
        # |1-2| + |3-3| + |5-2| = 1 + 0 + 3 = 4, over 3 pairs
        pytest.param([1, 3, 5], [2, 3, 2], 4 / 3, id="plain"),
        # the NaN actual is dropped: |1-2| + |5-2| = 4, over 2 pairs
        pytest.param([1, NAN, 5], [2, 3, 2], 2.0, id="nan-actual-masked"),
        # a NaN forecast where the actual is missing too is fine: |4-1| = 3
        pytest.param([NAN, 4], [NAN, 1], 3.0, id="nan-both"),
    ],
)
def test_mae(actual, forecast, expected):
    assert metrics.mae(actual, forecast) == pytest.approx(expected)


def test_mase_divides_by_scale():
    # MAE = (|10-12| + |20-16|) / 2 = 3; scale 2 -> 1.5
    assert metrics.mase([10, 20], [12, 16], 2.0) == pytest.approx(1.5)
    assert metrics.mase([10, 20], [12, 16], metrics.Scale(2.0, 1, "naive_lag1", 5)) == pytest.approx(1.5)


def test_naive_scale_daily_when_two_days():
    # Two days at 12-hour bins: a day is 2 bins. Values [1, 2, 4, 8]:
    # daily-naive errors: |4-1| = 3, |8-2| = 6 -> mean 4.5
    scale = metrics.naive_scale([1, 2, 4, 8], 43_200)
    assert (scale.value, scale.lag, scale.method, scale.n_pairs) == (4.5, 2, "seasonal_naive_daily", 2)


def test_naive_scale_falls_back_to_lag1_under_two_days():
    # 3 bins at 12 h = 1.5 days < 2 days: lag-1 naive errors |2-1| = 1, |4-2| = 2 -> 1.5
    scale = metrics.naive_scale([1, 2, 4], 43_200)
    assert (scale.value, scale.lag, scale.method) == (1.5, 1, "naive_lag1")


def test_naive_scale_skips_pairs_with_a_gap():
    # lag-1 pairs: (1, NaN) and (NaN, 4) dropped, (4, 7) -> 3; one pair
    scale = metrics.naive_scale([1, NAN, 4, 7], 43_200)
    assert (scale.value, scale.n_pairs) == (3.0, 1)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param([5, 5, 5], "constant", id="constant"),
        pytest.param([1, NAN, NAN, 4], "no observed pair", id="no-pair"),
        pytest.param([1], "more than 1", id="too-short"),
    ],
)
def test_naive_scale_refuses(values, message):
    with pytest.raises(ValueError, match=message):
        metrics.naive_scale(values, 43_200)


def test_smape_percent_and_zero_pair():
    # pair 1: 200 * |100-50| / (100+50) = 66.67; pair 2: 0 and 0 -> 0; mean = 33.33
    assert metrics.smape([100, 0], [50, 0]) == pytest.approx(100 / 3)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        # actual 10, forecast 8 (under by 2): q * 2. actual 10, forecast 13 (over by 3): (1 - q) * 3
        # q=0.9: (1.8 + 0.3) / 2 = 1.05
        pytest.param(0.9, 1.05, id="q0.9"),
        # q=0.5: (1.0 + 1.5) / 2 = 1.25 (half the absolute error)
        pytest.param(0.5, 1.25, id="q0.5"),
        # q=0.05: (0.1 + 2.85) / 2 = 1.475
        pytest.param(0.05, 1.475, id="q0.05"),
    ],
)
def test_pinball(q, expected):
    assert metrics.pinball([10, 10, NAN], [8, 13, 99], q) == pytest.approx(expected)


def test_coverage_counts_inside_inclusive():
    # actuals 1, 5, 9, NaN in [2, 8], [5, 5], [0, 8], [..]: out, in (edge), out -> 1 of 3
    assert metrics.coverage([1, 5, 9, NAN], [2, 5, 0, 0], [8, 5, 8, 1]) == pytest.approx(1 / 3)


def test_coverage_refuses_inverted_interval():
    with pytest.raises(ValueError, match="lower bound exceeds"):
        metrics.coverage([1.0], [2.0], [1.0])


def test_under_rate_is_strictly_above():
    # 5 > 4 yes, 4 > 4 no, 3 > 4 no, NaN skipped -> 1 of 3
    assert metrics.under_rate([5, 4, 3, NAN], [4, 4, 4, 4]) == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "fn", [metrics.mae, metrics.smape, metrics.under_rate, lambda a, f: metrics.pinball(a, f, 0.9)],
    ids=["mae", "smape", "under_rate", "pinball"],
)
def test_all_missing_actuals_score_nan(fn):
    assert math.isnan(fn([NAN, NAN], [1.0, 2.0]))


def test_missing_forecast_where_actual_observed_raises():
    with pytest.raises(ValueError, match="not finite at 1 position"):
        metrics.mae([1.0, 2.0], [1.0, NAN])


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="actual has 2 values but forecast has 3"):
        metrics.mae([1, 2], [1, 2, 3])


values = st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=40)


@settings(max_examples=60)
@given(values, st.floats(0.01, 0.99))
def test_perfect_forecast_scores_zero_and_pinball_nonnegative(actual, q):
    a = np.asarray(actual)
    assert metrics.mae(a, a) == 0.0
    assert metrics.smape(a, a) == 0.0
    assert metrics.pinball(a, a, q) == 0.0
    assert metrics.pinball(a, a + 1.0, q) >= 0.0
    assert metrics.under_rate(a, a) == 0.0
    assert metrics.coverage(a, a, a) == 1.0


@settings(max_examples=60)
@given(values, st.floats(0.01, 0.99), st.floats(-100, 100))
def test_pinball_at_half_is_half_mae(actual, q, shift):
    a = np.asarray(actual)
    f = a + shift
    assert metrics.pinball(a, f, 0.5) == pytest.approx(metrics.mae(a, f) / 2, rel=1e-9, abs=1e-9)
    assert 0.0 <= metrics.smape(a, np.abs(f)) <= 200.0
