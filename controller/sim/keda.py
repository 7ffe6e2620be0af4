"""KEDA's own part of the `keda-waiting` family: when the metric behind its HPA is refreshed.

A ScaledObject with a prometheus trigger on `sum(vllm:num_requests_waiting)` (metricType
AverageValue, the default) makes KEDA create an HPA on an External metric; the replicas are then
the HPA algorithm's (ceil(total / target) outside the tolerance), which the simulator drives through
controller.policy.decide. What KEDA adds, from its documentation (keda.sh, "Scaling Deployments,
StatefulSets & Custom Resources", ScaledObject spec):

- `pollingInterval` (default 30 s): "the interval to check each trigger on". The HPA itself asks
  KEDA's metrics server every sync period (15 s); by default the metrics server "queries the scaler
  and reads the metric values" afresh on each of those requests. Only with the trigger's
  `useCachedMetrics: true` (default false) does it answer from a cache "updated periodically during
  the polling interval": the value is refreshed every pollingInterval and held between polls. So
  a ScaledObject as written by default sees a fresh Prometheus value every HPA sync, and this
  wrapper changes nothing unless `use_cached_metrics` is set.
- activation (`activationThreshold`, default 0) and `idleReplicaCount` act only between 0 and 1
  replica: "If the minimum replicas is >= 1, the scaler is always active and the activation value
  will be ignored." The simulator keeps min_replicas >= 1, so neither applies.
- `cooldownPeriod` likewise "only applies when scaling to 0"; 1 <-> N is the HPA's `behavior`
  (KEDA passes `advanced.horizontalPodAutoscalerConfig.behavior` through; default: the HPA's).

The poll is approximated to the first HPA sync at or after each multiple of the polling interval
(the simulator hands a Scaler its sample only at syncs; with the defaults, 30 s polls on 15 s syncs,
that is exact).
"""

from __future__ import annotations

from collections.abc import Mapping

from controller.sim.config import SimConfig
from controller.sim.engine import MetricsSample, Scaler
from controller.sim.workload import Workload

DEFAULT_POLLING_SECONDS = 30.0  # ScaledObject .spec.pollingInterval default


class PolledMetrics:
    """Wraps a Scaler so that it sees the sample of the latest KEDA poll, held between polls."""

    def __init__(self, inner: Scaler, *, polling_seconds: float = DEFAULT_POLLING_SECONDS,
                 use_cached_metrics: bool = False, name: str | None = None) -> None:
        if polling_seconds <= 0:
            raise ValueError(f"polling_seconds must be positive, got {polling_seconds}")
        self.inner = inner
        self.name = name or inner.name
        self.polling_seconds = polling_seconds
        self.use_cached_metrics = use_cached_metrics
        self.tick_seconds = 1.0
        self._next_poll = 0.0
        self._held: MetricsSample | None = None
        self.polls = 0

    def initial(self, workload: Workload, config: SimConfig) -> int:
        self.tick_seconds = config.tick_seconds
        return self.inner.initial(workload, config)

    def metric_sample(self, tick: int, sample: MetricsSample | None) -> MetricsSample | None:
        """What the HPA behind KEDA reads at `tick`: the fresh sample, or the latest poll's."""
        if not self.use_cached_metrics:
            return sample
        now = tick * self.tick_seconds
        if now >= self._next_poll:
            self._held = sample
            self.polls += 1
            while self._next_poll <= now:
                self._next_poll += self.polling_seconds
        return self._held

    def desired(self, tick: int, sample: MetricsSample | None, current: int, ready: int) -> int:
        # Pods are listed live (the HPA's replica count and readiness); only the metric is cached.
        return self.inner.desired(tick, self.metric_sample(tick, sample), current, ready)

    def describe(self) -> Mapping[str, object]:
        inner = getattr(self.inner, "describe", None)
        out: dict[str, object] = dict(inner()) if inner is not None else {}
        out["keda_polls"] = self.polls
        return out
