"""SyncContext: one sync's autoscaler, typed spec, time, the status being built and the conditions as read."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from controller.policy.spec import PredictiveAutoscalerSpec
from controller.reconcile import SyncContext
from controller.resource import parse_autoscaler

from .conftest import autoscaler

READ_AT = "2026-01-05T11:00:00Z"
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def _read(generation: int = 3, **spec_overrides) -> dict:
    obj = autoscaler(**spec_overrides)
    obj["metadata"].update(uid="u1", generation=generation)
    obj["status"] = {"conditions": [
        {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale", "message": "read",
         "lastTransitionTime": READ_AT, "observedGeneration": 2},
    ]}
    return obj


def test_begin_stamps_a_copy_and_types_the_spec() -> None:
    pa = parse_autoscaler(_read())
    ctx = SyncContext.begin(pa, NOW)
    assert isinstance(ctx.spec, PredictiveAutoscalerSpec) and ctx.spec is pa.spec
    assert (ctx.status.last_sync_time, ctx.status.observed_generation) == ("2026-01-05T12:00:00Z", 3)
    assert pa.status.last_sync_time is None, "the status as read is not changed"
    assert list(ctx.old_conditions) == ["AbleToScale"]


def test_a_spec_that_does_not_parse_is_none_in_the_context() -> None:
    ctx = SyncContext.begin(parse_autoscaler(_read(minReplicas=30)), NOW)
    assert ctx.spec is None and "minReplicas" in (ctx.pa.spec_error or "")


@pytest.mark.parametrize(
    "type_, value, transition",
    [
        # The HPA's setCondition: lastTransitionTime moves only when the status changes.
        pytest.param("AbleToScale", "True", READ_AT, id="same-status-keeps-its-transition-time"),
        pytest.param("AbleToScale", "False", "2026-01-05T12:00:00Z", id="changed-status-transitions-now"),
        pytest.param("ScalingActive", "True", "2026-01-05T12:00:00Z", id="new-condition-transitions-now"),
    ],
)
def test_set_condition(type_, value, transition) -> None:
    ctx = SyncContext.begin(parse_autoscaler(_read()), NOW)
    ctx.set_condition(type_, value, "Why", "x" * 40000)
    [condition] = [c for c in ctx.status.conditions if c.type == type_]
    assert (condition.status, condition.reason, condition.last_transition_time) == (value, "Why", transition)
    assert condition.observed_generation == 3
    assert len(condition.message) == 32768, "a metav1.Condition message is at most 32768 characters"
    assert [c.type for c in ctx.status.conditions].count(type_) == 1, "replaced, not appended"
    assert len(ctx.old_conditions["AbleToScale"].message) == 4, "the conditions as read are not changed"
