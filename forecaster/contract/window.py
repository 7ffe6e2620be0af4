"""The scaling window's rule, once: which bins of a forecast a time window touches.

A point stamped t stands for the bin [t, t + step). A window [start, end] touches bin t when

    t <= end  and  t + step > start          (include_end; a slice [start, end): t < end)

Forecast.window_max (the contract), the service's external metrics and KEDA answers
(forecaster/service/cache.py) and the controller's predictive stage (controller/policy/predictive.py)
all take their window from `overlapping_bins`, so an HPA reading the external metrics API and the
controller look at the same bins.

The points are regular (Forecast checks t_i = t_0 + i * step), so the bins are found by arithmetic
instead of a scan: this runs on every HPA/KEDA request and every decide() call, over forecasts of
up to a day of bins. Times are Unix seconds (floats, as `datetime.timestamp()` gives them); bin i
starts at `first + i * step`, and the comparisons above are made on exactly that float, so the
result is the scan's, not an approximation of it.
"""

from __future__ import annotations

import math


def overlapping_bins(first: float, step: float, n: int, start: float, end: float, *,
                     include_end: bool = True) -> tuple[int, int]:
    """(lo, hi) with 0 <= lo <= hi <= n: the bins lo <= i < hi of n regular bins touching the window.

    `first` is the first point's time and `step` the bin width (> 0), in seconds; lo == hi when no
    bin touches it. Each boundary is floor() of a float division, which can land one bin off at an
    exact bin edge; one comparison on the bin's own start time corrects it.
    """
    if n <= 0:
        return 0, 0
    # lo: the first bin that ends after start (first + (i + 1) * step > start).
    lo = math.floor((start - first) / step)
    if first + lo * step > start:
        lo -= 1  # bin lo - 1 ends after start too
    elif first + (lo + 1) * step <= start:
        lo += 1  # bin lo ends at or before start
    # hi - 1: the last bin that starts at or before end (before end, for a slice).
    if include_end:
        last = math.floor((end - first) / step)
        if first + (last + 1) * step <= end:
            last += 1
        elif first + last * step > end:
            last -= 1
    else:
        last = math.ceil((end - first) / step) - 1
        if first + (last + 1) * step < end:
            last += 1
        elif first + last * step >= end:
            last -= 1
    lo = min(max(lo, 0), n)
    return lo, min(max(last + 1, lo), n)
