"""The shape shared by the statistical models: fit parameters once, forecast from any later history
with those parameters fixed, and take quantiles from conformal errors measured at origins inside the
training data (see calibration.backtest_errors)."""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable

import numpy as np
import pandas as pd

from forecaster.estimators.base import Estimator
from forecaster.estimators.calibration import backtest_errors, level_floor, rolling_level

DAY_SECONDS = 86_400


def interpolate_gaps(values: np.ndarray) -> np.ndarray:
    """Linear interpolation across NaN (and the edges held flat), for libraries that cannot mask.

    Only the fitting internals of Holt-Winters and MSTL see this: their recursions and LOESS
    smoothers have no notion of a missing value. Forecasts are never scored against filled values,
    and a gap is never filled with zero.
    """
    series = pd.Series(values)
    if series.notna().all():
        return values
    return series.interpolate(limit_direction="both").to_numpy(dtype="float64")


class CalibratedEstimator(Estimator):
    """Base of the statistical models. Subclasses implement `_fit_params` and `_point`."""

    def __init__(
        self,
        max_lead_minutes: int = 120,
        calibration_origins: int = 48,
        calibration_days: float = 2.0,
        level_window_minutes: int = 60,
    ):
        if max_lead_minutes <= 0 or level_window_minutes <= 0 or calibration_days <= 0:
            raise ValueError(
                f"max_lead_minutes ({max_lead_minutes}), level_window_minutes "
                f"({level_window_minutes}) and calibration_days ({calibration_days}) must be positive"
            )
        if calibration_origins < 4:
            raise ValueError(f"calibration_origins must be at least 4, got {calibration_origins}")
        self.max_lead_minutes = max_lead_minutes
        self.calibration_origins = calibration_origins
        self.calibration_days = calibration_days
        self.level_window_minutes = level_window_minutes

    @abstractmethod
    def _fit_params(self, values: np.ndarray, index: pd.DatetimeIndex) -> None:
        """Fit the model's parameters on the training values (NaN for gaps)."""

    @abstractmethod
    def _point(self, values: np.ndarray, end_time: pd.Timestamp, horizon: int) -> np.ndarray:
        """Point forecast of the `horizon` bins after `values` (whose last bin is `end_time`)."""

    def _fit(self, series: pd.Series) -> None:
        values = series.to_numpy(dtype="float64")
        self._fit_params(values, series.index)
        step = self.step_seconds_
        self.level_window_ = max(2, round(self.level_window_minutes * 60 / step))
        self.floor_ = level_floor(values)
        max_lead = max(1, math.ceil(self.max_lead_minutes * 60 / step))
        calibration_bins = int(self.calibration_days * DAY_SECONDS / step)
        first_origin = max(self.level_window_, values.size - calibration_bins)
        forecast, earliest, every_origin = self._calibration_forecasts(values)
        first_origin = max(first_origin, earliest)
        origins = values.size if every_origin else self.calibration_origins
        self.errors_ = backtest_errors(
            values, forecast, max_lead, origins, first_origin, self.level_window_
        )
        self.tail_values_ = values[-self._tail_bins() :]

    def _calibration_forecasts(
        self, values: np.ndarray
    ) -> tuple[Callable[[int, int], np.ndarray], int, bool]:
        """`forecast(end, horizon)` from values[:end] for calibration, the earliest origin it
        supports, and whether it is cheap enough to use every origin (else `calibration_origins`).
        Default: `_point` on the truncated history; override where one pass gives them all."""
        index = self.train_index_

        def forecast(end: int, horizon: int) -> np.ndarray:
            return self._point(values[:end], index[end - 1], horizon)

        return forecast, 0, False

    def _tail_bins(self) -> int:
        """How much of the end of the training data `_predict` needs (override to keep less)."""
        return len(self.train_index_)

    def _level(self, values: np.ndarray) -> float:
        return float(rolling_level(values, self.level_window_)[-1]) + self.floor_

    def _forecast(
        self, values: np.ndarray, end_time: pd.Timestamp, horizon: int, quantiles: list[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        point = np.asarray(self._point(values, end_time, horizon), dtype="float64")
        level = self._level(values)
        if not np.isfinite(level):
            level = self.floor_
        offsets = self.errors_.offsets(horizon, quantiles) * level
        return point, point[:, None] + offsets

    def _predict(self, horizon: int, quantiles: list[float]) -> tuple[np.ndarray, np.ndarray]:
        return self._forecast(self.tail_values_, self.last_timestamp_, horizon, quantiles)

    def _predict_from(
        self, history: pd.Series, horizon: int, quantiles: list[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        return self._forecast(history.to_numpy(dtype="float64"), history.index[-1], horizon, quantiles)
