"""statsmodels models: Holt-Winters, MSTL + damped trend, SARIMAX with Fourier seasonality.

Cost is the design constraint (issue 2: all models, backtest and selection in 60 s on 2 cores):
- No seasonal ARIMA order with period 288: the seasonal state of a (P,D,Q)_288 model is hundreds of
  states wide and exhausted 24 GB in a trial. Seasonality enters SARIMAX as Fourier regressors
  instead (Hyndman, "Forecasting with long seasonal periods"), with a small ARMA order.
- MSTL on 1-minute bins with a weekly period did not finish in 7 minutes: it refuses bins under 5
  minutes.
- Forecasting from a later origin never refits: parameters are fixed and only the filter runs.

statsmodels is imported inside the methods so that importing the catalogue stays light.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from forecaster.errors import InsufficientHistory
from forecaster.estimators._calibrated import CalibratedEstimator, interpolate_gaps
from forecaster.estimators.baselines import DAY_SECONDS, WEEK_SECONDS, describe_span


def _require(name: str, values: np.ndarray, step: int, days: float, why: str) -> None:
    if values.size * step < days * DAY_SECONDS:
        raise InsufficientHistory(
            f"{name} needs {describe_span(days * DAY_SECONDS)} of history at {step} s bins ({why}), "
            f"got {describe_span(values.size * step)}"
        )
    if np.isfinite(values).sum() < 0.5 * values.size:
        raise InsufficientHistory(
            f"{name}: only {np.isfinite(values).mean():.0%} of the bins are observed; needs at least 50%"
        )


def _season_bins(name: str, seconds: int, step: int) -> int:
    if seconds % step:
        raise InsufficientHistory(f"{name}: a {step} s bin does not divide the season of {seconds} s")
    return seconds // step


def _epoch_bins(end_time: pd.Timestamp, count: int, step: int, after: bool) -> np.ndarray:
    """Bin numbers since the epoch of the `count` bins ending at end_time (or the count after it)."""
    end = int(end_time.timestamp()) // step
    if after:
        return np.arange(end + 1, end + 1 + count, dtype=np.int64)
    return np.arange(end - count + 1, end + 1, dtype=np.int64)


@contextmanager
def _quiet() -> Iterator[None]:
    """statsmodels warns on every convergence hiccup; the calibration errors judge the fit instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def holt_winters_init(values: np.ndarray, season: int, cycles: int = 7) -> tuple[float, float, np.ndarray]:
    """Initial level, trend and seasonal indices from the first `cycles` seasons (at least two).

    The classical heuristic (Hyndman & Athanasopoulos, fpp2 7.3) with the seasonal indices averaged
    over up to a week of days rather than two: a smoothing parameter for the season is small (the
    day shape changes slowly), so the initial indices weigh on every forecast, and two days, one of
    them perhaps a Sunday, are a noisy estimate of a weekday's shape.
    """
    cycles = max(2, min(cycles, values.size // season))
    first = interpolate_gaps(values[: cycles * season]).reshape(cycles, season)
    means = first.mean(axis=1)
    seasonal = (first - means[:, None]).mean(axis=0)
    seasonal -= seasonal.mean()
    trend = (means[-1] - means[0]) / ((cycles - 1) * season)
    level = means[0] - (season - 1) / 2 * trend
    return float(level), float(trend), seasonal


def holt_winters_states(
    values: np.ndarray,
    season: int,
    params: tuple[float, float, float, float],
    init: tuple[float, float, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Additive damped Holt-Winters recursion; returns level, trend and seasonal state per bin.

    Same recursion and parameters as statsmodels' ExponentialSmoothing (checked by a test), but a
    missing observation gets the prediction step only (the state moves as forecast, nothing is
    learnt), which is how a state-space model treats a gap: not interpolated, never read as zero.
    """
    alpha, beta, gamma, phi = params
    level, trend, first_season = init
    n = values.size
    seasonal = np.empty(n + season)
    seasonal[:season] = first_season
    level_out, trend_out = np.empty(n), np.empty(n)
    # seasonal[i + season] is the index after bin i, so bin i reads seasonal[i] (one season back).
    for i, y in enumerate(values.tolist()):
        s_prev = seasonal[i]
        predicted_level = level + phi * trend
        if y == y:  # observed (NaN != NaN)
            # The error-correction form statsmodels and fpp use: the seasonal index learns from
            # the observation less the *predicted* level, so the same parameters mean the same.
            new_level = alpha * (y - s_prev) + (1 - alpha) * predicted_level
            trend = beta * (new_level - level) + (1 - beta) * phi * trend
            seasonal[i + season] = gamma * (y - predicted_level) + (1 - gamma) * s_prev
            level = new_level
        else:
            trend = phi * trend
            seasonal[i + season] = s_prev
            level = predicted_level
        level_out[i], trend_out[i] = level, trend
    return level_out, trend_out, seasonal[season:]


def damped_sum(phi: float, horizon: int) -> np.ndarray:
    """phi + phi^2 + ... + phi^h for h = 1..horizon (the damped trend's reach)."""
    return np.cumsum(phi ** np.arange(1, horizon + 1))


class HoltWinters(CalibratedEstimator):
    """Additive Holt-Winters (damped trend, daily season), smoothing parameters fitted once.

    statsmodels estimates the four smoothing parameters (on gap-interpolated data: its recursion
    cannot mask); forecasting runs our own recursion with those parameters fixed, which masks gaps
    and gives the state at every origin in one pass, so calibration uses every origin for free.
    """

    name = "holt_winters"

    def __init__(self, fit_window_days: float = 14.0, state_window_days: float = 7.0, **kwargs):
        super().__init__(**kwargs)
        if fit_window_days < 3 or state_window_days < 3:
            raise ValueError(
                f"fit_window_days ({fit_window_days}) and state_window_days ({state_window_days}) "
                f"must be at least 3 (two seasons to initialise and a day to learn)"
            )
        self.fit_window_days = fit_window_days
        self.state_window_days = state_window_days

    def _fit_params(self, values: np.ndarray, index: pd.DatetimeIndex) -> None:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        step = self.step_seconds_
        _require(self.name, values, step, 3, "two daily seasons to initialise and a day to calibrate")
        self.season_ = _season_bins(self.name, DAY_SECONDS, step)
        window = values[-int(self.fit_window_days * DAY_SECONDS / step) :]
        self.state_bins_ = int(self.state_window_days * DAY_SECONDS / step)
        with _quiet():
            # Heuristic initial states rather than estimated ones: optimising 144-1440 initial
            # seasonal states is what makes ETS fits slow.
            fitted = ExponentialSmoothing(
                interpolate_gaps(window), trend="add", damped_trend=True, seasonal="add",
                seasonal_periods=self.season_, initialization_method="heuristic",
            ).fit(use_brute=False)  # the brute-force start grid triples the cost for little gain
        p = fitted.params
        self.params_ = (
            float(p["smoothing_level"]), float(p["smoothing_trend"]),
            float(p["smoothing_seasonal"]), float(p["damping_trend"]),
        )

    def _from_states(self, level, trend, seasonal, origin: int, horizon: int) -> np.ndarray:
        phi = self.params_[3]
        h = np.arange(1, horizon + 1)
        # The seasonal index of target origin + h is the last one learnt at its phase.
        source = origin + h - self.season_ * np.ceil(h / self.season_).astype(int)
        return level[origin] + damped_sum(phi, horizon) * trend[origin] + seasonal[source]

    def _point(self, values: np.ndarray, end_time: pd.Timestamp, horizon: int) -> np.ndarray:
        window = values[-self.state_bins_ :]
        if window.size < 2 * self.season_ + 1:
            raise InsufficientHistory(f"{self.name}: forecasting needs more than two days of history")
        level, trend, seasonal = holt_winters_states(
            window, self.season_, self.params_, holt_winters_init(window, self.season_)
        )
        return self._from_states(level, trend, seasonal, window.size - 1, horizon)

    def _calibration_forecasts(self, values: np.ndarray):
        """Forecasts from every origin of one pass over the training data (cheap: no re-filtering)."""
        window = values[-self.state_bins_ :]
        offset = values.size - window.size
        states = holt_winters_states(
            window, self.season_, self.params_, holt_winters_init(window, self.season_)
        )

        def forecast(end: int, horizon: int) -> np.ndarray:
            return self._from_states(*states, end - 1 - offset, horizon)

        return forecast, offset + 2 * self.season_, True

    def _tail_bins(self) -> int:
        return self.state_bins_


class MSTLForecaster(CalibratedEstimator):
    """MSTL (daily, and weekly with two weeks of history) + damped Holt on the seasonally adjusted part.

    The seasonal profiles are fitted once and kept by phase (time of day / of week). A later origin
    is seasonally adjusted with those profiles and only the cheap trend recursion re-runs, since
    decomposing again would cost a full MSTL fit per forecast.
    """

    name = "mstl"

    def __init__(self, trend_window_days: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        if trend_window_days <= 0:
            raise ValueError(f"trend_window_days must be positive, got {trend_window_days}")
        self.trend_window_days = trend_window_days

    def _fit_params(self, values: np.ndarray, index: pd.DatetimeIndex) -> None:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing
        from statsmodels.tsa.seasonal import MSTL

        step = self.step_seconds_
        if step < 300:
            raise InsufficientHistory(
                f"mstl works at 5-minute bins or coarser (MSTL with a weekly period on 1-minute bins "
                f"did not finish in 7 minutes); got {step} s bins: resample to 5m"
            )
        _require(self.name, values, step, 3, "two daily seasons to decompose and a day to calibrate")
        day = _season_bins(self.name, DAY_SECONDS, step)
        periods = [day]
        # MSTL drops a period unless the series is longer than two of it (period < nobs / 2).
        if WEEK_SECONDS % step == 0 and WEEK_SECONDS // step < values.size / 2:
            periods.append(WEEK_SECONDS // step)
        filled = interpolate_gaps(values)
        with _quiet():
            result = MSTL(filled, periods=periods, iterate=1, stl_kwargs={"robust": False}).fit()
        seasonal = np.asarray(result.seasonal).reshape(values.size, -1)
        bins = _epoch_bins(index[-1], values.size, step, after=False)
        self.periods_ = periods
        self.profiles_ = []
        for i, period in enumerate(periods):
            # The last full cycle of each seasonal component, stored by phase = bin number mod period.
            profile = np.empty(period)
            profile[bins[-period:] % period] = seasonal[-period:, i]
            self.profiles_.append(profile)
        self.trend_bins_ = max(4, int(self.trend_window_days * DAY_SECONDS / step))
        adjusted = filled - seasonal.sum(axis=1)
        with _quiet():
            fitted = ExponentialSmoothing(
                adjusted[-4 * self.trend_bins_ :], trend="add", damped_trend=True,
                initialization_method="estimated",
            ).fit()
        self.params_ = {
            key: float(fitted.params[key])
            for key in ("smoothing_level", "smoothing_trend", "damping_trend")
        }

    def _seasonal(self, bins: np.ndarray) -> np.ndarray:
        return sum(profile[bins % period] for profile, period in zip(self.profiles_, self.periods_))

    def _point(self, values: np.ndarray, end_time: pd.Timestamp, horizon: int) -> np.ndarray:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        step = self.step_seconds_
        window = values[-self.trend_bins_ :]
        past = _epoch_bins(end_time, window.size, step, after=False)
        adjusted = interpolate_gaps(window) - self._seasonal(past)
        with _quiet():
            trend = ExponentialSmoothing(
                adjusted, trend="add", damped_trend=True, initialization_method="heuristic"
                if adjusted.size >= 10 else "estimated",
            ).fit(optimized=False, **self.params_).forecast(horizon)
        future = _epoch_bins(end_time, horizon, step, after=True)
        return np.asarray(trend, dtype="float64") + self._seasonal(future)

    def _tail_bins(self) -> int:
        return self.trend_bins_


def fourier_terms(bins: np.ndarray, step: int, n_daily: int, n_weekly: int) -> np.ndarray:
    """sin/cos pairs of the daily and weekly cycles at the given epoch bin numbers."""
    seconds = bins.astype("float64") * step
    columns = []
    for period, count in ((DAY_SECONDS, n_daily), (WEEK_SECONDS, n_weekly)):
        for k in range(1, count + 1):
            angle = 2 * np.pi * k * seconds / period
            columns += [np.sin(angle), np.cos(angle)]
    return np.column_stack(columns) if columns else np.empty((bins.size, 0))


class SarimaxFourier(CalibratedEstimator):
    """SARIMAX(p,d,q) errors around a constant and Fourier regressors for the daily and weekly cycles.

    The Kalman filter skips missing observations, so gaps need no filling here.
    """

    name = "sarimax_fourier"

    def __init__(
        self,
        order: tuple[int, int, int] = (2, 0, 1),
        n_daily: int = 4,
        n_weekly: int = 2,
        max_fit_bins: int = 2016,
        state_window_days: float = 1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        given = tuple(int(x) for x in order)
        if len(given) != 3 or min(given) < 0 or sum(given) > 4:
            raise ValueError(f"order must be (p, d, q) with p + d + q <= 4 (cost), got {given}")
        order = (given[0], given[1], given[2])
        if n_daily < 1 or n_weekly < 0:
            raise ValueError(f"n_daily ({n_daily}) must be >= 1 and n_weekly ({n_weekly}) >= 0")
        self.order = order
        self.n_daily = n_daily
        self.n_weekly = n_weekly
        self.max_fit_bins = max_fit_bins
        self.state_window_days = state_window_days

    def _exog(self, bins: np.ndarray) -> np.ndarray:
        # The constant is a regressor (not trend="c", which SARIMAX puts in the state equation).
        terms = fourier_terms(bins, self.step_seconds_, self.n_daily, self.weekly_)
        return np.column_stack([np.ones(bins.size), terms])

    def _fit_params(self, values: np.ndarray, index: pd.DatetimeIndex) -> None:
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        step = self.step_seconds_
        _require(self.name, values, step, 2, "a day to fit the daily cycle and a day to calibrate")
        window = values[-self.max_fit_bins :]
        # Weekly terms only when the fitting window holds more than a week; otherwise they alias
        # with the trend and the daily terms.
        self.weekly_ = self.n_weekly if window.size * step > WEEK_SECONDS + DAY_SECONDS else 0
        exog = self._exog(_epoch_bins(index[-1], window.size, step, after=False))
        # Two stages, as regression with ARMA errors is classically fitted: least squares for the
        # constant and Fourier coefficients, then maximum likelihood for the few ARMA parameters on
        # the residuals. One joint likelihood over ~13 coefficients took 3-30 s; this takes well
        # under one, and the joint optimum is close (the Fourier terms explain most variance).
        observed = np.isfinite(window)
        beta, *_ = np.linalg.lstsq(exog[observed], window[observed], rcond=None)
        residual = window - exog @ beta
        with _quiet():
            arma = SARIMAX(residual, order=self.order, trend="n").fit(disp=False, maxiter=50)
            model = SARIMAX(window, exog=exog, order=self.order, trend="n")
            params = np.concatenate([beta, np.asarray(arma.params)])
            # filter(): the state-space model with these parameters fixed, ready for apply().
            self.result_ = model.filter(params)
        self.beta_ = beta
        self.fit_exog_ = exog
        self.fit_bins_ = window.size
        self.state_bins_ = max(16, int(self.state_window_days * DAY_SECONDS / step))

    def _point(self, values: np.ndarray, end_time: pd.Timestamp, horizon: int) -> np.ndarray:
        window = values[-self.state_bins_ :]
        step = self.step_seconds_
        past = _epoch_bins(end_time, window.size, step, after=False)
        future = _epoch_bins(end_time, horizon, step, after=True)
        with _quiet():
            # apply(): same parameters, the filter re-run on the new data (no refit).
            applied = self.result_.apply(window, exog=self._exog(past))
            return np.asarray(applied.forecast(horizon, exog=self._exog(future)), dtype="float64")

    def _calibration_forecasts(self, values: np.ndarray):
        """Forecasts from every origin of the one filtering pass done at fit: a_{t+h} = T^h a_t|t and
        y = Z a + x'beta (the state-space forecast), with no apply() per origin."""
        result = self.result_
        # Time-invariant system matrices (SARIMAX has no time-varying ones with exog in d_t).
        transition = np.asarray(result.model.ssm["transition"]).reshape(result.model.k_states, -1)
        design = np.asarray(result.model.ssm["design"]).reshape(-1)[: result.model.k_states]
        filtered = np.asarray(result.filtered_state)
        offset = values.size - self.fit_bins_
        regression = self.fit_exog_ @ self.beta_

        def forecast(end: int, horizon: int) -> np.ndarray:
            origin = end - 1 - offset
            state = filtered[:, origin]
            out = np.empty(horizon)
            for j in range(horizon):
                state = transition @ state
                out[j] = design @ state + regression[origin + 1 + j]
            return out

        return forecast, offset + 1, True

    def _tail_bins(self) -> int:
        return self.state_bins_
