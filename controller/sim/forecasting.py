"""The prescaler's forecaster inside a replay, without peeking.

It is trained only on the history before the replay window, refit every `refit` (24 h) on the data
observed up to then, and between refits forecasts from each newly completed bin: the fitted
parameters are kept and only the state is brought up to `now`. Every series handed to `fit` or
`forecast` is a slice that ends at the last bin completed by `now` (`history_until`), the one place
where time is cut; tests instrument it.

The forecasting engine comes in through forecaster.contract.replay's protocols (the composition root
hands in forecaster.replay.EstimatorForecasting), so controller.sim imports no estimator and no
statistics library.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import pandas as pd

from forecaster.contract import Forecast, ForecastPoint, quantile_key
from forecaster.contract.replay import FittedForecaster, ReplayForecasting

FORECAST_SIGNALS = ("prompt_tokens", "output_tokens")


def rate_series(counts: pd.DataFrame, signal: str, bin_seconds: int, forecasting: ReplayForecasting) -> pd.Series:
    """Counts per minute -> rate per second at `bin_seconds` bins, binned as the forecaster bins."""
    rate = counts[signal].astype("float64") / 60.0
    return forecasting.bin_rates(rate, bin_seconds).rename(signal)


class RollingForecaster:
    """Forecasts of the replayed workload as a live forecaster service would have made them."""

    def __init__(
        self,
        counts: pd.DataFrame,
        *,
        forecasting: ReplayForecasting,
        bin_seconds: int = 600,
        horizon_seconds: float = 1800.0,
        quantiles: Sequence[float] = (0.5, 0.9),
        refit_seconds: float = 86_400.0,
        signals: Sequence[str] = FORECAST_SIGNALS,
        workload: str = "replay",
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
        self._forecasting = forecasting
        # The whole observed record (history + what the replay will observe); only ever sliced by time.
        self._series = {s: rate_series(counts, s, self.bin_seconds, forecasting) for s in self.signals}
        self._values = {s: series.to_numpy(dtype="float64") for s, series in self._series.items()}
        first = next(iter(self._series.values())).index[0]
        self._origin = first.to_pydatetime()
        self._models: dict[str, FittedForecaster] = {}
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
            model = self._forecasting.fit(signal, self.history_until(signal, now))
            self._models[signal] = model
            self.models_used.setdefault(signal, []).append(model.name)
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
            try:
                forecast = self._models[signal].forecast(
                    self.history_until(signal, now), steps=self.horizon, quantiles=self.quantiles,
                    workload=self.workload, generated_at=now)
            except Exception:  # noqa: BLE001 - a failed forecast makes the policy abstain, as live
                out[signal] = None
                continue
            self.predictions += 1
            out[signal] = forecast
        self._cache_bins, self._cache = bins, out
        return out


class ForecastTape:
    """A RollingForecaster's forecasts recorded once at every sync of a window, replayed by lookup.

    A frontier replays prescaler under many knob settings over the same window; the forecasts do not
    depend on the knobs (only on the history up to each sync), so they are made once, with every
    quantile any setting asks for, and each replay reads them back. Recording calls `forecasts(now)`
    at exactly the syncs a replay makes, so refits happen at the same times and every replay sees the
    very forecasts a RollingForecaster of its own would have made.
    """

    def __init__(self, source: RollingForecaster, *, start: datetime, syncs: int, sync_seconds: float) -> None:
        self.signals = source.signals
        self.quantiles = tuple(source.quantiles)
        self._source = source  # observed rates come from the record, not from the forecasts
        self._times: list[float] = []
        self._entries: list[dict[str, Forecast | None]] = []
        last: dict[str, Forecast | None] | None = None
        for k in range(syncs):
            now = start + timedelta(seconds=k * sync_seconds)
            out = source.forecasts(now)
            if out is not last:  # a new bin or a refit: the forecasts changed at this sync
                self._times.append(now.timestamp())
                self._entries.append(out)
                last = out
        self.fits = source.fits
        self.predictions = source.predictions
        self.models_used = source.models_used

    def forecasts(self, now: datetime) -> dict[str, Forecast | None]:
        i = bisect.bisect_right(self._times, now.timestamp()) - 1
        if i < 0:
            raise ValueError(f"{now} is before the recorded window (from {self._times[0] if self._times else '-'})")
        return self._entries[i]

    def observed_rate(self, signal: str, now: datetime) -> float | None:
        return self._source.observed_rate(signal, now)


def by_bin(per_minute_rates: pd.Series, bin_seconds: int):
    """Per-minute rates grouped into epoch-aligned bins stamped by their start (the forecaster's bins)."""
    return per_minute_rates.resample(f"{int(bin_seconds)}s", origin="epoch", label="left", closed="left")


class PeakScaled:
    """A fitted model whose quantiles are raised by the bins' learned peak-minute ratio."""

    def __init__(self, inner: FittedForecaster, ratio: float) -> None:
        self.inner = inner
        self.ratio = ratio
        self.name = inner.name

    def forecast(self, history: pd.Series, *, steps: int, quantiles: Sequence[float], workload: str,
                 generated_at: datetime) -> Forecast:
        out = self.inner.forecast(history, steps=steps, quantiles=quantiles, workload=workload,
                                  generated_at=generated_at)
        if self.ratio == 1.0:
            return out
        points = [ForecastPoint.model_construct(timestamp=p.timestamp, mean=p.mean,
                                                quantiles={k: v * self.ratio for k, v in p.quantiles.items()})
                  for p in out.points]
        return out.model_copy(update={"points": points})


class PeakProvisioning:
    """A forecasting engine that provisions for the busiest minute inside each bin, not its mean.

    A forecast at a 10-minute bin says what a bin averages; replicas must serve its busiest minute.
    On NASA's web log (48 requests a minute, scaled to a 40-replica fleet) the busiest minute of a
    bin is 1.5x the bin's mean at the median: a policy fed the true bin means (`hindsight`) then
    under-provisions every bin and leaves the bursts to the reactive stage, and ends worse than
    prescaler, whose forecast quantile carries some of that spread by accident. This engine learns,
    per signal, the `quantile` of (busiest minute / bin mean) over the bins observed up to each fit
    (no peeking) and multiplies the forecast's quantiles by it (the mean is left alone). The ratio is
    1 on traces whose minutes repeat a coarser bin (ServeGen's 10-minute windows).

    A simulator knob for now: the forecaster service serves bin forecasts without it.
    """

    def __init__(self, inner: ReplayForecasting, quantile: float) -> None:
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"peak quantile must be in (0, 1), got {quantile}")
        self.inner = inner
        self.quantile = quantile
        self._ratios: dict[str, pd.Series] = {}

    def bin_rates(self, per_minute_rates: pd.Series, bin_seconds: int) -> pd.Series:
        grouped = by_bin(per_minute_rates, bin_seconds)
        mean, peak, count = grouped.mean(), grouped.max(), grouped.count()
        full = count >= max(1, int(0.8 * bin_seconds / 60))  # bins with most of their minutes observed
        ratio = (peak / mean).where(full & (mean > 0))
        self._ratios[str(per_minute_rates.name)] = ratio
        return self.inner.bin_rates(per_minute_rates, bin_seconds)

    def ratio(self, signal: str, until: pd.Timestamp | None) -> float:
        """The learned ratio from the bins up to `until` (inclusive); 1 when none is known."""
        ratios = self._ratios.get(signal)
        if ratios is None or until is None:
            return 1.0
        seen = ratios.loc[:until].dropna()
        return max(1.0, float(seen.quantile(self.quantile))) if len(seen) else 1.0

    def fit(self, signal: str, history: pd.Series) -> PeakScaled:
        until = history.index[-1] if len(history) else None
        return PeakScaled(self.inner.fit(signal, history), self.ratio(signal, until))


class HindsightForecast:
    """A fitted-model stand-in that "forecasts" the true future rates at every quantile.

    It peeks, on purpose: the `hindsight` reference policy is prescaler's decide() fed a perfect
    forecast at the forecaster's bin, which separates what forecast error costs from what the
    policy, the bin and the cold start cost. Never used by the `prescaler` policy.
    """

    name = "hindsight"

    def __init__(self, truth: pd.Series, peaks: pd.Series | None = None) -> None:
        self._truth = truth.ffill().fillna(0.0)  # a gap holds the last rate seen, as a forecast would
        # With peaks, the quantiles are each bin's true busiest minute: a perfect forecast of what the
        # replicas must serve (PeakProvisioning's target), the mean its true mean.
        self._peaks = None if peaks is None else peaks.reindex(truth.index).ffill().fillna(0.0)

    def forecast(self, history: pd.Series, *, steps: int, quantiles: Sequence[float], workload: str,
                 generated_at: datetime) -> Forecast:
        if len(history) == 0:
            raise ValueError("hindsight needs at least one observed bin to know where now is")
        step = self._truth.index[1] - self._truth.index[0]
        index = pd.date_range(history.index[-1] + step, periods=steps, freq=step)
        values = self._truth.reindex(index).ffill().fillna(0.0).to_numpy(dtype="float64")
        tops = values if self._peaks is None else self._peaks.reindex(index).ffill().fillna(0.0).to_numpy("float64")
        keys = [quantile_key(q) for q in quantiles]
        points = [
            ForecastPoint.model_construct(timestamp=stamp.to_pydatetime().astimezone(timezone.utc),
                                          mean=float(v), quantiles={k: float(max(v, top)) for k in keys})
            for stamp, v, top in zip(index, values, tops)
        ]
        return Forecast.model_construct(
            workload=workload, signal=history.name, model=self.name, model_version=None,
            generated_at=generated_at.astimezone(timezone.utc), step_seconds=int(step.total_seconds()),
            points=points,
        )


class HindsightForecasting:
    """The `hindsight` reference's engine: every signal's whole true record, binned as `binning` bins."""

    def __init__(self, counts: pd.DataFrame, bin_seconds: int, binning: ReplayForecasting, *,
                 peaks: bool = False) -> None:
        self._counts = counts
        self._bin_seconds = bin_seconds
        self._binning = binning
        self._peaks = peaks  # quantiles at each bin's true busiest minute (see HindsightForecast)
        self._truth: dict[str, HindsightForecast] = {}

    def bin_rates(self, per_minute_rates: pd.Series, bin_seconds: int) -> pd.Series:
        return self._binning.bin_rates(per_minute_rates, bin_seconds)

    def fit(self, signal: str, history: pd.Series) -> HindsightForecast:
        if signal not in self._truth:
            peaks = None
            if self._peaks:
                per_minute = self._counts[signal].astype("float64") / 60.0
                peaks = by_bin(per_minute, self._bin_seconds).max()
            self._truth[signal] = HindsightForecast(
                rate_series(self._counts, signal, self._bin_seconds, self._binning), peaks)
        return self._truth[signal]


def horizon_for(lead_seconds: float, interval_seconds: float, bin_seconds: int) -> float:
    """How far ahead the forecast must reach from its origin (the last complete bin may be a bin old)."""
    return lead_seconds + interval_seconds + 2 * bin_seconds


__all__ = ["FORECAST_SIGNALS", "ForecastTape", "HindsightForecast", "HindsightForecasting", "PeakProvisioning",
           "PeakScaled", "RollingForecaster", "horizon_for", "rate_series"]
