"""The baselines every model must beat: last value and seasonal naive (daily, weekly).

All three are one rule with a different season: the forecast for a bin is the most recent
*observed* value at the same phase, at least one season back from the target and at or before the
origin. Last value is the season of one bin. Gaps (NaN) are skipped by carrying the last observed
value of each phase forward, so a gap never reads as zero traffic.

Quantiles are the point plus the empirical quantiles of the rule's own in-sample errors at the same
lead (see calibration.py): the rule has no fitted parameters, so these errors are honest
out-of-sample errors and the intervals are calibrated by construction.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from forecaster.errors import InsufficientHistory
from forecaster.estimators.base import Estimator
from forecaster.estimators.calibration import LeadErrors

DAY_SECONDS = 86_400
WEEK_SECONDS = 7 * DAY_SECONDS


def describe_span(seconds: float) -> str:
    """'3.5 days', '6 hours', '40 minutes': how much history there is, for error messages."""
    if seconds >= DAY_SECONDS:
        return f"{seconds / DAY_SECONDS:.3g} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} hours"
    return f"{seconds / 60:.3g} minutes"


def phase_ffill(values: np.ndarray, season: int) -> np.ndarray:
    """Each bin's value, or where it is NaN the last observed value at the same phase before it.

    Reshaping to (cycles, season) makes a phase a column; forward-filling down the columns carries
    the last observed value of that phase. A phase never observed stays NaN.
    """
    n = values.size
    cycles = -(-n // season)
    padded = np.full(cycles * season, np.nan)
    padded[:n] = values
    filled = pd.DataFrame(padded.reshape(cycles, season)).ffill().to_numpy().reshape(-1)
    return filled[:n]


def season_lag(h: int, season: int) -> int:
    """How far back the source of a lead-h forecast is: the first whole number of seasons >= h."""
    return math.ceil(h / season) * season


def naive_point(values: np.ndarray, season: int, horizon: int) -> np.ndarray:
    """Seasonal-naive forecast of the `horizon` bins after `values` (last value when season is 1)."""
    filled = phase_ffill(values, season)
    n = values.size
    observed = values[np.isfinite(values)]
    fallback = observed[-1] if observed.size else np.nan
    out = np.empty(horizon)
    for h in range(1, horizon + 1):
        source = n - 1 + h - season_lag(h, season)
        value = filled[source] if source >= 0 else np.nan
        # A phase never observed in the history falls back to the last observed value.
        out[h - 1] = value if np.isfinite(value) else fallback
    return out


def naive_errors(values: np.ndarray, season: int, horizon: int) -> list[np.ndarray]:
    """In-sample errors (observed - forecast) of the seasonal-naive rule at leads 1..horizon."""
    filled = phase_ffill(values, season)
    errors = []
    for h in range(1, horizon + 1):
        lag = season_lag(h, season)
        if lag >= values.size:
            errors.append(np.empty(0))
            continue
        e = values[lag:] - filled[:-lag]
        errors.append(e[np.isfinite(e)])
    return errors


class _SeasonalNaive(Estimator):
    """Seasonal naive with the season in seconds; subclasses name the season."""

    is_baseline = True
    season_seconds: int = 0  # 0 = one bin (last value)

    def __init__(self, error_window_days: float | None = None):
        # Errors from the whole history by default; a window keeps intervals to recent behaviour.
        if error_window_days is not None and error_window_days <= 0:
            raise ValueError(f"error_window_days must be positive, got {error_window_days}")
        self.error_window_days = error_window_days

    def _season_bins(self) -> int:
        if self.season_seconds == 0:
            return 1
        if self.season_seconds % self.step_seconds_:
            raise InsufficientHistory(
                f"{self.name}: a {self.step_seconds_} s bin does not divide the season of "
                f"{self.season_seconds} s"
            )
        return self.season_seconds // self.step_seconds_

    def _fit(self, series: pd.Series) -> None:
        season = self._season_bins()
        # One season to forecast from plus a day (or one bin for last value) of errors to calibrate.
        needed = season + (1 if season == 1 else DAY_SECONDS // self.step_seconds_)
        if len(series) < needed:
            raise InsufficientHistory(
                f"{self.name} needs {describe_span(needed * self.step_seconds_)} of history "
                f"(one season plus a day to measure its errors) at {self.step_seconds_} s bins, "
                f"got {describe_span(len(series) * self.step_seconds_)}"
            )
        values = series.to_numpy(dtype="float64")
        if self.error_window_days is not None:
            keep = int(self.error_window_days * DAY_SECONDS / self.step_seconds_) + season
            values = values[-keep:]
        self.season_bins_ = season
        self.values_ = values
        self.errors_: LeadErrors | None = None  # measured lazily for the horizon asked (cheap, vectorised)

    def _lead_errors(self, horizon: int) -> LeadErrors:
        if self.errors_ is None or self.errors_.max_lead < horizon:
            self.errors_ = LeadErrors(naive_errors(self.values_, self.season_bins_, horizon))
        return self.errors_

    def _predict(self, horizon: int, quantiles: list[float]) -> tuple[np.ndarray, np.ndarray]:
        return self._predict_from_values(self.values_, horizon, quantiles)

    def _predict_from(
        self, history: pd.Series, horizon: int, quantiles: list[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        # The rule has no parameters: the later history gives the point, the fitted errors the spread.
        return self._predict_from_values(history.to_numpy(dtype="float64"), horizon, quantiles)

    def _predict_from_values(
        self, values: np.ndarray, horizon: int, quantiles: list[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        point = naive_point(values, self.season_bins_, horizon)
        offsets = self._lead_errors(horizon).offsets(horizon, quantiles)
        return point, point[:, None] + offsets


class LastValue(_SeasonalNaive):
    """The last observed value, held flat."""

    name = "last_value"
    season_seconds = 0


class SeasonalNaiveDaily(_SeasonalNaive):
    """The value one day before the target (the most recent observed one at that time of day)."""

    name = "seasonal_naive_daily"
    season_seconds = DAY_SECONDS


class SeasonalNaiveWeekly(_SeasonalNaive):
    """The value one week before the target (the most recent observed one at that time of week)."""

    name = "seasonal_naive_weekly"
    season_seconds = WEEK_SECONDS
