"""Raw counter samples -> counts per bin, with counter resets handled. Pure numpy, no I/O.

A counter only grows; a drop means the process restarted and the counter began again from zero,
so the increase over that interval is the new value (the rule Prometheus's own rate()/increase()
apply: promql/functions.go extrapolatedRate adds the previous value back at each drop).
"""

from __future__ import annotations

import numpy as np


def counter_increases(values: np.ndarray) -> np.ndarray:
    """Increase over each interval between consecutive samples (len(values) - 1 of them).

    A drop is a reset: the increase over that interval is the new value, not the (negative)
    difference.
    """
    values = np.asarray(values, dtype="float64")
    if values.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {values.shape}")
    if len(values) < 2:
        return np.empty(0, dtype="float64")
    diff = np.diff(values)
    reset = diff < 0
    return np.where(reset, values[1:], diff)


def bin_counts(
    times: np.ndarray,
    values: np.ndarray,
    boundaries: np.ndarray,
    *,
    max_gap: float,
) -> np.ndarray:
    """Counts in each bin [boundaries[j], boundaries[j+1]) from one counter's samples.

    The counter is made continuous (resets removed), then read at each boundary: exactly where a
    sample sits on it, else interpolated linearly between the samples either side, but only when
    they are at most `max_gap` seconds apart. A boundary outside the samples or inside a longer
    interval has no value, and both bins beside it are NaN: a counter's increase across a gap in
    collection is real but cannot be placed in time, so it is not spread over the gap (a gap stays
    a gap, never zero and never an average).
    """
    times = np.asarray(times, dtype="float64")
    values = np.asarray(values, dtype="float64")
    boundaries = np.asarray(boundaries, dtype="float64")
    if times.shape != values.shape:
        raise ValueError(f"times {times.shape} and values {values.shape} differ in shape")
    if len(boundaries) < 2:
        raise ValueError("need at least two boundaries (one bin)")
    if np.any(np.diff(boundaries) <= 0):
        raise ValueError("boundaries must increase strictly")
    if len(times) and np.any(np.diff(times) <= 0):
        raise ValueError("sample times must increase strictly (sort and de-duplicate first)")
    if len(times) < 1:
        return np.full(len(boundaries) - 1, np.nan)
    continuous = np.concatenate([[0.0], np.cumsum(counter_increases(values))])
    # Index of the first sample at or after each boundary.
    right = np.searchsorted(times, boundaries, side="left")
    inside = right < len(times)
    exact = inside & (times[np.minimum(right, len(times) - 1)] == boundaries)
    left = right - 1
    between = inside & ~exact & (left >= 0)
    gap_ok = np.zeros(len(boundaries), dtype=bool)
    gap_ok[between] = (times[right[between]] - times[left[between]]) <= max_gap
    at = np.full(len(boundaries), np.nan)
    at[exact] = continuous[right[exact]]
    lo, hi = left[gap_ok], right[gap_ok]
    frac = (boundaries[gap_ok] - times[lo]) / (times[hi] - times[lo])
    at[gap_ok] = continuous[lo] + frac * (continuous[hi] - continuous[lo])
    return np.diff(at)
