"""Stages 3 and 5 and the whole decision: merge, behavior, bounds, mode.

(docs/architecture.md, "The decision".)

    decision, state = decide(spec, reactive_inputs, predictive_inputs, state, now)

Pure: the only time is `now`, the only memory is `state`. The order follows horizontal.go
reconcileAutoscaler: a target scaled to 0 is left alone (ScalingDisabled); a current count outside
[minReplicas, maxReplicas] is brought inside without looking at metrics; otherwise the metric
recommendation (here: the merge of reactive and predictive) goes through behavior, then the bounds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from controller.policy import behavior as behavior_stage
from controller.policy import predictive as predictive_stage
from controller.policy import reactive as reactive_stage
from controller.policy.spec import PredictiveAutoscalerSpec
from controller.policy.types import (
    MAX_RECOMMENDATIONS,
    MAX_SCALE_EVENTS,
    Condition,
    Decision,
    PolicyInputError,
    PolicyState,
    PredictiveInputs,
    ReactiveInputs,
    Reason,
    Recommendation,
    StageResult,
)

_HOLD_REASONS = (Reason.WITHIN_TOLERANCE, Reason.METRICS_UNAVAILABLE, Reason.INVALID_METRICS_HOLD)


def merge(current: int, reactive: StageResult, predictive: StageResult) -> StageResult:
    """max(reactive, predictive); the forecast alone never scales in.

    - both present: the maximum. A scale-down needs both to want fewer than now, and goes to the
      larger of the two (the forecast holds what the load one lead time ahead needs);
    - reactive abstained (no valid metric): never scale down blind, so max(current, predictive);
    - predictive abstained: the reactive recommendation, a plain HPA.
    """
    r, p = reactive.replicas, predictive.replicas
    if p is None:
        if r is None:
            return StageResult(current, reactive.reason, reactive.message)
        return StageResult(r, reactive.reason, reactive.message)
    if r is None:
        if p > current:
            return StageResult(p, Reason.SCALE_UP_PREDICTIVE,
                               f"{predictive.message}; live metrics unavailable, scaling up on the forecast only")
        return StageResult(current, reactive.reason, f"{reactive.message}; the forecast alone never scales in")
    if p > r:
        if p > current:
            return StageResult(p, Reason.SCALE_UP_PREDICTIVE, f"{predictive.message} (metrics want {r})")
        return StageResult(p, Reason.PREDICTIVE_HOLDS,
                           f"metrics want {r}, the forecast one lead time ahead holds {p}: {predictive.message}")
    return StageResult(r, reactive.reason, f"{reactive.message} (forecast wants {p})")


@dataclass(frozen=True, slots=True)
class StagesOutcome:
    """What the stages concluded, as `_finish` turns it into the Decision and the next state: one
    value, as the HPA hands its normalization one NormalizationArg.

    current/desired: the target's replica count now and the decision's. reason/message: the
    headline. reactive, merged, after_behavior, bounded: each stage's result in order (predictive's
    is in `predictive`). limited: a rate limit or a bound changed the recommendation.
    recommendations: the stabilization history to keep. scaling_active: the ScalingActive
    condition's (status, reason, message); able: AbleToScale's (reason, message).
    """

    predictive: predictive_stage.PredictiveResult
    current: int
    desired: int
    reason: str
    message: str
    reactive: StageResult
    merged: StageResult
    after_behavior: StageResult
    bounded: StageResult
    limited: bool
    recommendations: tuple[Recommendation, ...]
    scaling_active: tuple[str, str, str]
    able: tuple[str, str]


# Conditions whose every field is fixed, built once (NamedTuples are immutable, so sharing is safe).
_READY_FOR_NEW_SCALE = ("ReadyForNewScale", "recommended size matches current size")
_ABLE_READY = Condition("AbleToScale", "True", _READY_FOR_NEW_SCALE[0], _READY_FOR_NEW_SCALE[1])
_WITHIN_RANGE_MESSAGE = "the desired count is within the acceptable range"
_NOT_LIMITED = Condition("ScalingLimited", "False", "DesiredWithinRange", _WITHIN_RANGE_MESSAGE)


def _conditions(*, scaling_active: tuple[str, str, str], able: tuple[str, str], limited: tuple[bool, str, str],
                forecast: tuple[bool, str, str]) -> tuple[Condition, ...]:
    return (
        Condition("AbleToScale", "True", able[0], able[1]),
        Condition("ScalingActive", scaling_active[0], scaling_active[1], scaling_active[2]),  # type: ignore[arg-type]
        Condition("ScalingLimited", "True" if limited[0] else "False", limited[1], limited[2]),
        Condition("ForecastHealthy", "True" if forecast[0] else "False", forecast[1], forecast[2]),
    )


def decide(
    spec: PredictiveAutoscalerSpec,
    reactive_inputs: ReactiveInputs,
    predictive_inputs: PredictiveInputs | None,
    state: PolicyState,
    now: datetime,
) -> tuple[Decision, PolicyState]:
    """One sync's scaling decision and the state to pass to the next call.

    spec: the PredictiveAutoscaler spec. reactive_inputs: what the HPA would see now.
    predictive_inputs: forecasts, observed rates and the lead time, or None when there are none.
    state: the previous call's returned state (PolicyState() the first time). now: tz-aware.

    In Auto mode act is True when desired != current and the returned state assumes the change is
    applied (records a scale event); see PolicyState.without_scale_event_at for a failed patch.
    Advisory computes and records recommendations but never acts; Off returns current, state unchanged.
    Raises PolicyInputError for malformed inputs (wrong counts, naive datetime), never for missing data.
    """
    if now.tzinfo is None:
        raise PolicyInputError("now must be timezone-aware (UTC)")
    reactive_stage.validate_inputs(spec, reactive_inputs)
    t = now.timestamp()
    current = reactive_inputs.current_replicas
    mode = spec.mode

    if mode == "Off":
        hold = StageResult(current, Reason.MODE_OFF, "mode is Off")
        msg = f"mode is Off: leaving {current} replicas alone"
        return Decision(
            desired_replicas=current, current_replicas=current, reason=Reason.MODE_OFF, message=msg, act=False,
            mode=mode, reactive=hold, predictive=StageResult(None, Reason.MODE_OFF, "mode is Off"), merged=hold,
            behavior=hold, bounded=hold, scaling_limited=False, forecast_healthy=False,
            forecast_reason=Reason.MODE_OFF, forecast_message="mode is Off",
            conditions=_conditions(scaling_active=("False", Reason.MODE_OFF, msg), able=("ReadyForNewScale", msg),
                                   limited=(False, "DesiredWithinRange", msg),
                                   forecast=(False, Reason.MODE_OFF, "mode is Off")),
        ), state

    if not state.recommendations:
        # horizontal.go recordInitialRecommendation: an autoscaler with no history yet starts it with
        # the current count, so its first sync cannot scale down past the stabilization window.
        state = dataclasses.replace(state, recommendations=(Recommendation(t, current),))
    pred = predictive_stage.recommend(spec, predictive_inputs, state.pending_forecasts, state.outcomes, t)
    lo, hi = spec.min_replicas, spec.max_replicas

    if current == 0:
        # horizontal.go: spec.replicas == 0 with minReplicas != 0 means autoscaling is disabled.
        hold = StageResult(0, Reason.SCALING_DISABLED, "the target is scaled to zero: autoscaling is disabled")
        return _finish(spec, state, t, StagesOutcome(
            pred, current, 0, Reason.SCALING_DISABLED, hold.message, reactive=hold, merged=hold, after_behavior=hold,
            bounded=hold, limited=False, recommendations=state.recommendations,
            scaling_active=("False", Reason.SCALING_DISABLED, hold.message), able=_READY_FOR_NEW_SCALE))
    if current > hi or current < lo:
        # horizontal.go: "Current number of replicas above Spec.MaxReplicas" / "below Spec.MinReplicas":
        # brought inside the bounds directly, no metrics, no behavior.
        desired = hi if current > hi else lo
        reason = Reason.BOUNDED_BY_MAX if current > hi else Reason.BOUNDED_BY_MIN
        which = f"maxReplicas ({hi})" if current > hi else f"minReplicas ({lo})"
        msg = f"current replicas {current} outside the bounds: set to {which}"
        stage = StageResult(desired, reason, msg)
        return _finish(spec, state, t, StagesOutcome(
            pred, current, desired, reason, msg, reactive=StageResult(None, reason, "not computed: " + msg),
            merged=stage, after_behavior=stage, bounded=stage, limited=True, recommendations=state.recommendations,
            scaling_active=("True", reason, msg), able=("ReadyForNewScale", msg)))

    tol = reactive_stage.tolerances_for(spec)
    reactive = reactive_stage.recommend(spec, reactive_inputs, tol)
    merged = merge(current, reactive, pred.stage)
    recommended = merged.replicas if merged.replicas is not None else current

    # computeReplicasForMetrics fails (-1) when no metric is valid, or when one is invalid and the valid
    # ones want fewer: horizontal.go then returns before normalizeDesiredReplicas, so nothing is
    # recorded and no window applies. Only prescaler's forecast may still scale up (our addition).
    metrics_failed = reactive.replicas is None or reactive.reason == Reason.INVALID_METRICS_HOLD
    if metrics_failed and merged.reason != Reason.SCALE_UP_PREDICTIVE:
        after, b_reason, b_message, stabilized = current, "", "", current
        recs = state.recommendations
    else:
        after, b_reason, b_message, stabilized = behavior_stage.apply(
            spec, current, recommended, state.recommendations, state.scale_events, t)
        recs = behavior_stage.record_recommendation(spec, state.recommendations, recommended, t,
                                                    MAX_RECOMMENDATIONS)
    if b_reason or after != merged.replicas:
        after_behavior = StageResult(after, b_reason or merged.reason, b_message or merged.message)
    else:
        after_behavior = merged  # behavior changed nothing: the same three values

    bounded_n = min(max(after, lo), hi)
    if bounded_n > after:
        bounded = StageResult(bounded_n, Reason.BOUNDED_BY_MIN,
                              f"the desired replica count {after} is less than minReplicas ({lo})")
    elif bounded_n < after:
        bounded = StageResult(bounded_n, Reason.BOUNDED_BY_MAX,
                              f"the desired replica count {after} is more than maxReplicas ({hi})")
    else:
        bounded = after_behavior
    rate_limited = b_reason in (Reason.SCALE_UP_LIMITED, Reason.SCALE_DOWN_LIMITED, Reason.SCALING_DISABLED)
    limited = bounded_n != after or rate_limited
    if limited and bounded_n == after:
        bounded = StageResult(bounded_n, b_reason, b_message)

    desired = bounded_n
    if bounded_n != after or b_reason:
        reason, message = bounded.reason, bounded.message
    elif desired > current:
        reason = Reason.SCALE_UP_PREDICTIVE if merged.reason == Reason.SCALE_UP_PREDICTIVE else Reason.SCALE_UP_REACTIVE
        message = merged.message
    elif desired < current:
        reason, message = Reason.SCALE_DOWN, merged.message
    elif merged.reason in _HOLD_REASONS or merged.reason == Reason.PREDICTIVE_HOLDS:
        reason, message = merged.reason, merged.message
    else:
        reason, message = Reason.NO_CHANGE, merged.message

    if metrics_failed:
        active = ("False", reactive_stage.failed_metric_reason(spec, reactive_inputs, tol), reactive.message)
    else:
        active = ("True", "ValidMetricFound", reactive.message)
    if stabilized != recommended:
        # horizontal.go's AbleToScale texts; the reason follows the recommendation's direction.
        if recommended >= current:
            able = (Reason.SCALE_UP_STABILIZED, "recent recommendations were lower than current one, applying the "
                    f"lowest recent recommendation ({stabilized}, wanted {recommended})")
        else:
            able = (Reason.SCALE_DOWN_STABILIZED, "recent recommendations were higher than current one, applying "
                    f"the highest recent recommendation ({stabilized}, wanted {recommended})")
    else:
        able = _READY_FOR_NEW_SCALE
    return _finish(spec, state, t, StagesOutcome(
        pred, current, desired, reason, message, reactive=reactive, merged=merged, after_behavior=after_behavior,
        bounded=bounded, limited=limited, recommendations=recs, scaling_active=active, able=able))


def _finish(spec: PredictiveAutoscalerSpec, state: PolicyState, t: float,
            out: StagesOutcome) -> tuple[Decision, PolicyState]:
    """The Decision and the next state, once the stages have run (every path but Off ends here)."""
    mode = spec.mode
    current, desired, able, active, bounded, pred = out.current, out.desired, out.able, out.scaling_active, \
        out.bounded, out.predictive
    act = mode == "Auto" and desired != current
    events = state.scale_events
    if act:
        events = behavior_stage.record_scale_event(spec, events, current, desired, t, MAX_SCALE_EVENTS)
    conditions = (
        _ABLE_READY if able is _READY_FOR_NEW_SCALE else Condition("AbleToScale", "True", able[0], able[1]),
        Condition("ScalingActive", active[0], active[1], active[2]),  # type: ignore[arg-type]
        Condition("ScalingLimited", "True", bounded.reason, bounded.message) if out.limited else _NOT_LIMITED,
        Condition("ForecastHealthy", "True" if pred.healthy else "False", pred.health_reason, pred.health_message),
    )
    # Positional, in Decision's field order: keywords cost twice as much on this 17-field tuple.
    decision = Decision(desired, current, out.reason, out.message, act, mode, out.reactive, pred.stage, out.merged,
                        out.after_behavior, bounded, out.limited, pred.healthy, pred.health_reason,
                        pred.health_message, pred.live_error, conditions)
    return decision, PolicyState(out.recommendations, events, pred.pending, pred.outcomes)
