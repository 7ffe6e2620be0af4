"""The reactive stage against the Kubernetes HPA's documented rules, one table row per rule.

Expected numbers are worked by hand from replica_calculator.go (milli-unit integer averages,
ceil(ratio x pods counted), tolerance inclusive at 1 +/- 0.1).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.policy import reactive as stage
from controller.policy.types import MetricObservation as Obs
from controller.policy.types import PolicyInputError, ReactiveInputs, Reason
from tests.policy.builders import (
    cpu_metric,
    external_metric,
    make_spec,
    object_metric,
    pod_values,
    pods_metric,
    reactive,
    ready_pods,
)


def run(spec, inputs):
    return stage.recommend(spec, inputs, stage.tolerances_for(spec))


def pods_with(ready: int, unready: int = 0, ignored: int = 0) -> dict[str, str]:
    pods = ready_pods(ready)
    pods.update({f"u{i}": "Unready" for i in range(unready)})
    pods.update({f"x{i}": "Ignored" for i in range(ignored)})
    return pods


ONE_POD_METRIC = [pods_metric(average_value=10)]

# (spec metrics, inputs, expected replicas)
PODS_CASES = [
    pytest.param(reactive(4, [10.9] * 4), 4, id="ratio-1.09-within-tolerance"),
    pytest.param(reactive(4, [11.1] * 4), 5, id="ratio-1.11-outside-tolerance"),
    pytest.param(reactive(4, [11.0] * 4), 4, id="ratio-1.10-exactly-is-within"),
    pytest.param(reactive(10, [9.1] * 10), 10, id="ratio-0.91-within-tolerance"),
    pytest.param(reactive(10, [8.9] * 10), 9, id="ratio-0.89-outside-tolerance"),
    pytest.param(reactive(4, [20.0] * 4), 8, id="double-load-doubles"),
    pytest.param(reactive(4, [5.0] * 4), 2, id="half-load-halves"),
    pytest.param(reactive(4, [0.0] * 4), 0, id="zero-load-wants-zero-bounds-later"),
    # missing pods: at target on a scale-down, 0 on a scale-up, then the direction re-checked
    pytest.param(reactive(10, [12.0] * 9 + [None]), 10, id="missing-up-counts-zero-falls-within-tolerance"),
    pytest.param(reactive(4, [30.0, 30.0, None, None]), 6, id="missing-up-counts-zero"),
    pytest.param(reactive(4, [2.0, 2.0, 2.0, None]), 2, id="missing-down-counts-at-target"),
    pytest.param(reactive(4, [11.5, 11.5, 11.5, None]), 4, id="missing-up-flips-direction-keeps-current"),
    # kubernetes TestPlainMetricReplicaCalcMissingMetricsNoChangeEq: at a ratio of exactly 1 the missing
    # pods are not counted at all (upstream fills them in only below or above 1): no change.
    pytest.param(reactive(5, [10.0, 9.5, 10.5, None, None]), 5, id="missing-at-ratio-exactly-1-no-change"),
    # unready pods: 0 on a scale-up, left out otherwise
    pytest.param(reactive(6, [20.0] * 4, pods=pods_with(4, unready=2)), 8, id="unready-up-counts-zero"),
    pytest.param(reactive(6, [5.0] * 4, pods=pods_with(4, unready=2)), 2, id="unready-left-out-on-scale-down"),
    pytest.param(reactive(5, [12.0] * 4, pods=pods_with(4, unready=1)), 5, id="unready-up-falls-within-tolerance"),
    pytest.param(reactive(4, [12.0] * 2, pods=pods_with(2, unready=2)), 4,
                 id="unready-up-flips-direction-keeps-current"),
    pytest.param(reactive(4, [20.0] * 3, pods=pods_with(3, ignored=1)), 6, id="ignored-pods-left-out"),
    pytest.param(reactive(10, [20.0, 20.0, None], pods=pods_with(3, ignored=7)), 10,
                 id="fewer-pods-counted-would-flip-keeps-current"),
]


@pytest.mark.parametrize(("inputs", "expected"), PODS_CASES)
def test_pods_metric_rules(inputs: ReactiveInputs, expected: int) -> None:
    assert run(make_spec(ONE_POD_METRIC), inputs).replicas == expected


def cpu_obs(usage: list[float | None], request: float = 1.0) -> Obs:
    return Obs(pod_values=pod_values(usage), pod_requests={f"p{i}": request for i in range(len(usage))})


def external_obs(value: float) -> Obs:
    return Obs(value=value)


SINGLE_METRIC_CASES = [
    pytest.param(cpu_metric(50), reactive(4, observations=[cpu_obs([0.8] * 4)]), 7, id="cpu-utilization-80-of-50"),
    pytest.param(cpu_metric(50), reactive(4, observations=[cpu_obs([0.5549] * 4)]), 4,
                 id="utilization-truncated-to-integer-percent"),
    pytest.param(cpu_metric(50), reactive(4, observations=[cpu_obs([0.1, 0.1, 0.1, None])]), 3,
                 id="utilization-missing-down-at-100-percent-of-request"),
    # kubernetes TestReplicaCalcMissingMetricsNoChangeEq: one of two pods reports exactly its request.
    pytest.param(cpu_metric(100), reactive(2, observations=[cpu_obs([1.0, None])]), 2,
                 id="utilization-missing-at-ratio-exactly-1-no-change"),
    pytest.param(external_metric("Value", 10), reactive(4, observations=[external_obs(25)]), 10,
                 id="external-value-ratio-times-ready-pods"),
    pytest.param(external_metric("Value", 10), reactive(4, observations=[external_obs(10.5)]), 4,
                 id="external-value-within-tolerance"),
    pytest.param(external_metric("AverageValue", 5), reactive(4, observations=[external_obs(42)]), 9,
                 id="external-average-value-ceil-total-over-target"),
    pytest.param(external_metric("AverageValue", 5), reactive(4, observations=[external_obs(21)], status_replicas=4), 4,
                 id="external-average-value-within-tolerance-of-status-replicas"),
    pytest.param(external_metric("AverageValue", 5), reactive(4, observations=[external_obs(21)], status_replicas=3), 5,
                 id="external-average-value-divides-by-status-replicas"),
    pytest.param(object_metric("Value", 10), reactive(4, observations=[external_obs(5)]), 2, id="object-value"),
    pytest.param(object_metric("AverageValue", 5), reactive(4, observations=[external_obs(3)]), 1,
                 id="object-average-value"),
]


@pytest.mark.parametrize(("metric", "inputs", "expected"), SINGLE_METRIC_CASES)
def test_single_metric_rules(metric: dict, inputs: ReactiveInputs, expected: int) -> None:
    assert run(make_spec([metric]), inputs).replicas == expected


TWO = [pods_metric("a", 10), external_metric("Value", 10)]
MULTI_CASES = [
    pytest.param(reactive(4, observations=[Obs(pod_values=pod_values([12.0] * 4)), Obs(value=20)]), 8,
                 Reason.SCALE_UP_REACTIVE, id="max-over-metrics"),
    pytest.param(reactive(4, observations=[Obs(pod_values=pod_values([5.0] * 4)), Obs(value=2)]), 2,
                 Reason.SCALE_DOWN, id="all-below-target-scales-down-to-max"),
    pytest.param(reactive(4, observations=[Obs(pod_values=pod_values([5.0] * 4)), Obs.unavailable("adapter down")]), 4,
                 Reason.INVALID_METRICS_HOLD, id="invalid-metric-blocks-scale-down"),
    pytest.param(reactive(4, observations=[Obs(pod_values=pod_values([5.0] * 4)), None]), 4,
                 Reason.INVALID_METRICS_HOLD, id="unavailable-metric-blocks-scale-down"),
    pytest.param(reactive(4, observations=[Obs(pod_values=pod_values([20.0] * 4)), Obs.unavailable("x")]), 8,
                 Reason.SCALE_UP_REACTIVE, id="invalid-metric-allows-scale-up"),
    pytest.param(reactive(4, observations=[Obs.unavailable("x"), None]), None,
                 Reason.METRICS_UNAVAILABLE, id="no-valid-metric-abstains"),
    pytest.param(reactive(4, observations=[Obs(pod_values={}), Obs(value=float("nan"))]), None,
                 Reason.METRICS_UNAVAILABLE, id="empty-and-nan-are-invalid"),
    pytest.param(reactive(4, pods={}, observations=[Obs(pod_values={}), Obs(value=5)]), None,
                 Reason.METRICS_UNAVAILABLE, id="no-pods-is-invalid"),
    pytest.param(reactive(4, pods=pods_with(0, unready=4), observations=[Obs(pod_values={}), Obs.unavailable("x")]),
                 None, Reason.METRICS_UNAVAILABLE, id="all-pods-unready-is-invalid"),
    pytest.param(reactive(4, observations=[Obs(pod_values=pod_values([10.5] * 4)), Obs(value=10.2)]), 4,
                 Reason.WITHIN_TOLERANCE, id="all-within-tolerance"),
]


@pytest.mark.parametrize(("inputs", "expected", "reason"), MULTI_CASES)
def test_multiple_metrics_rules(inputs: ReactiveInputs, expected: int | None, reason: str) -> None:
    result = run(make_spec(TWO), inputs)
    assert (result.replicas, result.reason) == (expected, reason), result.message


@pytest.mark.parametrize(
    ("behavior", "per_pod", "current", "expected"),
    [
        pytest.param({"scaleUp": {"tolerance": "0.05"}}, 10.6, 4, 5, id="scale-up-tolerance-0.05-acts-at-1.06"),
        pytest.param({"scaleUp": {"tolerance": "50m"}}, 10.5, 4, 4, id="scale-up-tolerance-50m-holds-at-1.05"),
        pytest.param({"scaleDown": {"tolerance": "0.3"}}, 7.5, 10, 10, id="scale-down-tolerance-0.3-holds-at-0.75"),
        pytest.param({"scaleDown": {"tolerance": "0.3"}}, 6.9, 10, 7, id="scale-down-tolerance-0.3-acts-at-0.69"),
        pytest.param({"scaleDown": {"tolerance": "0.3"}}, 10.9, 4, 4, id="other-direction-keeps-0.1"),
        pytest.param({}, 11.1, 4, 5, id="behavior-without-tolerance-uses-0.1"),
    ],
)
def test_per_direction_tolerance(behavior: dict, per_pod: float, current: int, expected: int) -> None:
    spec = make_spec(ONE_POD_METRIC, behavior=behavior)
    assert run(spec, reactive(current, [per_pod] * current)).replicas == expected


def test_observation_count_must_match_spec() -> None:
    with pytest.raises(PolicyInputError, match=r"reactive.metrics has 1 observations but spec.metrics has 2"):
        stage.validate_inputs(make_spec(TWO), reactive(4, [10.0] * 4))


def test_pod_condition_must_be_known() -> None:
    with pytest.raises(PolicyInputError, match=r"reactive.pods\['p0'\] must be Ready, Unready or Ignored"):
        stage.validate_inputs(make_spec(ONE_POD_METRIC), reactive(1, [1.0], pods={"p0": "Running"}))


def test_milli_rounds_up_like_quantity_milli_value() -> None:
    assert [stage.milli(v) for v in (0.3, 1.0, 0.0001, 2.5)] == [300, 1000, 1, 2500]


@settings(max_examples=150)
@given(current=st.integers(1, 50), ratio=st.floats(0.9, 1.1))
def test_inside_tolerance_nothing_changes(current: int, ratio: float) -> None:
    # Values are sent as exact milli-units so the ratio the HPA computes is the one drawn.
    per_pod = round(10 * ratio, 3)
    if not 0.9 <= per_pod / 10 <= 1.1:
        per_pod = 10.0
    result = run(make_spec(ONE_POD_METRIC), reactive(current, [per_pod] * current))
    assert result.replicas == current


@settings(max_examples=150)
@given(
    values=st.lists(st.one_of(st.none(), st.floats(0, 100)), min_size=1, max_size=12),
    bump=st.integers(0, 11), extra=st.floats(0, 50),
)
def test_more_load_on_a_pod_never_fewer_replicas(values: list[float | None], bump: int, extra: float) -> None:
    current = len(values)
    if all(v is None for v in values):
        values[0] = 1.0
    spec = make_spec(ONE_POD_METRIC)
    before = run(spec, reactive(current, values)).replicas
    more = list(values)
    i = bump % current
    if more[i] is not None:
        more[i] = more[i] + extra
        after = run(spec, reactive(current, more)).replicas
        assert after >= before, (values, more, before, after)


def test_each_spec_reads_its_own_target_and_tolerance() -> None:
    """Interleaved recommendations of two autoscalers that differ only in target and tolerance."""
    tight = make_spec([pods_metric(average_value=10)], behavior={"scaleUp": {"tolerance": 0.0}})
    loose = make_spec([pods_metric(average_value=20)])
    inputs = reactive(4, [10.5] * 4)
    for _ in range(2):
        assert run(tight, inputs).replicas == 5  # 10.5 / 10 = 1.05 > 1 + 0: ceil(4.2)
        assert run(loose, inputs).replicas == 3  # 10.5 / 20 = 0.525: ceil(2.1)
    assert stage.tolerances_for(tight).high == 1.0
    assert stage.tolerances_for(loose).high == pytest.approx(1.1)


@pytest.mark.parametrize(
    ("pods", "ready", "unready"),
    [
        pytest.param({}, [], [], id="none"),
        pytest.param({"a": "Ready", "b": "Ready"}, ["a", "b"], [], id="all-ready"),
        pytest.param({"b": "Unready", "a": "Ready", "c": "Ignored", "d": "Ready", "e": "Unready"},
                     ["a", "d"], ["b", "e"], id="mixed-in-mapping-order"),
        pytest.param({"a": "Ignored"}, [], [], id="ignored-drop-out"),
    ],
)
def test_group_pods(pods, ready, unready) -> None:
    """The pods are grouped once per decision for every Pods/Resource metric, as groupPods does."""
    assert stage.group_pods(pods) == (ready, unready)
