"""The forecasts the service answers from, and the numbers the scalers read off them.

A refresh (every `interval`) computes one WorkloadForecast covering `max_horizon` at the served
quantiles and swaps it in as a whole: readers (HTTP handlers, gRPC threads) take one reference and
never see a half-updated workload. Requests never compute a forecast; they slice the cached one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from forecaster.contract import Forecast, ForecastPoint, Signal, WorkloadForecast, quantile_key
from forecaster.contract.capacity import replicas_for_loads
from forecaster.contract.window import overlapping_bins
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

    def remove(self, workload: str) -> None:
        """Forget a workload's forecast (it is no longer served, or its settings changed what it covers)."""
        self._entries.pop(workload, None)  # one operation: atomic for readers under the GIL


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
        workload=workload, signal=signal, model=model, model_version=version,
        generated_at=generated_at, step_seconds=step_seconds, points=points,
    )


def scaling_window(workload: WorkloadSettings, now: datetime) -> tuple[datetime, datetime]:
    """[now + lead, now + lead + interval]: the load a replica started now must be ready for."""
    start = now + workload.lead_time
    return start, start + workload.interval


def overlapping(forecast: Forecast, start: datetime, end: datetime, *, include_end: bool) -> slice:
    """The points whose bin [t, t + step) overlaps [start, end] (include_end) or [start, end): the
    contract's window rule (forecaster.contract.window), arithmetic on the regular grid."""
    points = forecast.points
    if not points:
        return slice(0, 0)
    lo, hi = overlapping_bins(points[0].timestamp.timestamp(), forecast.step_seconds, len(points),
                              start.timestamp(), end.timestamp(), include_end=include_end)
    return slice(lo, hi)


def forecast_value(entry: CachedForecast, workload: WorkloadSettings, signal: str, now: datetime) -> float | None:
    """The scaling quantile's maximum over the scaling window; None if the forecast does not cover it."""
    forecast = entry.forecast.forecasts.get(signal)
    if forecast is None:
        return None
    start, end = scaling_window(workload, now)
    return forecast.window_max(start, end, workload.quantile)


def desired_replicas(entry: CachedForecast, workload: WorkloadSettings, now: datetime) -> int | None:
    """The controller's capacity model (forecaster.contract.capacity) on the scaling window's
    forecasts: ceil(max, or with `combine: Sum` the sum, over signals of rate / per_replica /
    target_utilization), within [min_replicas, max_replicas].

    None when any signal with a capacity is not covered: the others alone could under-provision.
    """
    capacity = workload.capacity
    rates: dict[Signal, float] = {}
    for signal in capacity.per_replica:
        value = forecast_value(entry, workload, signal, now)
        if value is None:
            return None
        rates[signal] = value
    replicas, _, _ = replicas_for_loads(rates, capacity.per_replica, capacity.target_utilization, capacity.combine)
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
