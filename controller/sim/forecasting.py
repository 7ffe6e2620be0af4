"""The prescaler's forecaster inside a replay, without peeking.

It is trained only on the history before the replay window, refit every `refit` (24 h) on the data
observed up to then, and between refits forecasts from each newly completed bin with
`Estimator.predict(horizon, quantiles, history=...)`: the fitted parameters are kept and only the
state is brought up to `now`. Every series handed to `fit` or `predict` is a slice that ends at the
last bin completed by `now` (`history_until`), the one place where time is cut; tests instrument it.

The statistics libraries load lazily (inside `fit_model`), so controller.sim imports without them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from forecaster.contract import Forecast, ForecastPoint, quantile_key

FORECAST_SIGNALS = ("prompt_tokens", "output_tokens")

# A fit function: (signal, series up to now) -> a fitted Estimator.
FitFn = Callable[[str, pd.Series], object]


# What `auto` chooses among in a replay, by the forecaster's own backtest (select_and_fit) at every
# refit on the data up to then: the weekly baseline becomes eligible once 8 days are observed.
# Holt-Winters is the one model that earns its place at a replay's pace (under a second a fit, ~8 ms
# a forecast from new history): on the replay bench's 3-day windows it took NYC taxi from 99.81% SLO
# at 1.13x oracle to 100% at 1.10x (the baselines could only pick last value after the blizzard
# week, so the morning rise came unforeseen) and NASA from 96.2% at 1.50x to 97.5% at 1.43x, for
# -0.17 points on WorldCup. SARIMAX, MSTL, Prophet and gbm cost seconds to a minute a fit each,
# which a week replayed with daily refits cannot afford in the demo's 3 minutes; name one with
# --model to replay it.
AUTO_MODELS = ("last_value", "seasonal_naive_daily", "seasonal_naive_weekly", "holt_winters")
# A named model that cannot fit yet (too little history) falls back to these, in order.
FALLBACKS = ("seasonal_naive_daily", "last_value")


def fit_model(model: str, *, auto_models: Sequence[str] = AUTO_MODELS) -> FitFn:
    """The fit function for a model name: `auto` selects by backtest at each refit."""
    chosen: dict[str, list[str]] = {}

    def fit(signal: str, series: pd.Series):
        from forecaster.estimators import make_estimator

        if model == "auto":
            try:
                from forecaster.training import select_and_fit
            except ImportError:  # pragma: no cover - a tree without the training module
                select_and_fit = None
            if select_and_fit is not None:
                estimator, _record = select_and_fit(series, models=list(auto_models))
                chosen.setdefault(signal, []).append(estimator.name)
                return estimator
            return make_estimator("seasonal_naive_daily").fit(series)
        from forecaster.errors import InsufficientHistory

        for name in (model, *FALLBACKS):
            try:
                estimator = make_estimator(name).fit(series)
            except InsufficientHistory:
                continue  # e.g. the weekly baseline before 8 days are observed: the next one down
            chosen.setdefault(signal, []).append(estimator.name)
            return estimator
        raise InsufficientHistory(f"no model could be fit on {len(series)} bins of {signal}")

    fit.chosen = chosen  # type: ignore[attr-defined]  # signal -> the model selected at each refit
    return fit


def rate_series(counts: pd.DataFrame, signal: str, bin_seconds: int) -> pd.Series:
    """Counts per minute -> rate per second at `bin_seconds` bins (mean of present minutes; NaN gaps)."""
    from forecaster.series import resample_rate

    rate = counts[signal].astype("float64") / 60.0
    return resample_rate(rate, bin_seconds).rename(signal)


class RollingForecaster:
    """Forecasts of the replayed workload as a live forecaster service would have made them."""

    def __init__(
        self,
        counts: pd.DataFrame,
        *,
        fit: FitFn,
        bin_seconds: int = 600,
        horizon_seconds: float = 1800.0,
        quantiles: Sequence[float] = (0.5, 0.9),
        refit_seconds: float = 86_400.0,
        signals: Sequence[str] = FORECAST_SIGNALS,
        workload: str = "replay",
        model_name: str = "auto",
    ) -> None:
        if bin_seconds % 60:
            raise ValueError(f"forecast bin ({bin_seconds} s) must be whole minutes")
        if refit_seconds < bin_seconds:
            raise ValueError(f"refit interval ({refit_seconds} s) must be >= the bin ({bin_seconds} s)")
        self.bin_seconds = int(bin_seconds)
        self.horizon = max(1, math.ceil(horizon_seconds / bin_seconds) + 1)
        self.quantiles = sorted({float(q) for q in quantiles})
        self.refit_seconds = refit_seconds
        self.signals = tuple(signals)
        self.workload = workload
        self.model_name = model_name
        self._fit = fit
        # The whole observed record (history + what the replay will observe); only ever sliced by time.
        self._series = {s: rate_series(counts, s, self.bin_seconds) for s in self.signals}
        self._values = {s: series.to_numpy(dtype="float64") for s, series in self._series.items()}
        first = next(iter(self._series.values())).index[0]
        self._origin = first.to_pydatetime()
        self._models: dict[str, object] = {}
        self._fitted_at: datetime | None = None
        self._cache_bins = -1
        self._cache: dict[str, Forecast | None] = {}
        self.fits = 0
        self.predictions = 0
        self.models_used: dict[str, list[str]] = {}  # signal -> the model fitted at each refit

    def _complete_bins(self, now: datetime) -> int:
        return int((now - self._origin).total_seconds() // self.bin_seconds)

    def history_until(self, signal: str, now: datetime) -> pd.Series:
        """The observed series of `signal` up to the last bin that ended at or before `now`."""
        return self._series[signal].iloc[: self._complete_bins(now)]

    def observed_rate(self, signal: str, now: datetime) -> float | None:
        """The rate of the last complete bin (what the live-error check compares forecasts with)."""
        bins = self._complete_bins(now)  # array lookup: this runs at every sync
        values = self._values[signal]
        if bins < 1 or bins > len(values) or not math.isfinite(values[bins - 1]):
            return None
        return float(values[bins - 1])

    def _refit(self, now: datetime) -> None:
        for signal in self.signals:
            series = self.history_until(signal, now)
            self._models[signal] = self._fit(signal, series)
            self.models_used.setdefault(signal, []).append(
                getattr(self._models[signal], "name", self.model_name))
            self.fits += 1
        self._fitted_at = now

    def forecasts(self, now: datetime) -> dict[str, Forecast | None]:
        """Each signal's forecast as of `now` (recomputed when a bin completes; refit every interval)."""
        if self._fitted_at is None or (now - self._fitted_at).total_seconds() >= self.refit_seconds:
            self._refit(now)
            self._cache_bins = -1
        bins = self._complete_bins(now)
        if bins == self._cache_bins:
            return self._cache
        out: dict[str, Forecast | None] = {}
        for signal in self.signals:
            history = self.history_until(signal, now)
            model = self._models[signal]
            try:
                frame = model.predict(self.horizon, self.quantiles, history=history)
            except Exception:  # noqa: BLE001 - a failed forecast makes the policy abstain, as live
                out[signal] = None
                continue
            self.predictions += 1
            out[signal] = self._to_contract(signal, frame, now, getattr(model, "name", self.model_name))
        self._cache_bins, self._cache = bins, out
        return out

    def _to_contract(self, signal: str, frame: pd.DataFrame, now: datetime, model: str) -> Forecast:
        keys = [quantile_key(q) for q in self.quantiles]
        columns = [frame[k].to_numpy(dtype="float64") for k in keys]
        means = frame["mean"].to_numpy(dtype="float64")
        points = []
        for i, stamp in enumerate(frame.index):
            values = {k: float(np.nan_to_num(col[i])) for k, col in zip(keys, columns)}
            points.append(
                ForecastPoint.model_construct(
                    timestamp=stamp.to_pydatetime().astimezone(timezone.utc),
                    mean=float(np.nan_to_num(means[i])),
                    quantiles=values,
                )
            )
        # model_construct: the estimator already guarantees order and non-negativity (base.predict),
        # and validating ~4,000 forecasts a replay would dominate its run time.
        return Forecast.model_construct(
            workload=self.workload, signal=signal, model=model, model_version=None,
            generated_at=now.astimezone(timezone.utc), step_seconds=self.bin_seconds, points=points,
        )


class HindsightForecast:
    """A fitted-estimator stand-in that "forecasts" the true future rates at every quantile.

    It peeks, on purpose: the `hindsight` reference policy is prescaler's decide() fed a perfect
    forecast at the forecaster's bin, which separates what forecast error costs from what the
    policy, the bin and the cold start cost. Never used by the `prescaler` policy.
    """

    name = "hindsight"

    def __init__(self, truth: pd.Series) -> None:
        self._truth = truth.ffill().fillna(0.0)  # a gap holds the last rate seen, as a forecast would

    def predict(self, horizon: int, quantiles: Sequence[float], *, history: pd.Series) -> pd.DataFrame:
        if len(history) == 0:
            raise ValueError("hindsight needs at least one observed bin to know where now is")
        step = self._truth.index[1] - self._truth.index[0]
        index = pd.date_range(history.index[-1] + step, periods=horizon, freq=step)
        values = self._truth.reindex(index).ffill().fillna(0.0).to_numpy(dtype="float64")
        columns = {"mean": values, **{quantile_key(q): values for q in quantiles}}
        return pd.DataFrame(columns, index=index)


def hindsight_fit(counts: pd.DataFrame, bin_seconds: int) -> FitFn:
    """The fit function of the `hindsight` reference: every signal's whole true record at the bin."""
    truth = {}

    def fit(signal: str, series: pd.Series) -> HindsightForecast:
        if signal not in truth:
            truth[signal] = HindsightForecast(rate_series(counts, signal, bin_seconds))
        return truth[signal]

    return fit


def horizon_for(lead_seconds: float, interval_seconds: float, bin_seconds: int) -> float:
    """How far ahead the forecast must reach from its origin (the last complete bin may be a bin old)."""
    return lead_seconds + interval_seconds + 2 * bin_seconds


__all__ = ["RollingForecaster", "fit_model", "hindsight_fit", "horizon_for", "rate_series", "FORECAST_SIGNALS"]
