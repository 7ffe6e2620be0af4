"""Quantiles from a model's own forecast errors, per lead (split-conformal style).

Every estimator produces a point forecast; its quantiles are the point plus the empirical quantile
of the errors (observed - forecast) it made at the same lead (h bins ahead) on data it has seen.
This is the residual form of split conformal prediction (Vovk et al.; the `ConformalIntervals` of
statsforecast do the same per horizon): intervals are as wide as the model's real misses, not as a
likelihood assumes, so a 0.9 interval covers about 90% when the future behaves like the past.

Errors may be kept *relative* to a level (the forecaster divides by the recent rate) so that one
error distribution serves both the nightly trough and the daily peak; callers multiply back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

# Fewer errors than this at a lead and the estimate borrows from the nearest leads that have more.
MIN_ERRORS_PER_LEAD = 20


def conformal_level(q: float, n: int) -> float:
    """The finite-sample level of split conformal: ceil((n+1) q)/n above the median, floor below.

    With n errors the plain q-quantile under-covers by about 1/n; the corrected level makes the
    interval valid for exchangeable errors (Lei et al. 2018, eq. 2). Clipped to [0, 1].
    """
    if n <= 0:
        return q
    if q >= 0.5:
        return min(1.0, math.ceil((n + 1) * q) / n)
    return max(0.0, math.floor((n + 1) * q) / n)


def error_quantiles(
    errors: np.ndarray, quantiles: Sequence[float], weights: np.ndarray | None = None
) -> np.ndarray:
    """Quantiles of one array of errors (NaN ignored); zeros when there is none.

    With `weights` the quantiles are of the weighted empirical distribution (weighted conformal,
    Barber et al. 2023, "Conformal prediction beyond exchangeability"): recent errors can count
    more when traffic drifts. The finite-sample correction then uses Kish's effective sample size
    (sum w)^2 / sum w^2, the n a weighted sample is worth.
    """
    errors = np.asarray(errors, dtype="float64")
    finite = np.isfinite(errors)
    if weights is None:
        errors = errors[finite]
        if errors.size == 0:
            return np.zeros(len(quantiles))
        levels = [conformal_level(q, errors.size) for q in quantiles]
        return np.quantile(errors, levels)
    weights = np.asarray(weights, dtype="float64")
    if weights.shape != errors.shape:
        raise ValueError(f"weights shape {weights.shape} differs from errors shape {errors.shape}")
    keep = finite & np.isfinite(weights) & (weights > 0)
    errors, weights = errors[keep], weights[keep]
    if errors.size == 0:
        return np.zeros(len(quantiles))
    n_eff = float(weights.sum() ** 2 / np.square(weights).sum())
    order = np.argsort(errors, kind="stable")
    errors, weights = errors[order], weights[order]
    # Midpoint plotting positions of the weighted sample (equal weights give the Hazen quantile).
    cumulative = (np.cumsum(weights) - 0.5 * weights) / weights.sum()
    levels = []
    for q in quantiles:
        level = q + (q - 0.5) / max(n_eff, 1.0)  # the ~1/n conformal widening, away from the median
        levels.append(min(1.0, max(0.0, level)))
    return np.interp(levels, cumulative, errors)


class LeadErrors:
    """Forecast errors grouped by lead (index 0 is one bin ahead), turned into quantile offsets.

    Leads beyond the last one measured reuse the last lead's errors widened by sqrt(h / last):
    forecast errors of a random-walk-like series grow with the square root of the lead, which is
    the least-surprising extrapolation and keeps intervals widening rather than freezing.
    """

    def __init__(
        self,
        errors_by_lead: Sequence[np.ndarray],
        weights_by_lead: Sequence[np.ndarray] | None = None,
    ):
        if weights_by_lead is not None and len(weights_by_lead) != len(errors_by_lead):
            raise ValueError(
                f"weights_by_lead has {len(weights_by_lead)} leads, errors_by_lead {len(errors_by_lead)}"
            )
        cleaned, cleaned_weights = [], []
        for i, errors in enumerate(errors_by_lead):
            errors = np.asarray(errors, dtype="float64")
            keep = np.isfinite(errors)
            cleaned.append(errors[keep])
            if weights_by_lead is not None:
                weights = np.asarray(weights_by_lead[i], dtype="float64")
                if weights.shape != errors.shape:
                    raise ValueError(
                        f"lead {i + 1}: {weights.size} weights for {errors.size} errors"
                    )
                cleaned_weights.append(weights[keep])
        self.errors_by_lead = cleaned
        # None: every error counts the same (plain split conformal).
        self.weights_by_lead = cleaned_weights if weights_by_lead is not None else None
        self._cache: dict[tuple[int, tuple[float, ...]], np.ndarray] = {}

    @property
    def max_lead(self) -> int:
        return len(self.errors_by_lead)

    def _pooled(self, lead_index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """This lead's errors (and weights), plus its neighbours' while there are too few (thin
        leads are noisy)."""
        errors = self.errors_by_lead[lead_index]
        weights = None if self.weights_by_lead is None else self.weights_by_lead[lead_index]
        radius = 0
        while errors.size < MIN_ERRORS_PER_LEAD and radius < self.max_lead:
            radius += 1
            lo, hi = max(0, lead_index - radius), min(self.max_lead, lead_index + radius + 1)
            errors = np.concatenate(self.errors_by_lead[lo:hi])
            if self.weights_by_lead is not None:
                weights = np.concatenate(self.weights_by_lead[lo:hi])
        return errors, weights

    def offsets(self, horizon: int, quantiles: Sequence[float]) -> np.ndarray:
        """(horizon, len(quantiles)) offsets to add to the point forecast (or to multiply the level)."""
        key = (int(horizon), tuple(float(q) for q in quantiles))
        if key in self._cache:
            return self._cache[key]
        out = np.zeros((horizon, len(quantiles)))
        if self.max_lead == 0:
            return out
        last = self.max_lead
        per_lead = []
        for i in range(min(horizon, last)):
            errors, weights = self._pooled(i)
            per_lead.append(error_quantiles(errors, quantiles, weights))
        for h in range(1, horizon + 1):
            if h <= last:
                out[h - 1] = per_lead[h - 1]
            else:
                out[h - 1] = per_lead[last - 1] * math.sqrt(h / last)
        self._cache[key] = out
        return out

    def __getstate__(self) -> dict:
        # The cache is derived data: leave it out so artifacts stay small and deterministic.
        return {"errors_by_lead": self.errors_by_lead, "weights_by_lead": self.weights_by_lead}

    def __setstate__(self, state: dict) -> None:
        self.errors_by_lead = state["errors_by_lead"]
        # Artifacts saved before weights existed hold none: equal weights, as they were fitted.
        self.weights_by_lead = state.get("weights_by_lead")
        self._cache = {}


def rolling_level(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the observed values in the `window` bins ending at each bin, carried over gaps."""
    level = pd.Series(values).rolling(window, min_periods=1).mean().ffill()
    return level.to_numpy(dtype="float64")


def level_floor(values: np.ndarray, fraction: float = 0.25) -> float:
    """What is added to the level errors are scaled by: a share of the mean rate (and never zero).

    Errors relative to the level alone explode on intermittent traffic (a burst of 3 over a level
    of 0.001 is a ratio of 3000, applied later to a level of 0.5); adding a quarter of the mean
    makes the scale absolute where traffic is near zero and relative where it is high.
    """
    observed = values[np.isfinite(values)]
    mean_abs = float(np.mean(np.abs(observed))) if observed.size else 0.0
    return max(1e-9, fraction * mean_abs)


def backtest_errors(
    values: np.ndarray,
    forecast: Callable[[int, int], np.ndarray],
    max_lead: int,
    n_origins: int,
    first_origin: int,
    level_window: int,
) -> LeadErrors:
    """Level-relative errors of `forecast(end, horizon)` (a forecast from values[:end]) at origins
    spread over values[first_origin:], per lead: the calibration set of split conformal.

    The estimator's parameters were fitted on these values, so the errors are a little optimistic;
    statistical models with few parameters (ETS, SARIMAX, MSTL, Prophet) overfit little, and the
    conformal level correction widens the quantiles slightly.
    """
    n = values.size
    level = rolling_level(values, level_window) + level_floor(values)
    last_origin = n - 2  # at least one lead has a target
    if last_origin < first_origin:
        return LeadErrors([np.empty(0)] * max_lead)
    origins = np.unique(np.linspace(first_origin, last_origin, n_origins).astype(int))
    errors: list[list[float]] = [[] for _ in range(max_lead)]
    for origin in origins.tolist():
        horizon = int(min(max_lead, n - 1 - origin))
        point = forecast(origin + 1, horizon)
        actual = values[origin + 1 : origin + 1 + horizon]
        relative = (actual - point) / level[origin]
        for h in range(horizon):
            if np.isfinite(relative[h]):
                errors[h].append(relative[h])
    return LeadErrors([np.asarray(e) for e in errors])
