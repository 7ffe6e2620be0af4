"""The `hpa` and `prescaler` policies: controller.policy.decide(), unchanged, driven by the simulator.

Both see the cluster the way the in-cluster controller does: /scale's replicas, the pods (ready ones
Ready, pending ones Unready: an LLM pod loading weights serves nothing), and one Pods metric,
running + waiting requests per pod, from the scrape `metrics_delay` ago (a pod that became ready
since has no sample yet: a *missing* pod, which the HPA counts as 0 on a scale-up and at target on a
scale-down). `hpa` is decide() with no forecast: the HPA v2 algorithm with Kubernetes's default
behavior. `prescaler` adds the forecast of prompt and output tokens per second from a
RollingForecaster (no peeking) and the capacity model with the same per-replica rates as the
simulated replicas, so the two agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Literal, Protocol

import pandas as pd

from controller.policy import (
    MetricObservation,
    PodCondition,
    PolicyState,
    PredictiveAutoscalerSpec,
    PredictiveInputs,
    ReactiveInputs,
    decide,
)
from controller.sim.backlog import ArrivalRate, replicas_needed
from controller.sim.config import SimConfig
from controller.sim.engine import MetricsSample
from controller.sim.forecasting import FORECAST_SIGNALS, HindsightForecasting, RollingForecaster, horizon_for
from controller.sim.reference import OracleScaler
from controller.sim.workload import Workload
from forecaster.contract import Forecast
from forecaster.contract.replay import ReplayForecasting

# The metric the reactive stage scales on: in a cluster, a prometheus-adapter rule
# `sum by (pod) (vllm:num_requests_running + vllm:num_requests_waiting)` exposed as a Pods metric.
IN_FLIGHT_METRIC = "vllm:num_requests_running_plus_waiting"

# The reactive metrics the families scale on, as their users configure them:
# - inflight: the Pods metric above (running + waiting per pod; today's default);
# - running: `vllm:num_requests_running` per pod (no queue term: it cannot wind up on a queue);
# - kv: `vllm:kv_cache_usage_perc` per pod (AIBrix's and vLLM's production-stack examples);
# - waiting_total: an External metric `sum(vllm:num_requests_waiting)` with an AverageValue target,
#   which is what a KEDA ScaledObject's prometheus trigger becomes (KEDA builds the HPA behind it);
# - drain: an External metric of the replicas the arrivals and the queue need (controller/sim/backlog.py,
#   a recording rule in a cluster), AverageValue target = the utilization: it cannot wind up on a queue.
ReactiveMetric = Literal["inflight", "running", "kv", "waiting_total", "drain"]
REACTIVE_METRICS: tuple[ReactiveMetric, ...] = ("inflight", "running", "kv", "waiting_total", "drain")
EXTERNAL_METRICS: tuple[ReactiveMetric, ...] = ("waiting_total", "drain")  # one value, not one per pod
METRIC_NAMES: dict[str, str] = {
    "inflight": IN_FLIGHT_METRIC,
    "running": "vllm:num_requests_running",
    "kv": "vllm:kv_cache_usage_perc",
    "waiting_total": "prescaler_vllm_num_requests_waiting_sum",
    "drain": "prescaler_vllm_replicas_needed",
}


def mean_lengths(workload: Workload) -> tuple[float, float]:
    """Mean prompt and output tokens per request, from the history when it has any (no peeking)."""
    history = workload.history.dropna()
    if len(history) and history["requests"].sum() > 0:
        total = history["requests"].sum()
        return (float(history["prompt_tokens"].sum() / total), float(history["output_tokens"].sum() / total))
    n = min(len(workload.prompt_mean), 60)
    return (sum(workload.prompt_mean[:n]) / n, sum(workload.output_mean[:n]) / n)


def in_flight_target(workload: Workload, config: SimConfig) -> float:
    """Running + waiting requests per pod at the target utilisation (Little's law).

    At utilisation u a replica admits u x its request capacity per second, and each request stays
    for its prefill (prompt / prefill rate) plus its decode (output / per-sequence speed: below the
    decode budget at u < 1, so the small-batch speed).
    """
    prompt, output = mean_lengths(workload)
    replica = config.replica
    rate = config.target_utilization * replica.requests_per_second(prompt, output)
    return rate * (prompt / replica.prefill_tps + output / replica.max_decode_speed)


def kv_usage_target(workload: Workload, config: SimConfig) -> float:
    """vllm:kv_cache_usage_perc of a replica at the target utilization (0..1).

    The requests in flight at the target (Little's law, in_flight_target) each hold their prompt and,
    on average over their decode, half their output in the KV cache.
    """
    prompt, output = mean_lengths(workload)
    return in_flight_target(workload, config) * (prompt + output / 2.0) / config.replica.kv_cache_tokens


def base_target(metric: ReactiveMetric, workload: Workload, config: SimConfig) -> float:
    """The value per pod each reactive metric has when replicas run at the target utilization.

    A family's `target` knob multiplies it (1.0: the metric's value at the capacity model's target).
    For waiting_total the queue at the target is ~0, so its base is the in-flight target: a target of
    0.25 lets a quarter of a replica's in-flight requests wait before adding replicas.
    """
    if metric == "kv":
        return kv_usage_target(workload, config)
    if metric == "drain":
        return 1.0  # the metric is in replicas at 100 %: the target factor is the utilization
    return in_flight_target(workload, config)


def metric_spec(metric: ReactiveMetric, target: float) -> dict:
    """One `spec.metrics` entry (the HPA v2 schema) for a reactive metric at an AverageValue target."""
    if target <= 0 or not math.isfinite(target):
        raise ValueError(f"the {metric} target must be a positive number, got {target}")
    value = f"{max(1, math.ceil(target * 1000))}m"
    if metric in EXTERNAL_METRICS:
        return {"type": "External", "external": {
            "metric": {"name": METRIC_NAMES[metric]},
            "target": {"type": "AverageValue", "averageValue": value},
        }}
    return {"type": "Pods", "pods": {
        "metric": {"name": METRIC_NAMES[metric]},
        "target": {"type": "AverageValue", "averageValue": value},
    }}


def base_spec(workload: Workload, config: SimConfig, *, metric: ReactiveMetric = "inflight",
              target_factor: float = 1.0, **extra) -> dict:
    target = target_factor * base_target(metric, workload, config)
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm"},
        "minReplicas": config.min_replicas,
        "maxReplicas": config.max_replicas,
        "metrics": [metric_spec(metric, target)],
        "leadTime": f"{int(config.lead_seconds)}s",
        "syncPeriod": f"{int(config.sync_seconds)}s",
        **extra,
    }


def scale_down_behavior(window_seconds: float | None) -> dict:
    """`behavior` with only the scale-down stabilization window set (Kubernetes's defaults otherwise)."""
    if window_seconds is None:
        return {}
    return {"behavior": {"scaleDown": {"stabilizationWindowSeconds": int(window_seconds)}}}


class Forecasts(Protocol):
    """What DecideScaler reads forecasts from: a RollingForecaster, or a ForecastTape of one."""

    signals: tuple[str, ...]
    fits: int
    predictions: int
    models_used: dict[str, list[str]]

    def forecasts(self, now: datetime) -> Mapping[str, Forecast | None]: ...

    def observed_rate(self, signal: str, now: datetime) -> float | None: ...


class DecideScaler:
    """A scaler that asks controller.policy.decide() at every sync."""

    def __init__(self, name: str, spec: PredictiveAutoscalerSpec, workload: Workload, config: SimConfig,
                 forecaster: Forecasts | None = None, *, metric: ReactiveMetric = "inflight",
                 queue_weight: float = 1.0, drain_seconds: float = 60.0) -> None:
        if metric not in REACTIVE_METRICS:
            raise ValueError(f"unknown reactive metric {metric!r}; choose from {', '.join(REACTIVE_METRICS)}")
        self.name = name
        self.spec = spec
        self.metric = metric
        # inflight's queue term: running + queue_weight x waiting (1: the plain sum)
        self.queue_weight = queue_weight
        self.forecaster = forecaster
        self.start = workload.start
        self.tick_seconds = config.tick_seconds
        self.lead_seconds = config.lead_seconds
        self.state = PolicyState()
        self.decisions = 0
        self.reasons: dict[str, int] = {}
        self._ready_names = [f"vllm-{i}" for i in range(config.max_replicas)]
        self._pending_names = [f"vllm-pending-{i}" for i in range(config.max_replicas)]
        if metric == "drain":
            prompt, output = mean_lengths(workload)
            self._per_replica_rps = config.replica.requests_per_second(prompt, output)
            self._arrivals = ArrivalRate()
            self._drain_seconds = drain_seconds

    def initial(self, workload: Workload, config: SimConfig) -> int:
        # Every policy starts where the capacity model says the first minutes need (a fair start).
        return OracleScaler().initial(workload, config)

    def _reactive(self, sample: MetricsSample | None, current: int, ready: int) -> ReactiveInputs:
        pods: dict[str, PodCondition] = {name: "Ready" for name in self._ready_names[:ready]}
        pods.update({name: "Unready" for name in self._pending_names[: max(0, current - ready)]})
        if sample is None:
            observation = MetricObservation.unavailable("no scrape visible yet")
        else:
            seen = min(sample.ready, ready)
            if self.metric == "waiting_total":  # one External value: the sum over the scraped pods
                observation = MetricObservation(value=sample.waiting * seen)
            elif self.metric == "drain":
                observation = self._drain_observation(sample, current)
            else:
                value = (sample.running + self.queue_weight * sample.waiting if self.metric == "inflight"
                         else sample.running if self.metric == "running" else sample.kv_cache_usage)
                observation = MetricObservation(pod_values={name: value for name in self._ready_names[:seen]})
        return ReactiveInputs(current_replicas=current, pods=pods, metrics=(observation,))

    def _drain_observation(self, sample: MetricsSample, current: int) -> MetricObservation:
        """The drain metric of `sample`: what the recording rule computes from the same scrape."""
        in_flight = (sample.running + sample.waiting) * sample.ready
        self._arrivals.add(sample.tick * self.tick_seconds, sample.request_success_total, in_flight)
        arrivals = self._arrivals.per_second()
        if arrivals is None:
            return MetricObservation.unavailable("the arrival rate needs two scrapes")
        return MetricObservation(value=replicas_needed(arrivals, sample.waiting * sample.ready,
                                                       self._per_replica_rps, current, self.lead_seconds,
                                                       self._drain_seconds))

    def _predictive(self, now: datetime) -> PredictiveInputs | None:
        if self.forecaster is None:
            return None
        forecasts = self.forecaster.forecasts(now)
        observed = {s: self.forecaster.observed_rate(s, now) for s in self.forecaster.signals}
        return PredictiveInputs(forecasts=forecasts, observed_rates=observed,
                                lead_time_seconds=self.lead_seconds)

    def describe(self) -> dict:
        """Decisions by reason and, for prescaler, the model fitted at each refit per signal."""
        out: dict = {"decisions": self.decisions, "reasons": dict(sorted(self.reasons.items()))}
        if self.forecaster is not None:
            out["refits"] = self.forecaster.fits
            out["forecasts"] = self.forecaster.predictions
            out["models"] = self.forecaster.models_used
        return out

    def desired(self, tick: int, sample: MetricsSample | None, current: int, ready: int) -> int:
        now = self.start + timedelta(seconds=tick * self.tick_seconds)
        decision, self.state = decide(self.spec, self._reactive(sample, current, ready),
                                      self._predictive(now), self.state, now)
        self.decisions += 1
        self.reasons[decision.reason] = self.reasons.get(decision.reason, 0) + 1
        return decision.desired_replicas if decision.act else current


def hpa_scaler(workload: Workload, config: SimConfig, *, metric: ReactiveMetric = "inflight",
               target_factor: float = 1.0, scale_down_window_seconds: float | None = None,
               name: str = "hpa") -> DecideScaler:
    """Kubernetes's HPA on one reactive metric; with no knob set, the default `hpa` (running + waiting
    per pod at the Little's-law target, Kubernetes's default behavior)."""
    spec = base_spec(workload, config, metric=metric, target_factor=target_factor,
                     **scale_down_behavior(scale_down_window_seconds))
    return DecideScaler(name, PredictiveAutoscalerSpec.model_validate(spec), workload, config, metric=metric)


def prescaler_spec(workload: Workload, config: SimConfig, *, quantile: float, bin_seconds: int,
                   model: str, interval_seconds: float = 60.0, target_utilization: float | None = None,
                   metric: ReactiveMetric = "inflight", target_factor: float = 1.0,
                   scale_down_window_seconds: float | None = None,
                   capacity_error: float = 0.0) -> PredictiveAutoscalerSpec:
    """prescaler's spec in a replay. The knobs default to the product's defaults: the capacity
    model's target utilization (the replay's), the in-flight reactive metric at its base target,
    Kubernetes's default behavior. `capacity_error` e tells the capacity model a replica sustains
    (1 + e) x what the simulated one does (a mis-measured capacity)."""
    if not -1.0 < capacity_error <= 10.0:
        raise ValueError(f"capacity_error must be in (-1, 10], got {capacity_error}")
    replica = config.replica
    return PredictiveAutoscalerSpec.model_validate(base_spec(
        workload, config, metric=metric, target_factor=target_factor,
        **scale_down_behavior(scale_down_window_seconds),
        forecast={
            "signals": [{"name": s} for s in FORECAST_SIGNALS],
            "model": model,
            "quantile": quantile,
            "horizon": f"{int(horizon_for(config.lead_seconds, interval_seconds, bin_seconds))}s",
            # A forecast is remade when a bin completes: it is at most one bin (plus a sync) old.
            "maxAge": f"{bin_seconds + 2 * int(config.sync_seconds)}s",
            "interval": f"{int(interval_seconds)}s",
        },
        capacity={"perReplica": {"promptTokensPerSecond": replica.prefill_tps * (1.0 + capacity_error),
                                 "outputTokensPerSecond": replica.decode_tps * (1.0 + capacity_error)},
                  "targetUtilization": target_utilization or config.target_utilization},
    ))


def rolling_forecaster(workload: Workload, config: SimConfig, settings, forecasting: ReplayForecasting,
                       quantiles: Sequence[float]) -> RollingForecaster:
    """The replay's forecaster over the whole observed record, at the settings' bin, horizon and refit."""
    return RollingForecaster(
        pd.concat([workload.history, workload.observed]), forecasting=forecasting,
        bin_seconds=settings.forecast_bin_seconds,
        horizon_seconds=horizon_for(config.lead_seconds, settings.forecast_interval_seconds,
                                    settings.forecast_bin_seconds),
        quantiles=quantiles, refit_seconds=settings.refit_seconds,
    )


def prescaler_scaler(workload: Workload, config: SimConfig, settings, *,
                     forecasting: ReplayForecasting, name: str = "prescaler") -> DecideScaler:
    """decide() with the forecast: trained on the history before the window, refreshed during it."""
    forecaster = rolling_forecaster(workload, config, settings, forecasting, (0.5, settings.quantile))
    spec = prescaler_spec(workload, config, quantile=settings.quantile,
                          bin_seconds=settings.forecast_bin_seconds, model=settings.model,
                          interval_seconds=settings.forecast_interval_seconds,
                          target_factor=settings.reactive_target)
    return DecideScaler(name, spec, workload, config, forecaster, queue_weight=settings.queue_weight)


def hindsight_scaler(workload: Workload, config: SimConfig, settings, *,
                     binning: ReplayForecasting) -> DecideScaler:
    """The `hindsight` reference: prescaler's spec and decide(), its forecast replaced by the truth.

    What prescaler would do with a perfect forecast at its bin (the forecaster's ceiling): the gap
    between it and `prescaler` is what forecast error costs; the gap between it and `oracle` is what
    the bin, the capacity model's headroom and the reactive stage cost.
    """
    counts = pd.concat([workload.history, workload.observed])
    truth = HindsightForecasting(counts, settings.forecast_bin_seconds, binning)
    return prescaler_scaler(workload, config, settings, name="hindsight", forecasting=truth)
