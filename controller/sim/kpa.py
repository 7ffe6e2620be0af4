"""The `kpa` family: Knative's Pod Autoscaler (which AIBrix's KPA mirrors) as a simulator Scaler.

Each rule follows knative/serving and is cited where it is applied:
- [A] pkg/autoscaler/scaling/autoscaler.go, `(*autoscaler).Scale` and `newAutoscaler`;
- [C] config/core/configmaps/autoscaler.yaml, the documented `config-autoscaler` defaults:
  container-concurrency-target-percentage 70, stable-window 60s, panic-window-percentage 10,
  panic-threshold-percentage 200, max-scale-up-rate 1000, max-scale-down-rate 2, tick-interval 2s,
  scale-down-delay 0s;
- [M] pkg/autoscaler/metrics/collector.go (per-second scrapes of every pod's concurrency, averaged
  over the stable and the panic window by aggregation.TimedFloat64Buckets.WindowAverage);
- [T] pkg/reconciler/autoscaling/resources/target.go, ResolveMetricTarget (the per-pod target is
  containerConcurrency x target utilization);
- [D] pkg/autoscaler/aggregation/max/timewindow.go (the scale-down delay is the maximum of the
  decisions over the delay window).

Where the simulator differs, on purpose:
- the windows average the samples the simulator scraped inside them, relative to the newest sample's
  time (Knative averages one-second buckets relative to now, counting missing buckets as 0; the
  simulator scrapes every `scrape_seconds` and delivers them `metrics_delay_seconds` late, so the
  window is anchored at the newest sample). Run the family with `knative_timing(config)` (1 s
  scrapes, 1 s delay, a decision every 2 s) for Knative's own pipeline.
- no scale to zero, no activator, no burst capacity (the simulator keeps min_replicas >= 1, and
  the activator only matters around zero).
- `ceil` ignores float noise below 1e-9, as the capacity model does (Knative's plain math.Ceil would
  turn 21 / 0.7 = 30.000000000000004 into 31).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from controller.sim.config import SimConfig
from controller.sim.engine import MetricsSample
from controller.sim.reference import OracleScaler
from controller.sim.workload import Workload

KpaMetric = Literal["concurrency", "running", "kv_cache_usage"]

# [T]: autoscaling.TargetMin, the smallest per-pod target Knative resolves to.
TARGET_MIN = 0.01


class KpaSettings(BaseModel):
    """A KPA configuration: the config-autoscaler keys and the revision's annotations that matter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: KpaMetric = Field(
        "concurrency",
        description="per-pod value scaled on: concurrency (Knative: requests in flight at the pod, here "
        "running + waiting), running (vllm:num_requests_running) or kv_cache_usage (AIBrix-style, 0..1)",
    )
    target: float = Field(
        gt=0, description="per pod: containerConcurrency (or autoscaling.knative.dev/target) of the metric"
    )
    target_utilization: float = Field(
        0.7, gt=0, le=1, description="container-concurrency-target-percentage / 100 [C]"
    )
    stable_window_seconds: float = Field(60.0, ge=6, description="stable-window [C] (Knative's minimum is 6 s)")
    panic_window_percentage: float = Field(10.0, ge=1, le=100, description="panic-window-percentage [C]")
    panic_threshold_percentage: float = Field(200.0, gt=100, description="panic-threshold-percentage [C]")
    max_scale_up_rate: float = Field(1000.0, gt=1, description="max-scale-up-rate [C]")
    max_scale_down_rate: float = Field(2.0, gt=1, description="max-scale-down-rate [C]")
    scale_down_delay_seconds: float = Field(0.0, ge=0, description="scale-down-delay [C]")
    min_scale: int = Field(1, ge=1, description="autoscaling.knative.dev/min-scale (the simulator keeps >= 1)")
    max_scale: int = Field(0, ge=0, description="autoscaling.knative.dev/max-scale; 0: no bound but the cluster's")

    @property
    def target_value(self) -> float:
        """[T]: the per-pod value the autoscaler aims for, target x utilization (at least TargetMin)."""
        return max(TARGET_MIN, self.target * self.target_utilization)

    @property
    def panic_window_seconds(self) -> float:
        # [C]: "the panic window ... is panic-window-percentage of the stable-window", rounded to a
        # whole second; never below one second ([M]'s bucket).
        return max(1.0, float(round(self.stable_window_seconds * self.panic_window_percentage / 100.0)))

    @property
    def panic_threshold(self) -> float:
        return self.panic_threshold_percentage / 100.0


def knative_timing(config: SimConfig) -> SimConfig:
    """The replay's config with Knative's own metric pipeline: [M] scrapes every pod each second and
    the stat is the last second's average (1 s old), [C] the autoscaler decides every 2 s."""
    return config.model_copy(update={"scrape_seconds": 1.0, "metrics_delay_seconds": 1.0, "sync_seconds": 2.0})


def _ceil(value: float) -> int:
    return math.ceil(value - 1e-9)


class _Window:
    """The mean of the samples inside a time window that ends at the newest sample."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._items: deque[tuple[float, float]] = deque()
        self._sum = 0.0

    def record(self, at: float, value: float) -> None:
        self._items.append((at, value))
        self._sum += value
        # (at - seconds, at]: a 6 s window at 1 s scrapes holds 6 samples, as [M]'s 6 buckets do.
        while self._items and self._items[0][0] <= at - self.seconds:
            self._sum -= self._items.popleft()[1]

    def average(self) -> float:
        if not self._items:
            return 0.0
        if len(self._items) == 1:
            self._sum = self._items[0][1]  # no float residue from the values that left
        return self._sum / len(self._items)


class KpaScaler:
    """Knative's KPA decision [A] at every simulator sync, on the newest visible sample."""

    def __init__(self, settings: KpaSettings, name: str = "kpa") -> None:
        self.name = name
        self.settings = settings
        self._stable = _Window(settings.stable_window_seconds)
        self._panic = _Window(settings.panic_window_seconds)
        self._last_sample_tick: int | None = None
        self._delay: deque[tuple[float, int]] = deque()
        self.panic_time: float | None = None
        self.max_panic_pods = 0
        self.tick_seconds = 1.0
        self.panic_decisions = 0
        self.decisions = 0

    def initial(self, workload: Workload, config: SimConfig) -> int:
        self.tick_seconds = config.tick_seconds
        # Every policy starts where the capacity model says the first minutes need (a fair start).
        start = OracleScaler().initial(workload, config)
        # [A] newAutoscaler: "We always start in the panic mode, if the deployment is scaled up over
        # 1 pod", holding at least the current scale until the windows have data.
        if start > 1:
            self.panic_time = 0.0
            self.max_panic_pods = start
        return start

    def _value(self, sample: MetricsSample) -> float:
        """The revision's total of the metric: [M] the collector records the sum over the pods."""
        metric = self.settings.metric
        if metric == "concurrency":
            per_pod = sample.running + sample.waiting
        elif metric == "running":
            per_pod = sample.running
        else:
            per_pod = sample.kv_cache_usage
        return per_pod * sample.ready

    def observe(self, sample: MetricsSample) -> None:
        """Record a sample once (a sample stays visible over several syncs)."""
        if sample.tick == self._last_sample_tick:
            return
        self._last_sample_tick = sample.tick
        at = sample.tick * self.tick_seconds
        value = self._value(sample)
        self._stable.record(at, value)
        self._panic.record(at, value)

    def decide(self, now: float, ready: int) -> int | None:
        """[A] Scale: the desired pod count at `now` (seconds), or None without data (no change)."""
        s = self.settings
        if self._last_sample_tick is None:
            return None  # [A]: ErrNoData -> invalidSR, the scale is left alone
        ready_pods = max(1.0, float(ready))  # [A] "Use 1 if there are zero current pods."
        # [A]: at least one more pod on a scale-up however small the rate; Reachable is assumed, so
        # a scale-down may halve the ready pods at most (max-scale-down-rate 2).
        max_up = math.ceil(s.max_scale_up_rate * ready_pods)
        max_down = math.floor(ready_pods / s.max_scale_down_rate)
        dspc = _ceil(self._stable.average() / s.target_value)
        dppc = _ceil(self._panic.average() / s.target_value)
        stable_pods = int(min(max(dspc, max_down), max_up))
        panic_pods = int(min(max(dppc, max_down), max_up))
        # [A]: the threshold compares the panic window's desired pods (before the rate limits) with
        # the ready pods: 200 % means the 6 s load wants twice the pods that serve now.
        over = dppc / ready_pods >= s.panic_threshold
        if self.panic_time is None and over:
            self.panic_time = now  # "Begin panicking when we cross the threshold in the panic window."
        elif over:
            self.panic_time = now  # "still over panic threshold right now -- extend the panic window"
        elif self.panic_time is not None and self.panic_time + s.stable_window_seconds < now:
            # "Stop panicking after the surge has made its way into the stable metric."
            self.panic_time = None
            self.max_panic_pods = 0
        desired = stable_pods
        if self.panic_time is not None:
            self.panic_decisions += 1
            # [A]: provision for the larger of the two windows, and "We do not scale down while in
            # panic mode. Only increases will be applied."
            desired = max(desired, panic_pods)
            if desired > self.max_panic_pods:
                self.max_panic_pods = desired
            desired = self.max_panic_pods
        if s.scale_down_delay_seconds > 0:
            # [D]: the maximum of the decisions over the delay window, so a scale-down happens only
            # after it has been wanted for the whole delay.
            self._delay.append((now, desired))
            while self._delay[0][0] <= now - s.scale_down_delay_seconds:
                self._delay.popleft()
            desired = max(value for _, value in self._delay)
        # The PodAutoscaler's min-scale / max-scale bound the result (the KPA reconciler).
        desired = max(desired, s.min_scale)
        if s.max_scale:
            desired = min(desired, s.max_scale)
        return desired

    def desired(self, tick: int, sample: MetricsSample | None, current: int, ready: int) -> int:
        if sample is not None:
            self.observe(sample)
        want = self.decide(tick * self.tick_seconds, ready)
        self.decisions += 1
        return current if want is None else want

    def describe(self) -> dict[str, int]:
        return {"decisions": self.decisions, "panic_decisions": self.panic_decisions}
