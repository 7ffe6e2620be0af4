"""Stage 1, reactive: the Kubernetes HPA autoscaling/v2 replica calculation, rule for rule.

Copied from kubernetes/pkg/controller/podautoscaler: replica_calculator.go (GetResourceReplicas,
GetRawResourceReplicas, GetMetricReplicas / calcPlainMetricReplicas, GetObjectMetricReplicas,
GetObjectPerPodMetricReplicas, GetExternalMetricReplicas, GetExternalPerPodMetricReplicas,
getUsageRatioReplicaCount, groupPods) and horizontal.go (computeReplicasForMetrics). Differences,
each on purpose:
- none in the arithmetic: values become milli-unit integers (rounded up, as Quantity.MilliValue)
  and the averages and utilization percentages use the HPA's integer divisions;
- readiness comes from the caller (`ReactiveInputs.pods`) for every metric type, where the HPA looks
  at readiness only for CPU and at the Pending phase otherwise: an LLM pod loading weights reports
  metrics of an idle server, and counting it as idle would drive a scale-down during a cold start.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple, TypeVar

from controller.policy.spec import DEFAULT_TOLERANCE, MetricSpec, PredictiveAutoscalerSpec
from controller.policy.types import MetricObservation, PolicyInputError, ReactiveInputs, Reason, StageResult

_T = TypeVar("_T")


class Tolerances:
    """replica_calculator.go Tolerances: a ratio in [1 - down, 1 + up] (inclusive) changes nothing."""

    __slots__ = ("low", "high")

    def __init__(self, scale_down: float = DEFAULT_TOLERANCE, scale_up: float = DEFAULT_TOLERANCE) -> None:
        self.low = 1.0 - scale_down
        self.high = 1.0 + scale_up

    def is_within(self, ratio: float) -> bool:
        return self.low <= ratio <= self.high


def tolerances_for(spec: PredictiveAutoscalerSpec) -> Tolerances:
    """behavior.scaleUp/scaleDown.tolerance (Kubernetes 1.33), each falling back to the global 0.1."""
    b = spec.behavior
    down = b.down.tolerance if b is not None and b.down.tolerance is not None else DEFAULT_TOLERANCE
    up = b.up.tolerance if b is not None and b.up.tolerance is not None else DEFAULT_TOLERANCE
    return Tolerances(scale_down=down, scale_up=up)


_CONDITIONS = frozenset(("Ready", "Unready", "Ignored"))


class MetricInvalid(Exception):
    """This metric gives no proposal this sync (the HPA's per-metric error); carries the message."""


def _ceil(x: float) -> int:
    return int(math.ceil(x))


def milli(value: float) -> int:
    """resource.Quantity.MilliValue(): the value in thousandths, rounded up (ScaledValue is a ceiling).

    The HPA computes every ratio from these int64s; doing the same keeps the edge cases identical
    (e.g. 80 over 6 pods at target 10: (80000 // 6) / 10000 * 6 = 7.9998 -> 8 replicas, where float
    division gives 8.000000000000002 -> 9). The 1e-6 absorbs float noise such as 0.3 * 1000.
    """
    return math.ceil(value * 1000 - 1e-6)


# Metric kinds, as metric_replicas dispatches on them.
_POD_AVERAGE = 0      # Pods / Resource / ContainerResource with an AverageValue target
_POD_UTILIZATION = 1  # Resource / ContainerResource with a Utilization target
_VALUE = 2            # Object / External with a Value target
_AVERAGE = 3          # Object / External with an AverageValue target


class MetricPlan(NamedTuple):
    """What the calculation needs of one MetricSpec: its kind and target in milli-units."""

    kind: int
    target_milli: int      # milli(target value or averageValue); 0 for Utilization
    utilization: int       # target averageUtilization (percent); 0 otherwise
    metric: MetricSpec     # for its display name, formatted only when a message needs it


def _present(value: _T | None, field: str, metric: MetricSpec) -> _T:
    # MetricTarget's validator guarantees the field its type names; this narrows the Optional.
    if value is None:
        raise PolicyInputError(f"metric {metric.type}: target.{field} is missing")
    return value


def metric_plan(metric: MetricSpec) -> MetricPlan:
    target = metric.target
    if metric.type in ("Pods", "Resource", "ContainerResource"):
        if target.type == "Utilization":
            return MetricPlan(_POD_UTILIZATION, 0, _present(target.average_utilization, "averageUtilization", metric),
                              metric)
        return MetricPlan(_POD_AVERAGE, milli(_present(target.average_value, "averageValue", metric)), 0, metric)
    if target.type == "Value":
        return MetricPlan(_VALUE, milli(_present(target.value, "value", metric)), 0, metric)
    return MetricPlan(_AVERAGE, milli(_present(target.average_value, "averageValue", metric)), 0, metric)


def group_pods(pods: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """groupPods: (Ready names, Unready names), each in the mapping's order; Ignored pods drop out."""
    conditions = list(pods.values())
    if conditions.count("Ready") == len(conditions):
        return list(pods), []  # every pod ready: the common case, counted in C
    ready: list[str] = []
    unready: list[str] = []
    for name, condition in pods.items():
        if condition == "Ready":
            ready.append(name)
        elif condition == "Unready":
            unready.append(name)
    return ready, unready


def _pod_metric_replicas(
    values: Mapping[str, float],
    ready: list[str],
    unready: list[str],
    current: int,
    target_milli: int,
    tol: Tolerances,
    *,
    requests: Mapping[str, float] | None = None,
    target_utilization: int = 0,
) -> tuple[int, float]:
    """calcPlainMetricReplicas, and GetResourceReplicas when `requests` is given (Utilization).

    `ready` / `unready`: group_pods of a non-empty pod mapping. Returns (replicas, usage ratio before
    the missing/unready adjustment). Works on sums and counts (all the HPA's ratios need), so the
    common case of every ready pod with a sample costs one pass.
    """
    # groupPods: Ignored pods drop out; Unready pods are set aside; pods without a value are missing.
    usage = 0          # sum of the ready pods' values, milli-units
    counted = 0        # ready pods with a value
    request = 0        # sum of their requests (Utilization), milli-units
    missing: list[str] = []
    get = values.get
    ceil = math.ceil
    for name in ready:
        value = get(name)
        if value is None or value != value:  # absent or NaN: no sample for this pod
            missing.append(name)
            continue
        usage += ceil(value * 1000 - 1e-6)  # milli(value), inlined: this loop is the hot path
        counted += 1
        if requests is not None:
            request += _request_milli(requests, name)
    if not counted:
        raise MetricInvalid("did not receive metrics for targeted pods (pods might be unready)")

    if requests is None:
        # metricsclient.GetMetricUsageRatio: int64 average, then a float ratio.
        ratio = (usage // counted) / target_milli
    else:
        # GetResourceUtilizationRatio: utilization = int32(sum(usage) * 100 / sum(requests)).
        if request <= 0:
            raise MetricInvalid("no metrics returned matched known pods' requests")
        ratio = ((usage * 100) // request) / target_utilization
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if tol.low <= ratio <= tol.high:
            return current, ratio
        return _ceil(ratio * counted), ratio

    n = counted
    # Upstream fills missing pods in only below or above a ratio of exactly 1 (replica_calculator.go,
    # GetResourceReplicas and calcPlainMetricReplicas): at exactly 1 they are not counted, so the
    # re-check lands inside the tolerance and nothing changes.
    if missing and ratio != 1.0:
        n += len(missing)
        if ratio < 1.0:
            # On a scale-down a pod without a sample counts as exactly at target (Utilization: at
            # max(100 %, target) of its request), so a blind spot never drives a scale-down.
            for name in missing:
                if requests is None:
                    usage += target_milli
                else:
                    pod_request = _request_milli(requests, name)
                    request += pod_request
                    usage += pod_request * max(100, target_utilization) // 100
        elif requests is not None:
            # On a scale-up it counts as 0 (its request still counts), so a blind spot never
            # inflates a scale-up.
            for name in missing:
                request += _request_milli(requests, name)
    if scale_up_with_unready:
        # On a scale-up unready pods count as 0: they will take load once ready.
        n += len(unready)
        if requests is not None:
            for name in unready:
                request += _request_milli(requests, name)
    if requests is None:
        new_ratio = (usage // n) / target_milli
    else:
        if request <= 0:
            raise MetricInvalid("no metrics returned matched known pods' requests")
        new_ratio = ((usage * 100) // request) / target_utilization
    # Re-check: inside the tolerance, or the adjustment flipped the direction -> keep current.
    if tol.is_within(new_ratio) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current, ratio
    new_replicas = _ceil(new_ratio * n)
    if (new_ratio < 1.0 and new_replicas > current) or (new_ratio > 1.0 and new_replicas < current):
        # The change in the number of pods counted would flip the direction: keep current.
        return current, ratio
    return new_replicas, ratio


def _request_milli(requests: Mapping[str, float], name: str) -> int:
    value = requests.get(name)
    if value is None:
        raise MetricInvalid(f"missing request for {name}")  # GetResourceUtilizationRatio's error
    return milli(value)


def _usage_ratio_replicas(current: int, usage: int, target: int, ready_pods: int,
                          tol: Tolerances) -> tuple[int, float]:
    """getUsageRatioReplicaCount: Object and External metrics with a Value target (milli-units)."""
    ratio = usage / target
    if current != 0:
        if tol.is_within(ratio):
            return current, ratio
        return _ceil(ratio * ready_pods), ratio
    return _ceil(ratio), ratio


def _per_pod_replicas(status_replicas: int, usage: int, target_per_pod: int,
                      tol: Tolerances) -> tuple[int, float]:
    """GetObjectPerPodMetricReplicas / GetExternalPerPodMetricReplicas: AverageValue targets.

    The total is compared with target x status.replicas; outside the tolerance the answer is
    ceil(total / target), independent of the current count.
    """
    if status_replicas > 0:
        ratio = usage / (target_per_pod * status_replicas)
        if tol.is_within(ratio):
            return status_replicas, ratio
    else:
        ratio = math.inf if usage > 0 else 0.0
    return _ceil(usage / target_per_pod), ratio


def _planned_replicas(plan: MetricPlan, obs: MetricObservation | None, inputs: ReactiveInputs, tol: Tolerances,
                      groups: tuple[list[str], list[str]] | None) -> tuple[int, float]:
    """metric_replicas on a MetricPlan; `groups` is group_pods(inputs.pods) (None: computed here)."""
    if obs is None:
        raise MetricInvalid("no observation")
    if obs.error is not None:
        raise MetricInvalid(obs.error)
    current = inputs.current_replicas
    kind = plan.kind
    if kind <= _POD_UTILIZATION:
        if obs.pod_values is None:
            raise MetricInvalid("no per-pod values")
        if kind == _POD_UTILIZATION and obs.pod_requests is None:
            raise MetricInvalid("a Utilization target needs the pods' resource requests")
        if not inputs.pods:
            raise MetricInvalid("no pods returned by selector while calculating replica count")
        ready, unready = groups if groups is not None else group_pods(inputs.pods)
        if kind == _POD_UTILIZATION:
            return _pod_metric_replicas(obs.pod_values, ready, unready, current, 0, tol,
                                        requests=obs.pod_requests, target_utilization=plan.utilization)
        return _pod_metric_replicas(obs.pod_values, ready, unready, current, plan.target_milli, tol)
    # Object / External: one value.
    value = obs.value
    if value is None or value != value:
        raise MetricInvalid("no value")
    if kind == _VALUE:
        ready_count = sum(1 for c in inputs.pods.values() if c == "Ready")
        if current != 0 and not inputs.pods:
            raise MetricInvalid("unable to calculate ready pods: no pods returned by selector")
        return _usage_ratio_replicas(current, milli(value), plan.target_milli, ready_count, tol)
    status = inputs.status_replicas if inputs.status_replicas is not None else current
    return _per_pod_replicas(status, milli(value), plan.target_milli, tol)


def metric_replicas(metric: MetricSpec, obs: MetricObservation | None, inputs: ReactiveInputs,
                    tol: Tolerances) -> tuple[int, float]:
    """One metric's proposal (horizontal.go computeReplicasForMetric). Raises MetricInvalid."""
    return _planned_replicas(metric_plan(metric), obs, inputs, tol, None)


def validate_inputs(spec: PredictiveAutoscalerSpec, inputs: ReactiveInputs) -> None:
    """Structural checks only (missing data is not an error): counts match, numbers are sane."""
    if isinstance(inputs.current_replicas, bool) or not isinstance(inputs.current_replicas, int) \
            or inputs.current_replicas < 0:
        raise PolicyInputError(f"reactive.current_replicas must be an integer >= 0, got {inputs.current_replicas!r}")
    if inputs.status_replicas is not None and (not isinstance(inputs.status_replicas, int)
                                               or inputs.status_replicas < 0):
        raise PolicyInputError(f"reactive.status_replicas must be an integer >= 0, got {inputs.status_replicas!r}")
    if len(inputs.metrics) != len(spec.metrics):
        raise PolicyInputError(
            f"reactive.metrics has {len(inputs.metrics)} observations but spec.metrics has {len(spec.metrics)} "
            "entries (one observation per entry, same order; None for an unavailable one)"
        )
    if not _CONDITIONS.issuperset(inputs.pods.values()):
        for name, condition in inputs.pods.items():
            if condition not in _CONDITIONS:
                raise PolicyInputError(
                    f"reactive.pods[{name!r}] must be Ready, Unready or Ignored, got {condition!r}")


def failed_metric_reason(spec: PredictiveAutoscalerSpec, inputs: ReactiveInputs, tol: Tolerances) -> str:
    """The ScalingActive=False reason of a failed metrics sync, as horizontal.go words it: the
    condition of the last invalid metric (computeReplicasForMetrics keeps overwriting it), which
    computeStatusFor<Type>Metric names after the metric's source type (FailedGetPodsMetric,
    FailedGetExternalMetric, ...). Called only when a sync failed, so the plans are recomputed."""
    plans = [metric_plan(m) for m in spec.metrics]
    groups = group_pods(inputs.pods) if any(p.kind <= _POD_UTILIZATION for p in plans) else None
    reason = "FailedGetMetrics"  # no metric was invalid (cannot happen when the sync failed)
    for metric, plan, obs in zip(spec.metrics, plans, inputs.metrics):
        try:
            _planned_replicas(plan, obs, inputs, tol, groups)
        except MetricInvalid:
            reason = f"FailedGet{metric.type}Metric"
    return reason


def recommend(spec: PredictiveAutoscalerSpec, inputs: ReactiveInputs, tol: Tolerances) -> StageResult:
    """The reactive recommendation: the maximum over valid metrics (computeReplicasForMetrics).

    replicas is None (abstain, reason MetricsUnavailable) when no metric is valid: never scale blind.
    When some metric is invalid and the valid ones want fewer replicas than now, hold at current
    (InvalidMetricsHold), as the HPA refuses to scale down on partial information.
    """
    current = inputs.current_replicas
    plans = [metric_plan(m) for m in spec.metrics]
    # The pods grouped once for every Pods/Resource metric (the HPA groups them per metric, the
    # same way each time).
    groups = group_pods(inputs.pods) if any(p.kind <= _POD_UTILIZATION for p in plans) else None
    best: int | None = None
    best_index = -1
    best_ratio = 0.0
    all_within = True
    invalid: list[str] = []
    for index, (metric, obs) in enumerate(zip(plans, inputs.metrics)):
        try:
            replicas, ratio = _planned_replicas(metric, obs, inputs, tol, groups)
        except MetricInvalid as err:
            invalid.append(f"{metric.metric.display_name}: {err}")
            continue
        if replicas != current:
            all_within = False
        if best is None or replicas > best:
            best, best_index, best_ratio = replicas, index, ratio
    # Formatted for the message only: display_name builds a string.
    best_name = plans[best_index].metric.display_name if best_index >= 0 else ""
    if best is None:
        return StageResult(None, Reason.METRICS_UNAVAILABLE,
                           f"no valid metric ({len(invalid)} of {len(spec.metrics)} invalid): {'; '.join(invalid)}")
    if invalid and best < current:
        return StageResult(current, Reason.INVALID_METRICS_HOLD,
                           f"{len(invalid)} of {len(spec.metrics)} metrics invalid and the rest want {best} < "
                           f"{current}: not scaling down; {'; '.join(invalid)}")
    if best == current and all_within:
        return StageResult(current, Reason.WITHIN_TOLERANCE,
                           f"every metric within tolerance of its target (max usage ratio {best_ratio:.3f} "
                           f"from {best_name})")
    if best > current:
        return StageResult(best, Reason.SCALE_UP_REACTIVE,
                           f"{best_name} at {best_ratio:.3f} x target wants {best} (from {current})")
    if best < current:
        return StageResult(best, Reason.SCALE_DOWN,
                           f"all metrics below target; highest {best_name} at {best_ratio:.3f} x target wants {best}")
    return StageResult(best, Reason.NO_CHANGE, f"{best_name} at {best_ratio:.3f} x target wants {best}")
