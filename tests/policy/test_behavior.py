"""Behavior (stabilization windows and rate limits) against horizontal.go, one table row per rule."""

from __future__ import annotations

import pytest

from controller.policy import behavior as stage
from controller.policy.spec import DEFAULT_SCALE_DOWN, DEFAULT_SCALE_UP
from controller.policy.types import Reason, Recommendation, ScaleEvent
from tests.policy.builders import NOW, make_spec

T = NOW.timestamp()


def recs(*pairs: tuple[float, int]) -> tuple[Recommendation, ...]:
    """(seconds ago, replicas) pairs."""
    return tuple(Recommendation(T - ago, n) for ago, n in pairs)


def events(*pairs: tuple[float, int]) -> tuple[ScaleEvent, ...]:
    return tuple(ScaleEvent(T - ago, change) for ago, change in pairs)


def up(*policies: tuple[str, int, int], select: str = "Max", window: int = 0) -> dict:
    return {"scaleUp": {"stabilizationWindowSeconds": window, "selectPolicy": select,
                        "policies": [{"type": t, "value": v, "periodSeconds": p} for t, v, p in policies]}}


def down(*policies: tuple[str, int, int], select: str = "Max", window: int = 0) -> dict:
    return {"scaleDown": {"stabilizationWindowSeconds": window, "selectPolicy": select,
                          "policies": [{"type": t, "value": v, "periodSeconds": p} for t, v, p in policies]}}


# (behavior or None, current, desired, history, events, expected, reason)
CASES = [
    # stabilization windows
    pytest.param({}, 10, 6, recs((100, 8)), (), 8, Reason.SCALE_DOWN_STABILIZED, id="down-window-takes-max-of-recent"),
    pytest.param({}, 10, 6, recs((100, 12)), (), 10, Reason.SCALE_DOWN_STABILIZED,
                 id="down-window-never-above-current"),
    pytest.param({}, 10, 6, recs((301, 8)), (), 6, "", id="down-window-expired-sample-ignored"),
    pytest.param({}, 10, 6, recs((300, 8)), (), 6, "", id="down-window-sample-at-cutoff-excluded-after-is-strict"),
    pytest.param({"scaleUp": {"stabilizationWindowSeconds": 60}}, 10, 15, recs((30, 11)), (), 11,
                 Reason.SCALE_UP_STABILIZED, id="up-window-takes-min-of-recent"),
    pytest.param({"scaleUp": {"stabilizationWindowSeconds": 60}}, 10, 15, recs((30, 8)), (), 10,
                 Reason.SCALE_UP_STABILIZED, id="up-window-never-below-current"),
    pytest.param({"scaleUp": {"stabilizationWindowSeconds": 60}}, 10, 15, recs((61, 11)), (), 15, "",
                 id="up-window-expired-sample-ignored"),
    # scale-up policies
    pytest.param(up(("Pods", 2, 60)), 10, 20, (), (), 12, Reason.SCALE_UP_LIMITED, id="pods-policy-up"),
    pytest.param(up(("Percent", 50, 60)), 10, 20, (), (), 15, Reason.SCALE_UP_LIMITED, id="percent-policy-up"),
    pytest.param(up(("Percent", 15, 60)), 10, 20, (), (), 12, Reason.SCALE_UP_LIMITED,
                 id="percent-up-rounds-up-11.5-is-12"),
    pytest.param(up(("Percent", 10, 60)), 1, 20, (), (), 2, Reason.SCALE_UP_LIMITED,
                 id="percent-up-rounds-up-so-one-replica-can-grow"),
    pytest.param(up(("Pods", 2, 60), ("Percent", 50, 60)), 10, 20, (), (), 15, Reason.SCALE_UP_LIMITED,
                 id="select-max-takes-largest-change-up"),
    pytest.param(up(("Pods", 2, 60), ("Percent", 50, 60), select="Min"), 10, 20, (), (), 12,
                 Reason.SCALE_UP_LIMITED, id="select-min-takes-smallest-change-up"),
    pytest.param(up(("Pods", 2, 60), select="Disabled"), 10, 20, (), (), 10, Reason.SCALING_DISABLED,
                 id="select-disabled-no-scale-up"),
    pytest.param(up(("Pods", 4, 60)), 10, 20, (), events((30, 3)), 11, Reason.SCALE_UP_LIMITED,
                 id="period-counts-earlier-scale-up"),
    pytest.param(up(("Pods", 4, 60)), 10, 20, (), events((60, 3)), 14, Reason.SCALE_UP_LIMITED,
                 id="period-event-at-cutoff-excluded"),
    pytest.param(up(("Pods", 2, 60)), 10, 20, (), events((10, 6)), 10, Reason.SCALE_UP_LIMITED,
                 id="limit-below-current-holds-current"),
    pytest.param(up(("Pods", 4, 60)), 10, 20, (), events((30, -2)), 16, Reason.SCALE_UP_LIMITED,
                 id="period-start-adds-back-scale-downs"),
    pytest.param(up(("Pods", 20, 60)), 10, 20, (), (), 20, "", id="within-policy-unlimited"),
    # scale-down policies
    pytest.param(down(("Percent", 10, 60)), 10, 2, (), (), 9, Reason.SCALE_DOWN_LIMITED, id="percent-policy-down"),
    pytest.param(down(("Pods", 3, 60)), 10, 2, (), (), 7, Reason.SCALE_DOWN_LIMITED, id="pods-policy-down"),
    pytest.param(down(("Percent", 15, 60)), 10, 2, (), (), 8, Reason.SCALE_DOWN_LIMITED,
                 id="percent-down-truncates-8.5-is-8"),
    pytest.param(down(("Pods", 3, 60), ("Percent", 10, 60)), 10, 2, (), (), 7, Reason.SCALE_DOWN_LIMITED,
                 id="select-max-takes-largest-change-down"),
    pytest.param(down(("Pods", 3, 60), ("Percent", 10, 60), select="Min"), 10, 2, (), (), 9,
                 Reason.SCALE_DOWN_LIMITED, id="select-min-takes-smallest-change-down"),
    pytest.param(down(("Pods", 3, 60), select="Disabled"), 10, 2, (), (), 10, Reason.SCALING_DISABLED,
                 id="select-disabled-no-scale-down"),
    pytest.param(down(("Percent", 50, 60)), 10, 2, (), events((30, -2)), 6, Reason.SCALE_DOWN_LIMITED,
                 id="down-period-start-counts-earlier-scale-down"),
    pytest.param(down(("Percent", 150, 60)), 10, 0, (), (), 0, "", id="percent-over-100-truncates-toward-zero"),
    # Kubernetes's default behavior (behavior given, fields absent)
    pytest.param({}, 10, 50, (), (), 20, Reason.SCALE_UP_LIMITED, id="default-up-100-percent-per-15s"),
    pytest.param({}, 2, 50, (), (), 6, Reason.SCALE_UP_LIMITED, id="default-up-4-pods-per-15s"),
    pytest.param({}, 10, 50, (), events((10, 5)), 10, Reason.SCALE_UP_LIMITED,
                 id="default-up-from-period-start-5-gives-10"),
    pytest.param({}, 10, 50, (), events((16, 5)), 20, Reason.SCALE_UP_LIMITED, id="default-up-period-is-15s"),
    pytest.param({}, 10, 1, (), (), 1, "", id="default-down-100-percent"),
    # no behavior at all: the older path
    pytest.param(None, 10, 50, (), (), 20, Reason.SCALE_UP_LIMITED, id="no-behavior-cap-2x"),
    pytest.param(None, 1, 50, (), (), 4, Reason.SCALE_UP_LIMITED, id="no-behavior-cap-4"),
    pytest.param(None, 3, 6, (), (), 6, "", id="no-behavior-under-cap"),
    pytest.param(None, 10, 50, (), events((1, 10)), 20, Reason.SCALE_UP_LIMITED, id="no-behavior-ignores-events"),
    pytest.param(None, 10, 5, recs((299, 9)), (), 9, Reason.SCALE_DOWN_STABILIZED, id="no-behavior-down-window-5m"),
    pytest.param(None, 10, 5, recs((300, 9)), (), 9, Reason.SCALE_DOWN_STABILIZED,
                 id="no-behavior-sample-at-cutoff-counts-before-is-strict"),
    pytest.param(None, 10, 5, recs((301, 9)), (), 5, "", id="no-behavior-down-window-expired"),
    pytest.param(None, 10, 15, recs((10, 11)), (), 15, "", id="no-behavior-no-up-window"),
    pytest.param(None, 8, 8, recs((60, 12)), (), 12, Reason.SCALE_DOWN_STABILIZED,
                 id="no-behavior-window-max-not-clamped-to-current-continues-capped-scale-up"),
]


@pytest.mark.parametrize(("behavior", "current", "desired", "history", "past", "expected", "reason"), CASES)
def test_behavior_rules(behavior, current, desired, history, past, expected, reason) -> None:
    spec = make_spec(behavior=behavior) if behavior is not None else make_spec()
    replicas, got_reason, message, _ = stage.apply(spec, current, desired, history, past, T)
    assert (replicas, got_reason) == (expected, reason), message


def test_defaults_filled_as_kubernetes_does() -> None:
    spec = make_spec(behavior={"scaleUp": {"stabilizationWindowSeconds": 30}, "scaleDown": {"selectPolicy": "Min"}})
    b = spec.behavior
    assert b.scale_up.stabilization_window_seconds == 30
    assert b.scale_up.policies == DEFAULT_SCALE_UP.policies and b.scale_up.select_policy == "Max"
    assert b.scale_down.stabilization_window_seconds == 300 and b.scale_down.select_policy == "Min"
    assert b.scale_down.policies == DEFAULT_SCALE_DOWN.policies


def test_recommendation_history_keeps_only_what_windows_see() -> None:
    spec = make_spec(behavior={"scaleUp": {"stabilizationWindowSeconds": 60}})  # longest window: down 300
    kept = stage.record_recommendation(spec, recs((400, 1), (299, 2), (10, 3)), 4, T, cap=1024)
    assert [r.replicas for r in kept] == [2, 3, 4]
    assert [r.replicas for r in stage.record_recommendation(spec, kept, 5, T, cap=2)] == [4, 5]


@pytest.mark.parametrize(
    ("stored", "previous", "new", "expected"),
    [
        # Up policies' longest period 120 s: the up event 200 s old is outdated, its slot is reused.
        pytest.param([(200, 1), (100, 2)], 5, 7, [(0, 2), (100, 2)], id="reuses-the-outdated-up-slot"),
        # Two outdated up events: upstream overwrites the last outdated one in slot order.
        pytest.param([(300, 1), (200, 3)], 5, 7, [(300, 1), (0, 2)], id="reuses-the-last-outdated-slot"),
        # No outdated event of this direction: appended; the old down event is not this direction's.
        pytest.param([(500, -2), (30, 1)], 5, 6, [(500, -2), (30, 1), (0, 1)], id="appends-when-none-outdated"),
        # A scale-down looks at the down policies' period (default: 100 % per 15 s).
        pytest.param([(500, 3), (20, -1)], 5, 4, [(500, 3), (0, -1)], id="down-reuses-its-own-direction"),
    ],
)
def test_scale_events_reuse_outdated_slots_as_upstream(stored, previous, new, expected) -> None:
    """storeScaleEvent + markScaleEventsOutdated: outdated means older than the longest policy period of
    the event's own direction; the new event takes the last outdated slot, else it is appended."""
    spec = make_spec(behavior=up(("Pods", 4, 60), ("Pods", 1, 120)))  # up: longest 120 s
    kept = stage.record_scale_event(spec, events(*stored), previous, new, T, cap=256)
    assert [(T - e.at, e.change) for e in kept] == expected
    assert stage.record_scale_event(spec, kept, 5, 5, T, cap=256) == kept  # no change, no event


def test_an_overwritten_scale_up_no_longer_limits_a_long_scale_down_policy() -> None:
    """The issue's case: scale-ups 60 s apart with the default scale-up policies (15 s periods) and a
    600 s scale-down policy. Upstream's second scale-up overwrites the first, so the scale-down limit
    counts one of them; keeping both would start the period lower and allow a deeper scale-down."""
    spec = make_spec(behavior={"scaleDown": {"stabilizationWindowSeconds": 0,
                                             "policies": [{"type": "Percent", "value": 50, "periodSeconds": 600}]}})
    history = stage.record_scale_event(spec, (), 4, 8, T - 120, cap=256)
    history = stage.record_scale_event(spec, history, 8, 16, T - 60, cap=256)
    assert [e.change for e in history] == [8], "the first scale-up's slot was reused"
    # current 16, one +8 counted in the last 600 s: the period started at 8, 50 % of it is 4.
    assert stage.scale_down_limit(16, history, spec.behavior.down, T) == 4


def test_no_behavior_stores_no_scale_events() -> None:
    assert stage.record_scale_event(make_spec(), (), 4, 8, T, cap=256) == ()
