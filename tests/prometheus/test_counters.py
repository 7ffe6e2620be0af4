"""Raw counter samples to counts per bin: resets, exact and interpolated edges, gaps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecaster.prometheus.counters import bin_counts, counter_increases


@pytest.mark.parametrize(
    "values, expected",
    [
        pytest.param([0, 5, 12, 12, 20], [5, 7, 0, 8], id="monotone"),
        pytest.param([10, 15, 3, 9], [5, 3, 6], id="reset-increase-is-new-value"),
        pytest.param([10, 0, 4], [0, 4], id="reset-to-zero"),
        pytest.param([7], [], id="one-sample-no-interval"),
        pytest.param([100, 50, 40, 45], [50, 40, 5], id="two-resets-in-a-row"),
    ],
)
def test_counter_increases(values, expected):
    assert counter_increases(np.array(values, float)).tolist() == expected


def test_reset_inside_a_bin_counts_the_increase_after_it():
    times = np.array([0, 20, 40, 60, 80, 100, 120], float)
    values = np.array([0, 10, 20, 5, 15, 25, 35], float)  # restart between t=40 and t=60
    counts = bin_counts(times, values, np.array([0, 60, 120], float), max_gap=30)
    assert counts.tolist() == [25.0, 30.0]  # 10 + 10 + 5, then 10 + 10 + 10


def test_samples_on_the_edges_are_read_exactly():
    times = np.arange(0, 301, 60, dtype=float)
    values = np.cumsum([0, 3, 4, 5, 6, 7]).astype(float)
    counts = bin_counts(times, values, times, max_gap=90)
    assert counts.tolist() == [3, 4, 5, 6, 7]


def test_edges_between_samples_are_interpolated():
    times = np.array([-15, 15, 45, 75], float)
    values = np.array([0, 30, 60, 90], float)  # one per second, scraped off the minute
    counts = bin_counts(times, values, np.array([0, 60], float), max_gap=40)
    assert counts == pytest.approx([60.0])


@pytest.mark.parametrize(
    "max_gap, expected",
    [
        pytest.param(90, [1.0, np.nan, np.nan, 1.0], id="gap-longer-than-max-gap-is-nan-both-sides"),
        pytest.param(130, [1.0, 1.0, 1.0, 1.0], id="gap-within-max-gap-is-interpolated"),
    ],
)
def test_gap_between_samples(max_gap, expected):
    times = np.array([0, 60, 180, 240], float)  # no sample at 120
    values = np.array([0, 1, 3, 4], float)
    edges = np.array([0, 60, 120, 180, 240], float)
    np.testing.assert_array_equal(bin_counts(times, values, edges, max_gap=max_gap), expected)


def test_edges_outside_the_samples_are_nan():
    counts = bin_counts(np.array([60, 120], float), np.array([1, 2], float), np.array([0, 60, 120, 180], float),
                        max_gap=90)
    assert np.isnan(counts[0]) and counts[1] == 1 and np.isnan(counts[2])


def test_no_samples_gives_all_nan():
    assert np.isnan(bin_counts(np.array([]), np.array([]), np.array([0, 60, 120.0]), max_gap=90)).all()


@pytest.mark.parametrize(
    "times, values, edges, message",
    [
        pytest.param([0, 0], [1, 2], [0, 60], "increase strictly", id="duplicate-times"),
        pytest.param([0, 60], [1], [0, 60], "differ in shape", id="shape"),
        pytest.param([0, 60], [1, 2], [60, 0], "boundaries", id="edges-decrease"),
        pytest.param([0, 60], [1, 2], [0], "two boundaries", id="one-edge"),
    ],
)
def test_bad_input_is_refused(times, values, edges, message):
    with pytest.raises(ValueError, match=message):
        bin_counts(np.array(times, float), np.array(values, float), np.array(edges, float), max_gap=90)


@settings(max_examples=60)
@given(
    counts=st.lists(st.integers(0, 10_000), min_size=2, max_size=60),
    resets=st.lists(st.integers(1, 59), max_size=3),
)
def test_per_minute_counts_survive_any_resets(counts, resets):
    """A counter sampled on the minute, restarting anywhere, gives back every minute's count."""
    values, total = [0.0], 0.0
    reset_at = {r for r in resets if r < len(counts)}
    for i, n in enumerate(counts, start=1):
        # A restart: the counter begins from zero. One that lands at or above the old value cannot
        # be told from growth (Prometheus cannot either), so only visible drops are generated.
        total = float(n) if i in reset_at and n < total else total + n
        values.append(total)
    times = 60.0 * np.arange(len(values))
    got = bin_counts(times, np.array(values), times, max_gap=90)
    assert got.tolist() == pytest.approx([float(n) for n in counts])
    assert (got >= 0).all()
