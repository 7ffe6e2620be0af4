"""Prophet with daily and weekly seasonality, quantiles from conformal residuals.

Prophet's own intervals come from `uncertainty_samples` simulations, which make predict about 30x
slower; they are turned off (uncertainty_samples=0) and the quantiles come from the model's errors at
each lead instead (calibration.py). Fitting is kept cheap by aggregating to 5-minute bins or coarser
(Prophet's Stan optimisation scales with rows; the daily shape needs no finer bins), and Prophet drops
rows whose `y` is NaN, so gaps are simply left out.

Prophet's forecast is a function of time only. From a later origin the same curve is used, plus a
level correction: the mean miss over the last hour, decaying with the lead (half-life one hour), so
a day that runs above the usual curve is followed at short leads.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pandas as pd

from forecaster.errors import InsufficientHistory
from forecaster.estimators.base import Estimator
from forecaster.estimators.baselines import DAY_SECONDS, WEEK_SECONDS, describe_span
from forecaster.estimators.calibration import LeadErrors, level_floor, rolling_level
from forecaster.series import resample_rate


def _silence_prophet() -> None:
    # cmdstanpy logs every optimisation at INFO, prophet logs its seasonality choices.
    for name in ("cmdstanpy", "prophet", "prophet.plot"):
        logger = logging.getLogger(name)
        # prophet.plot logs "Importing plotly failed" at ERROR on import; plots are not used here.
        logger.setLevel(logging.CRITICAL)
        logger.propagate = False
        # cmdstanpy sets its own level and handler when first used, so the level alone is undone.
        if name == "cmdstanpy":
            logger.disabled = True


def _frame(times: pd.DatetimeIndex) -> pd.DataFrame:
    # Prophet wants naive timestamps; the seasonality is then in UTC hours, like the rest of prescaler.
    return pd.DataFrame({"ds": times.tz_convert("UTC").tz_localize(None)})


class ProphetForecaster(Estimator):
    """Prophet (daily + weekly seasonality), no sampling; level-corrected from later origins."""

    name = "prophet"

    def __init__(
        self,
        min_fit_bin_seconds: int = 300,
        max_lead_minutes: int = 120,
        level_window_minutes: int = 60,
        correction_half_life_minutes: float = 60.0,
        changepoint_prior_scale: float = 0.05,
        n_changepoints: int = 10,
    ):
        if min_fit_bin_seconds < 60 or max_lead_minutes <= 0 or level_window_minutes <= 0:
            raise ValueError(
                f"min_fit_bin_seconds ({min_fit_bin_seconds}) must be >= 60, max_lead_minutes "
                f"({max_lead_minutes}) and level_window_minutes ({level_window_minutes}) positive"
            )
        if correction_half_life_minutes < 0:
            raise ValueError(
                f"correction_half_life_minutes must be >= 0, got {correction_half_life_minutes}"
            )
        self.min_fit_bin_seconds = min_fit_bin_seconds
        self.max_lead_minutes = max_lead_minutes
        self.level_window_minutes = level_window_minutes
        self.correction_half_life_minutes = correction_half_life_minutes
        self.changepoint_prior_scale = changepoint_prior_scale
        self.n_changepoints = n_changepoints

    def _curve(self, times: pd.DatetimeIndex) -> np.ndarray:
        with warnings.catch_warnings():
            # Prophet 1.x calls pandas APIs that pandas 3 deprecates (inplace=); not ours to fix.
            warnings.filterwarnings("ignore", module="prophet")
            return self.model_.predict(_frame(times))["yhat"].to_numpy(dtype="float64")

    def _decay(self, horizon: int) -> np.ndarray:
        if self.correction_half_life_minutes == 0:
            return np.zeros(horizon)
        half_life_bins = self.correction_half_life_minutes * 60 / self.step_seconds_
        return 0.5 ** (np.arange(1, horizon + 1) / half_life_bins)

    def _fit(self, series: pd.Series) -> None:
        _silence_prophet()  # before the import: prophet.plot logs at import time
        from prophet import Prophet  # lazy: heavy import

        step = self.step_seconds_
        span = len(series) * step
        if span < 2 * DAY_SECONDS:
            raise InsufficientHistory(
                f"prophet needs 2 days of history at {step} s bins (its daily seasonality), got "
                f"{describe_span(span)}"
            )
        fit_series = series
        if step < self.min_fit_bin_seconds:
            fit_series = resample_rate(series, self.min_fit_bin_seconds)
        frame = _frame(fit_series.index)
        frame["y"] = fit_series.to_numpy()
        frame = frame.dropna()  # Prophet would drop NaN y too; doing it here keeps the row count honest
        if len(frame) < 20:
            raise InsufficientHistory(f"prophet: only {len(frame)} observed bins to fit")
        # Under two weeks a weekly cycle would be fitted from one or two samples of each weekday.
        model = Prophet(
            daily_seasonality=True,
            weekly_seasonality=span >= 2 * WEEK_SECONDS,
            yearly_seasonality=False,
            uncertainty_samples=0,
            changepoint_prior_scale=self.changepoint_prior_scale,
            n_changepoints=min(self.n_changepoints, max(0, len(frame) // 10)),
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="prophet")  # pandas 3 deprecations inside Prophet
            model.fit(frame, algorithm="LBFGS")
        self.model_ = model

        values = series.to_numpy(dtype="float64")
        self.level_window_ = max(2, round(self.level_window_minutes * 60 / step))
        self.max_lead_ = max(1, math.ceil(self.max_lead_minutes * 60 / step))
        self.floor_ = level_floor(values)
        curve = self._curve(series.index)
        # Conformal errors at every origin at once: the curve is fixed, so the forecast from origin t
        # at lead h is curve[t+h] + correction(t) * decay[h], all vectorised.
        correction = rolling_level(values - curve, self.level_window_)
        level = rolling_level(values, self.level_window_) + self.floor_
        decay = self._decay(self.max_lead_)
        errors = []
        n = values.size
        for h in range(1, self.max_lead_ + 1):
            if h >= n:
                errors.append(np.empty(0))
                continue
            forecast = curve[h:] + np.nan_to_num(correction[:-h]) * decay[h - 1]
            errors.append((values[h:] - forecast) / level[:-h])
        self.errors_ = LeadErrors(errors)
        self.tail_values_ = values[-self.level_window_ :]
        self.tail_curve_ = curve[-self.level_window_ :]

    def _forecast(
        self, values: np.ndarray, curve_past: np.ndarray | None, origin: pd.Timestamp,
        horizon: int, quantiles: list[float],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Forecast after `values` (the last level window, ending at `origin`). Without
        `curve_past` the curve is evaluated over the past bins too, in the same (slow) predict call."""
        step = pd.Timedelta(seconds=self.step_seconds_)
        if curve_past is None:
            times = pd.date_range(
                origin - (values.size - 1) * step, periods=values.size + horizon, freq=step
            )
            curve = self._curve(times)
            curve_past, future_curve = curve[: values.size], curve[values.size :]
        else:
            future_curve = self._curve(pd.date_range(origin + step, periods=horizon, freq=step))
        miss = values - curve_past
        correction = float(np.nanmean(miss)) if np.isfinite(miss).any() else 0.0
        point = future_curve + correction * self._decay(horizon)
        level = float(np.nanmean(values)) if np.isfinite(values).any() else 0.0
        offsets = self.errors_.offsets(horizon, quantiles) * (level + self.floor_)
        return point, point[:, None] + offsets

    def _predict(self, horizon: int, quantiles: list[float]) -> tuple[np.ndarray, np.ndarray]:
        return self._forecast(
            self.tail_values_, self.tail_curve_, self.last_timestamp_, horizon, quantiles
        )

    def _predict_from(
        self, history: pd.Series, horizon: int, quantiles: list[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        tail = history.to_numpy(dtype="float64")[-self.level_window_ :]
        return self._forecast(tail, None, history.index[-1], horizon, quantiles)
