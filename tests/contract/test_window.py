"""The scaling window's rule (forecaster.contract.window): the grid arithmetic equals the scan.

The definition: a point stamped t stands for the bin [t, t + step), and a window [start, end]
touches it when t <= end and t + step > start (a slice [start, end): t < end). Each test scans the
bins with that definition and compares; the float cases include exact bin edges and sub-second
times, where a bare floor() of the division lands one bin off.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecaster.contract import Forecast, ForecastPoint
from forecaster.contract.window import overlapping_bins

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def scan(first: float, step: float, n: int, start: float, end: float, include_end: bool) -> list[int]:
    """The definition, bin by bin (bin i starts at first + i * step)."""
    found = []
    for i in range(n):
        t = first + i * step
        if (t <= end if include_end else t < end) and first + (i + 1) * step > start:
            found.append(i)
    return found


@pytest.mark.parametrize(
    ("start", "end", "include_end", "expected"),
    [
        # 10 bins of 60 s from t = 1000: bin i is [1000 + 60 i, 1060 + 60 i).
        pytest.param(1000, 1000, True, (0, 1), id="instant-at-first-bin-start"),
        pytest.param(1059.999, 1060, True, (0, 2), id="end-on-a-bin-start-includes-it"),
        pytest.param(1059.999, 1060, False, (0, 1), id="slice-end-on-a-bin-start-excludes-it"),
        pytest.param(1060, 1060, True, (1, 2), id="start-on-a-bin-end-skips-that-bin"),
        pytest.param(1300, 1360, True, (5, 7), id="lead-to-lead-plus-interval"),
        pytest.param(1300, 1360, False, (5, 6), id="slice-of-one-bin"),
        pytest.param(0, 999.5, True, (0, 0), id="before-the-first-bin"),
        pytest.param(1600, 1700, True, (10, 10), id="after-the-last-bin"),
        pytest.param(1599.5, 9999, True, (9, 10), id="overlaps-the-last-bin-only"),
        pytest.param(0, 99999, True, (0, 10), id="covers-everything"),
        pytest.param(1400, 1300, True, (6, 6), id="reversed-window-is-empty"),
    ],
)
def test_overlapping_bins_table(start, end, include_end, expected) -> None:
    assert overlapping_bins(1000.0, 60, 10, start, end, include_end=include_end) == expected


@pytest.mark.parametrize(
    ("first", "step", "start", "include_end", "fix"),
    [
        # Windows [start, start] where floor() of the float division is one bin off and the
        # comparison on the bin's own start time corrects it (found by a search; step 1 and 7 s).
        pytest.param(1417.1754419668082, 1, 6136.175441966808, True, "lo down, hi down", id="floor-one-high"),
        pytest.param(2722.4, 7, 6299.4, True, "lo up, hi up", id="floor-one-low"),
        pytest.param(1390.3478477717802, 1, 4033.3478477717804, False, "slice end up", id="ceil-one-low"),
        pytest.param(7246.400000000001, 3, 12472.400000000001, False, "slice end down", id="ceil-one-high"),
    ],
)
def test_float_edges_follow_the_definition(first, step, start, include_end, fix) -> None:
    lo, hi = overlapping_bins(first, step, 10_000, start, start, include_end=include_end)
    assert list(range(lo, hi)) == scan(first, step, 10_000, start, start, include_end), fix


def test_no_points_no_bins() -> None:
    assert overlapping_bins(1000.0, 60, 0, 900, 2000) == (0, 0)


unix = st.floats(min_value=1.6e9, max_value=1.9e9, allow_nan=False)
steps = st.one_of(st.sampled_from([1, 15, 60, 300, 600, 3600]), st.integers(1, 86_400))


@settings(max_examples=2000)
@given(first=unix, step=steps, n=st.integers(0, 300), offset=st.floats(-5e4, 2e6, allow_nan=False),
       width=st.floats(0, 1e5, allow_nan=False), include_end=st.booleans())
def test_arithmetic_equals_the_scan(first, step, n, offset, width, include_end) -> None:
    start = first + offset
    end = start + width
    lo, hi = overlapping_bins(first, step, n, start, end, include_end=include_end)
    assert 0 <= lo <= hi <= n
    assert list(range(lo, hi)) == scan(first, step, n, start, end, include_end)


def _nudged(x: float, ulps: int) -> float:
    for _ in range(abs(ulps)):
        x = math.nextafter(x, math.inf if ulps > 0 else -math.inf)
    return x


@settings(max_examples=3000)
@given(first=st.one_of(unix, st.floats(0, 1e4, allow_nan=False)), step=steps, n=st.integers(1, 300),
       k=st.integers(-5, 310), j=st.integers(0, 20), ulps=st.integers(-2, 2), include_end=st.booleans())
def test_bin_edges_to_the_last_float(first, step, n, k, j, ulps, include_end) -> None:
    """Windows on bin boundaries and a float or two either side, where floor() of the division is
    fragile (first near 0 makes start - first inexact, unlike Unix times of today)."""
    start = _nudged(first + k * step, ulps)
    end = _nudged(first + (k + j) * step, -ulps)
    lo, hi = overlapping_bins(first, step, n, start, end, include_end=include_end)
    assert list(range(lo, hi)) == scan(first, step, n, start, end, include_end)


def _forecast(n: int, step: int, first: datetime) -> Forecast:
    points = [ForecastPoint(timestamp=first + timedelta(seconds=i * step), mean=float(i),
                            quantiles={"0.9": float((i * 7) % 11)}) for i in range(n)]
    return Forecast(workload="w", signal="requests", model="m", generated_at=first, step_seconds=step, points=points)


@settings(max_examples=500)
@given(n=st.integers(0, 120), step=st.sampled_from([60, 300, 600]), micro=st.integers(0, 999_999),
       offset=st.integers(-10_000_000, 80_000_000_000), width=st.integers(0, 3_600_000_000))
def test_forecast_window_max_equals_the_datetime_scan(n, step, micro, offset, width) -> None:
    """Forecast.window_max (arithmetic) against the scan on the datetimes themselves, microsecond times."""
    first = T0 + timedelta(microseconds=micro)
    forecast = _forecast(n, step, first)
    start = first + timedelta(microseconds=offset)
    end = start + timedelta(microseconds=width)
    values = [p.quantiles["0.9"] for p in forecast.points
              if p.timestamp <= end and p.timestamp + timedelta(seconds=step) > start]
    assert forecast.window_max(start, end, 0.9) == (max(values) if values else None)


def test_forecast_window_max_names_a_missing_quantile() -> None:
    forecast = _forecast(5, 60, T0)
    with pytest.raises(KeyError, match="quantile 0.5 not in forecast"):
        forecast.window_max(T0, T0 + timedelta(minutes=2), 0.5)
    assert forecast.window_max(T0 + timedelta(hours=1), T0 + timedelta(hours=2), 0.5) is None  # no bin: no lookup
