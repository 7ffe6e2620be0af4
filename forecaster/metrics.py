"""Forecast accuracy scores, pure numpy, with missing actuals masked out of every score.

Every function takes the actuals and the forecast as arrays of the same length. A NaN actual is a
collection gap (forecaster.series): the pair is excluded, never scored as zero traffic. A forecast
must be finite wherever its actual is present; a NaN there is a model bug and raises. A score over
no observed pair is NaN (not 0: "no evidence" must not read as "perfect").

Definitions follow Hyndman & Koehler, "Another look at measures of forecast accuracy" (2006) for
MASE and the M4 competition for sMAPE (in percent, 0 to 200).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY_SECONDS = 86_400


@dataclass(frozen=True)
class Scale:
    """The MASE denominator: the in-sample MAE of a naive rule on the training window."""

    value: float
    lag: int  # bins between a value and the naive forecast of it
    method: str  # "seasonal_naive_daily" or "naive_lag1" (history shorter than two days)
    n_pairs: int

    def to_dict(self) -> dict:
        return {"value": self.value, "lag": self.lag, "method": self.method, "n_pairs": self.n_pairs}


def _pairs(actual, forecast, name: str = "forecast") -> tuple[np.ndarray, np.ndarray]:
    """The (actual, forecast) pairs whose actual is observed; raises on a missing forecast there."""
    a = np.asarray(actual, dtype="float64").reshape(-1)
    f = np.asarray(forecast, dtype="float64").reshape(-1)
    if a.shape != f.shape:
        raise ValueError(f"actual has {a.size} values but {name} has {f.size}")
    present = np.isfinite(a)
    bad = present & ~np.isfinite(f)
    if bad.any():
        raise ValueError(
            f"{name} is not finite at {int(bad.sum())} position(s) where the actual is observed "
            f"(first at index {int(np.flatnonzero(bad)[0])})"
        )
    return a[present], f[present]


def naive_scale(train, step_seconds: int) -> Scale:
    """In-sample MAE of the seasonal naive (lag one day) on `train`; lag-1 naive under two days.

    Two days is the least history whose daily-naive errors cover a whole day of phases; with less,
    the lag-1 naive scale is the usual fallback (Hyndman & Koehler use it for non-seasonal data).
    Pairs with a missing value on either side are skipped. Raises when no pair is observed or the
    MAE is zero (a constant training window: MASE would divide by zero).
    """
    values = np.asarray(train, dtype="float64").reshape(-1)
    if step_seconds <= 0:
        raise ValueError(f"step_seconds must be positive, got {step_seconds}")
    day = DAY_SECONDS // step_seconds if DAY_SECONDS % step_seconds == 0 else 0
    if day and values.size >= 2 * day:
        lag, method = day, "seasonal_naive_daily"
    else:
        lag, method = 1, "naive_lag1"
    if values.size <= lag:
        raise ValueError(f"a MASE scale needs more than {lag} training values, got {values.size}")
    diff = values[lag:] - values[:-lag]
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        raise ValueError(f"no observed pair {lag} bin(s) apart in the training window for the MASE scale")
    value = float(np.mean(np.abs(diff)))
    if value == 0.0:
        raise ValueError(f"the training window's {method} MAE is zero (constant series): MASE is undefined")
    return Scale(value=value, lag=lag, method=method, n_pairs=int(diff.size))


def mae(actual, forecast) -> float:
    a, f = _pairs(actual, forecast)
    return float(np.mean(np.abs(a - f))) if a.size else float("nan")


def mase(actual, forecast, scale: Scale | float) -> float:
    """Mean absolute error over the observed actuals, divided by the naive scale."""
    denominator = scale.value if isinstance(scale, Scale) else float(scale)
    if not denominator > 0:
        raise ValueError(f"MASE scale must be positive, got {denominator}")
    return mae(actual, forecast) / denominator


def smape(actual, forecast) -> float:
    """Symmetric MAPE in percent: 200 * mean(|a - f| / (|a| + |f|)); a pair with a = f = 0 scores 0."""
    a, f = _pairs(actual, forecast)
    if a.size == 0:
        return float("nan")
    denominator = np.abs(a) + np.abs(f)
    ratio = np.divide(np.abs(a - f), denominator, out=np.zeros_like(a), where=denominator > 0)
    return float(200.0 * np.mean(ratio))


def pinball(actual, forecast_q, q: float) -> float:
    """Mean quantile (pinball) loss at level q: q(a - f) when a >= f, else (1 - q)(f - a)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile {q!r} must be strictly between 0 and 1")
    a, f = _pairs(actual, forecast_q, name=f"quantile {q} forecast")
    if a.size == 0:
        return float("nan")
    diff = a - f
    return float(np.mean(np.maximum(q * diff, (q - 1.0) * diff)))


def coverage(actual, lower, upper) -> float:
    """Share of observed actuals inside [lower, upper] (both ends included)."""
    a, lo = _pairs(actual, lower, name="lower bound")
    _, hi = _pairs(actual, upper, name="upper bound")
    if a.size == 0:
        return float("nan")
    if np.any(lo > hi):
        raise ValueError("interval lower bound exceeds its upper bound")
    return float(np.mean((a >= lo) & (a <= hi)))


def under_rate(actual, forecast_q) -> float:
    """Share of observed actuals strictly above the forecast: how often capacity would fall short."""
    a, f = _pairs(actual, forecast_q)
    return float(np.mean(a > f)) if a.size else float("nan")


def n_observed(actual) -> int:
    return int(np.isfinite(np.asarray(actual, dtype="float64")).sum())
