"""What the HTTP app and the gRPC scaler share: config, scheduler, cache, clock, and the one
function that turns a metric name into a number, so REST, external metrics and KEDA agree.

The workloads are the scheduler's of the moment (they change when the workload source does): every
reader takes the scheduler's mapping once per answer and reads that.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from forecaster.contract import Clock
from forecaster.errors import ForecasterError
from forecaster.service.cache import CachedForecast, desired_replicas, forecast_value
from forecaster.service.config import ServiceConfig, WorkloadSettings
from forecaster.service.external_metrics import DESIRED_REPLICAS, FORECAST_PREFIX, signal_of_metric
from forecaster.service.scheduler import Scheduler


class UnknownWorkload(ForecasterError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its argument; we want the sentence
        return str(self.args[0])


class UnknownMetric(ForecasterError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class NotReady(ForecasterError):
    """No forecast yet (before the first model) or the cached one no longer covers the window."""


@dataclass(frozen=True)
class MetricReading:
    value: float
    generated_at: datetime


def metric_names(workloads: Iterable[WorkloadSettings]) -> list[str]:
    """The external metrics the service answers: desired replicas, and one per served signal."""
    signals = sorted({s for w in workloads for s in w.signals})
    return [DESIRED_REPLICAS, *(f"{FORECAST_PREFIX}{s.replace('_', '-')}" for s in signals)]


def signal_of(metric: str) -> str | None:
    try:
        return signal_of_metric(metric)
    except KeyError:
        raise UnknownMetric(f"unknown metric {metric!r}") from None


class ServiceState:
    def __init__(self, config: ServiceConfig, scheduler: Scheduler, clock: Clock):
        self.config = config
        self.scheduler = scheduler
        self.cache = scheduler.cache
        self.clock = clock

    def workloads(self) -> list[WorkloadSettings]:
        """The workloads served now, by name."""
        states = self.scheduler.workloads  # one reference: the scheduler swaps the mapping whole
        return [states[name].settings for name in sorted(states)]

    @property
    def metric_names(self) -> list[str]:
        return metric_names(self.workloads())

    def workload(self, name: str) -> WorkloadSettings:
        state = self.scheduler.workloads.get(name)
        if state is None:
            known = ", ".join(sorted(self.scheduler.workloads)) or "none yet"
            raise UnknownWorkload(f"unknown workload {name!r}; known: {known}")
        return state.settings

    def entry(self, name: str) -> CachedForecast:
        self.workload(name)
        entry = self.cache.get(name)
        if entry is None:
            raise NotReady(f"workload {name!r} has no forecast yet (first model still training)")
        return entry

    def ready(self) -> bool:
        """Every workload has a model for every signal and a cached forecast of every signal.

        The forecast must cover the signals, not merely exist: a refresh that ran while the first
        retrain was still swapping models in caches a forecast of only some of them. Not ready
        before the workload source was listed once (discovery not through yet).
        """
        if self.scheduler.source_status.synced_at is None:
            return False
        for name, state in self.scheduler.workloads.items():
            entry = self.cache.get(name)
            if not state.ready or entry is None:
                return False
            if not set(state.settings.signals) <= set(entry.forecast.forecasts):
                return False
        return True

    def read_metric(self, name: str, metric: str, now: datetime | None = None) -> MetricReading:
        """The value of `metric` for workload `name` now (UnknownMetric, UnknownWorkload, NotReady)."""
        known = self.metric_names
        if metric not in known:
            raise UnknownMetric(f"unknown metric {metric!r}; known: {', '.join(known)}")
        workload = self.workload(name)
        signal = signal_of(metric)
        if signal is not None and signal not in workload.signals:
            raise UnknownMetric(f"workload {name!r} has no signal {signal!r} (has {sorted(workload.signals)})")
        entry = self.entry(name)
        now = now or self.clock()
        if signal is None:
            value: float | None = desired_replicas(entry, workload, now)
        else:
            value = forecast_value(entry, workload, signal, now)
        if value is None:
            raise NotReady(
                f"workload {name!r}: the forecast from {entry.generated_at.isoformat()} does not cover "
                f"[now + {workload.lead_time}, + {workload.interval}] for {metric}"
            )
        return MetricReading(float(value), entry.generated_at)
