"""The cache's arithmetic window lookup agrees with the contract's scan, for any window."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from forecaster.contract import Forecast, ForecastPoint
from forecaster.service.cache import overlapping, slice_forecast, window_max

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def make(n: int, step: int = 600) -> Forecast:
    points = [ForecastPoint(timestamp=T0 + timedelta(seconds=i * step), mean=float(i),
                            quantiles={"0.5": float(i), "0.9": float(i) + 0.5}) for i in range(n)]
    return Forecast(workload="w", signal="requests", model="m", generated_at=T0, step_seconds=step,
                    points=points)


offsets = st.integers(min_value=-5000, max_value=100_000)


@given(n=st.integers(0, 150), start=offsets, length=st.integers(0, 50_000))
def test_window_max_matches_the_contract(n, start, length):
    forecast = make(n)
    begin = T0 + timedelta(seconds=start)
    end = begin + timedelta(seconds=length)
    assert window_max(forecast, begin, end, 0.9) == forecast.window_max(begin, end, 0.9)


@given(n=st.integers(0, 150), start=offsets, length=st.integers(1, 50_000))
def test_slice_keeps_exactly_the_overlapping_bins(n, start, length):
    forecast = make(n)
    begin = T0 + timedelta(seconds=start)
    end = begin + timedelta(seconds=length)
    expected = [p.timestamp for p in forecast.points
                if p.timestamp < end and p.timestamp + timedelta(seconds=600) > begin]
    got = slice_forecast(forecast, start=begin, horizon=timedelta(seconds=length), quantiles=None,
                         step_seconds=None)
    assert [p.timestamp for p in got.points] == expected
    assert forecast.points[overlapping(forecast, begin, end, include_end=False)] == got.points
