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
from forecaster.service.scheduler import Scheduler, WorkloadState


class UnknownWorkload(ForecasterError, KeyError):
    def __str__(self) -> str:  # KeyError quotes its argument; we want the sentence
        return str(self.args[0])


class UnknownMetric(ForecasterError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class NotReady(ForecasterError):
    """No forecast yet (before the first model, or models but no refresh that worked) or the cached
    one no longer covers the window; the message says which, with the failure behind it."""


@dataclass(frozen=True)
class MetricReading:
    value: float
    generated_at: datetime


def metric_names(workloads: Iterable[WorkloadSettings]) -> list[str]:
    """The external metrics the service answers: desired replicas, and one per served signal."""
    signals = sorted({s for w in workloads for s in w.signals})
    return [DESIRED_REPLICAS, *(f"{FORECAST_PREFIX}{s.replace('_', '-')}" for s in signals)]


def no_forecast_reason(name: str, state: WorkloadState) -> str:
    """Why workload `name` has no cached forecast, as it is: models (restored or trained) whose
    refresh has not run, is running or failed (with its error), or truly no model yet, with the
    first training's error if it failed. The 503s said "first model still training" in every case,
    also with three restored models and Prometheus down."""
    serving = dict(state.serving)  # one reference: a retrain may swap a model in meanwhile
    if serving:
        models = ", ".join(f"{s} {v.card.model}@{v.card.version}" for s, v in sorted(serving.items()))
        restored = " restored from the registry" if all(v.restored for v in serving.values()) else ""
        has = f"workload {name!r} serves models{restored} ({models}) but has no forecast yet"
        if state.refresh_started is not None:
            why = f"the history fetch running since {state.refresh_started.isoformat()} has not returned"
            if state.refresh_error is not None:
                why += f" (the one before: {state.refresh_error})"
        elif state.refresh_error is not None:
            why = f"{state.refresh_error}; retried every {state.settings.interval}"
        else:
            why = "its first refresh runs at the next tick"
        return f"{has}: {why}"
    if state.retrain_error is not None:
        retry = "training again now" if state.retraining else f"the next try {state.retrain_wait} after this one"
        return f"workload {name!r} has no model yet: {state.retrain_error}; {retry}"
    return f"workload {name!r} has no forecast yet (first model still training)"


def not_ready_reason(name: str, state: WorkloadState, entry: CachedForecast | None) -> str | None:
    """Why workload `name` is not ready (/readyz), or None when it is: every signal has a model and
    the cached forecast covers every signal. The forecast must cover the signals, not merely exist:
    a refresh that ran while the first retrain was still swapping models in caches a forecast of
    only some of them."""
    if entry is None:
        return no_forecast_reason(name, state)
    missing = [s for s in state.settings.signals if s not in state.serving]
    if missing:
        why = state.retrain_error or ("training" if state.retraining or state.retrain_requested else "")
        return f"workload {name!r} has no model yet for {', '.join(missing)}" + (f": {why}" if why else "")
    uncovered = [s for s in state.settings.signals if s not in entry.forecast.forecasts]
    if uncovered:
        return f"workload {name!r}: the cached forecast has no {', '.join(uncovered)} yet (next refresh)"
    return None


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
            # .get: the KEDA scaler's threads read this while the scheduler may swap the mapping.
            state = self.scheduler.workloads.get(name)
            if state is None:
                raise NotReady(f"workload {name!r} is no longer served")
            raise NotReady(no_forecast_reason(name, state))
        return entry

    def not_ready_reasons(self) -> dict[str, str]:
        """Each workload that is not ready, with why (`not_ready_reason`)."""
        reasons = {}
        for name, state in self.scheduler.workloads.items():
            reason = not_ready_reason(name, state, self.cache.get(name))
            if reason is not None:
                reasons[name] = reason
        return reasons

    def ready(self) -> bool:
        """Every workload has a model for every signal and a cached forecast of every signal
        (`not_ready_reason`). Not ready before the workload source was listed once (discovery not
        through yet)."""
        return self.scheduler.source_status.synced_at is not None and not self.not_ready_reasons()

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
            state = self.scheduler.workloads.get(name)
            # Why no newer forecast came: a forecast runs out when its refreshes keep failing.
            newer = f"; no newer forecast: {state.refresh_error}" if state and state.refresh_error else ""
            raise NotReady(
                f"workload {name!r}: the forecast from {entry.generated_at.isoformat()} does not cover "
                f"[now + {workload.lead_time}, + {workload.interval}] for {metric}{newer}"
            )
        return MetricReading(float(value), entry.generated_at)
