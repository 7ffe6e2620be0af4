"""The forecasts the service answers from, and the numbers the scalers read off them.

A refresh (every `interval`) computes one WorkloadForecast covering `max_horizon` at the served
quantiles and swaps it in as a whole: readers (HTTP handlers, gRPC threads) take one reference and
never see a half-updated workload. Requests never compute a forecast; they slice the cached one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from forecaster.contract import Forecast, ForecastPoint, WorkloadForecast, quantile_key
from forecaster.service.config import WorkloadSettings


@dataclass(frozen=True)
class CachedForecast:
    forecast: WorkloadForecast
    generated_at: datetime
    models: dict[str, str]  # signal -> "model@version"


class ForecastCache:
    """workload name -> its latest CachedForecast. Single writer (the scheduler), many readers."""

    def __init__(self) -> None:
        self._entries: dict[str, CachedForecast] = {}

    def get(self, workload: str) -> CachedForecast | None:
        return self._entries.get(workload)

    def put(self, workload: str, entry: CachedForecast) -> None:
        self._entries[workload] = entry  # one reference swap: atomic for readers under the GIL


def frame_to_forecast(
    frame: pd.DataFrame, *, workload: str, signal: str, model: str, version: str | None,
    generated_at: datetime, step_seconds: int,
) -> Forecast:
    """An Estimator.predict frame (mean and quantile-key columns) as a contract Forecast."""
    keys = [c for c in frame.columns if c != "mean"]
    points = [
        ForecastPoint(
            timestamp=ts.to_pydatetime(), mean=float(row["mean"]),
            quantiles={k: float(row[k]) for k in keys},
        )
        for ts, row in frame.iterrows()
    ]
    return Forecast(
        workload=workload, signal=signal, model=model, model_version=version,  # type: ignore[arg-type]
        generated_at=generated_at, step_seconds=step_seconds, points=points,
    )


def scaling_window(workload: WorkloadSettings, now: datetime) -> tuple[datetime, datetime]:
    """[now + lead, now + lead + interval]: the load a replica started now must be ready for."""
    start = now + workload.lead_time
    return start, start + workload.interval


def overlapping(forecast: Forecast, start: datetime, end: datetime, *, include_end: bool) -> slice:
    """The points whose bin [t, t + step) overlaps [start, end] (include_end) or [start, end).

    Found by arithmetic on the regular grid (the contract guarantees it) instead of a scan: this
    runs on every HPA and KEDA request, and a scan of a day of bins was most of its time.
    """
    points = forecast.points
    if not points:
        return slice(0, 0)
    step = forecast.step_seconds
    first = points[0].timestamp.timestamp()
    lo = math.floor((start.timestamp() - first) / step)  # first i with t_i + step > start
    y = (end.timestamp() - first) / step
    hi = math.floor(y) + 1 if include_end else math.ceil(y)  # t_i <= end, or t_i < end
    n = len(points)
    return slice(min(max(lo, 0), n), min(max(hi, 0), n))


def window_max(forecast: Forecast, start: datetime, end: datetime, q: float) -> float | None:
    """Forecast.window_max (bins overlapping [start, end]) without scanning every point."""
    key = quantile_key(q)
    chosen = forecast.points[overlapping(forecast, start, end, include_end=True)]
    return max((p.quantiles[key] for p in chosen), default=None)


def forecast_value(entry: CachedForecast, workload: WorkloadSettings, signal: str, now: datetime) -> float | None:
    """The scaling quantile's maximum over the scaling window; None if the forecast does not cover it."""
    forecast = entry.forecast.forecasts.get(signal)
    if forecast is None:
        return None
    start, end = scaling_window(workload, now)
    return window_max(forecast, start, end, workload.quantile)


def desired_replicas(entry: CachedForecast, workload: WorkloadSettings, now: datetime) -> int | None:
    """ceil(sum over signals of rate / per_replica / target_utilisation), within [min, max].

    None when any signal with a capacity is not covered: a partial sum would under-provision.
    """
    capacity = workload.capacity
    total = 0.0
    for signal, per_replica in capacity.per_replica.items():
        value = forecast_value(entry, workload, signal, now)
        if value is None:
            return None
        total += value / per_replica / capacity.target_utilisation
    # A hair of tolerance so 3.0000000001 from float noise stays 3 replicas.
    replicas = math.ceil(total - 1e-9)
    return max(capacity.min_replicas, min(capacity.max_replicas, replicas))


def slice_forecast(
    forecast: Forecast, *, start: datetime, horizon: timedelta, quantiles: list[float] | None,
    step_seconds: int | None,
) -> Forecast:
    """The points from `start` (the bin holding it) for `horizon`, at `quantiles`, at `step_seconds`.

    Coarser steps average the mean (rates average over time) and take the maximum of each quantile
    (a scaler needs the peak inside the coarser bin; averaging quantiles would hide it).
    """
    native = forecast.step_seconds
    points = forecast.points[overlapping(forecast, start, start + horizon, include_end=False)]
    keys = [quantile_key(q) for q in quantiles] if quantiles is not None else None
    if keys is not None:
        points = [p.model_copy(update={"quantiles": {k: p.quantiles[k] for k in keys}}) for p in points]
    step = step_seconds or native
    if step != native and points:
        grouped: dict[int, list[ForecastPoint]] = {}
        for p in points:
            ts = int(p.timestamp.timestamp())
            grouped.setdefault(ts - ts % step, []).append(p)
        merged = []
        for bucket, members in sorted(grouped.items()):
            qkeys = members[0].quantiles.keys()
            merged.append(ForecastPoint(
                timestamp=datetime.fromtimestamp(bucket, tz=members[0].timestamp.tzinfo),
                mean=sum(m.mean for m in members) / len(members),
                quantiles={k: max(m.quantiles[k] for m in members) for k in qkeys},
            ))
        points = merged
    return forecast.model_copy(update={"points": points, "step_seconds": step})


def describe(entry: CachedForecast | None) -> dict[str, Any]:
    if entry is None:
        return {"generated_at": None, "models": {}}
    return {"generated_at": entry.generated_at, "models": dict(entry.models)}
