"""Stage 4, behavior: stabilization windows and rate limits, as the HPA applies them.

Copied from kubernetes/pkg/controller/podautoscaler/horizontal.go:
- with `behavior` set (defaults filled by spec.py as defaults.go does):
  stabilizeRecommendationWithBehaviors (up: the minimum of the recommendations newer than the
  scale-up window, down: the maximum of those newer than the scale-down window, the current count
  clamped between them) then convertDesiredReplicasWithBehaviorRate with
  calculateScaleUpLimitWithScalingRules / calculateScaleDownLimitWithBehaviors (Pods and Percent
  policies over periodSeconds, counted from the replicas at the start of the period, selectPolicy
  Max / Min / Disabled);
- with no `behavior`: normalizeDesiredReplicas, the older path: stabilizeRecommendation (maximum of
  the last 5 minutes of recommendations, the kube-controller-manager default
  --horizontal-pod-autoscaler-downscale-stabilization) and the scale-up cap max(2 x current, 4) of
  calculateScaleUpLimit.
minReplicas / maxReplicas are applied after this stage (decide.bounds), which gives the same result
as the HPA's combined function because current is already within the bounds here.
"""

from __future__ import annotations

import math

from controller.policy.spec import DEFAULT_DOWNSCALE_STABILIZATION_SECONDS, HPAScalingRules, PredictiveAutoscalerSpec
from controller.policy.types import Reason, Recommendation, ScaleEvent

# horizontal.go: scaleUpLimitFactor = 2.0, scaleUpLimitMinimum = 4.0
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0


def calculate_scale_up_limit(current: int) -> int:
    """horizontal.go calculateScaleUpLimit: max(2 x current, 4), the cap when no behavior is set."""
    return int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))


def _changes_in_period(period_seconds: int, events: tuple[ScaleEvent, ...], now: float) -> tuple[int, int]:
    """getReplicasChangePerPeriod for both directions: (added, deleted) by events after now - period."""
    cutoff = now - period_seconds
    added = deleted = 0
    for e in events:
        if e.at > cutoff:  # time.After(cutoff): strictly newer
            if e.change > 0:
                added += e.change
            else:
                deleted -= e.change
    return added, deleted


def scale_up_limit(current: int, events: tuple[ScaleEvent, ...], rules: HPAScalingRules, now: float) -> int:
    """calculateScaleUpLimitWithScalingRules: the most replicas the policies allow now."""
    if rules.select_policy == "Disabled":
        return current
    pick = min if rules.select_policy == "Min" else max
    result: int | None = None
    for policy in rules.policies or ():
        added, deleted = _changes_in_period(policy.period_seconds, events, now)
        period_start = current - added + deleted
        if policy.type == "Pods":
            proposed = period_start + policy.value
        else:
            # Rounded up, "because the proposed change might not increase the replica count causing
            # the target to never scale up" (horizontal.go); float expression kept as Go writes it.
            proposed = int(math.ceil(float(period_start) * (1 + float(policy.value) / 100)))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def scale_down_limit(current: int, events: tuple[ScaleEvent, ...], rules: HPAScalingRules, now: float) -> int:
    """calculateScaleDownLimitWithBehaviors: the fewest replicas the policies allow now."""
    if rules.select_policy == "Disabled":
        return current
    # For scaling down the smallest change ("Min") is the largest replica count.
    pick = max if rules.select_policy == "Min" else min
    result: int | None = None
    for policy in rules.policies or ():
        added, deleted = _changes_in_period(policy.period_seconds, events, now)
        period_start = current - added + deleted
        if policy.type == "Pods":
            proposed = period_start - policy.value
        else:
            proposed = int(float(period_start) * (1 - float(policy.value) / 100))  # Go int32(): truncates
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def _longest_window(spec: PredictiveAutoscalerSpec) -> float:
    b = spec.behavior
    if b is None:
        return float(DEFAULT_DOWNSCALE_STABILIZATION_SECONDS)
    return float(max(b.up.window_seconds, b.down.window_seconds))


def longest_period(spec: PredictiveAutoscalerSpec) -> float:
    """The longest policy period: scale events older than this no longer matter."""
    b = spec.behavior
    if b is None:
        return 0.0
    periods = [p.period_seconds for r in (b.up, b.down) for p in (r.policies or ())]
    return float(max(periods, default=0))


def record_recommendation(spec: PredictiveAutoscalerSpec, recs: tuple[Recommendation, ...], replicas: int,
                          now: float, cap: int) -> tuple[Recommendation, ...]:
    """The history with this sync's (pre-behavior) recommendation appended and what no window needs dropped.

    The HPA reuses the slot of one sample older than every window; keeping exactly the samples the
    windows can still see (plus a size cap for the CRD status) gives the same windows.
    """
    cutoff = now - _longest_window(spec)
    # Recommendations are appended in time order, so the expired ones are a prefix (usually 0 or 1).
    first = 0
    while first < len(recs) and recs[first].at < cutoff:
        first += 1
    kept = recs[first:] + (Recommendation(now, replicas),)
    if len(kept) > cap:
        kept = kept[-cap:]
    return kept


def apply(spec: PredictiveAutoscalerSpec, current: int, desired: int, recs: tuple[Recommendation, ...],
          events: tuple[ScaleEvent, ...], now: float) -> tuple[int, str, str, int]:
    """Stabilize then rate-limit `desired`. Returns (replicas, reason, message, stabilized).

    `recs` is the history *before* this sync (the current recommendation is `desired`). reason is
    empty when this stage changed nothing.
    """
    b = spec.behavior
    if b is None:
        # normalizeDesiredReplicas + stabilizeRecommendation: a recommendation counts unless it is
        # Before(cutoff), so one exactly at the cutoff still counts.
        cutoff = now - DEFAULT_DOWNSCALE_STABILIZATION_SECONDS
        stabilized = desired
        for r in recs:
            if r.at >= cutoff and r.replicas > stabilized:
                stabilized = r.replicas
        reason = message = ""
        if stabilized != desired:
            reason = Reason.SCALE_DOWN_STABILIZED
            message = (f"recent recommendations were higher than current one, applying the highest recent "
                       f"recommendation ({stabilized}, wanted {desired}; window "
                       f"{DEFAULT_DOWNSCALE_STABILIZATION_SECONDS} s)")
        limit = calculate_scale_up_limit(current)
        if stabilized > limit:
            return limit, Reason.SCALE_UP_LIMITED, (
                f"the desired replica count is increasing faster than the maximum scale rate: {stabilized} "
                f"capped at max(2 x {current}, 4) = {limit}"), stabilized
        return stabilized, reason, message, stabilized

    up_rules, down_rules = b.up, b.down
    # stabilizeRecommendationWithBehaviors: samples strictly After(cutoff) count.
    up_cutoff = now - up_rules.window_seconds
    down_cutoff = now - down_rules.window_seconds
    up_rec = down_rec = desired
    if up_cutoff >= down_cutoff:
        # The usual case (the scale-up window is the shorter one): a sample newer than the scale-up
        # cutoff is newer than the scale-down cutoff too, so one test selects the samples to look at.
        for r in recs:
            at = r.at
            if at > down_cutoff:
                n = r.replicas
                if n > down_rec:
                    down_rec = n
                if at > up_cutoff and n < up_rec:
                    up_rec = n
    else:
        for r in recs:
            if r.at > up_cutoff and r.replicas < up_rec:
                up_rec = r.replicas
            if r.at > down_cutoff and r.replicas > down_rec:
                down_rec = r.replicas
    stabilized = current
    if stabilized < up_rec:
        stabilized = up_rec
    if stabilized > down_rec:
        stabilized = down_rec
    reason = message = ""
    if stabilized != desired:
        if desired >= current:
            reason = Reason.SCALE_UP_STABILIZED
            message = (f"recent recommendations were lower than current one, applying the lowest recent "
                       f"recommendation ({stabilized}, wanted {desired}; window "
                       f"{up_rules.window_seconds} s)")
        else:
            reason = Reason.SCALE_DOWN_STABILIZED
            message = (f"recent recommendations were higher than current one, applying the highest recent "
                       f"recommendation ({stabilized}, wanted {desired}; window "
                       f"{down_rules.window_seconds} s)")

    # convertDesiredReplicasWithBehaviorRate (without min/max, applied by the bounds stage).
    if stabilized > current:
        limit = scale_up_limit(current, events, up_rules, now)
        if limit < current:
            limit = current  # no further scale-up until the old events leave the period
        if stabilized > limit:
            if up_rules.select_policy == "Disabled":
                return limit, Reason.SCALING_DISABLED, (
                    f"scaleUp.selectPolicy is Disabled: staying at {current} (wanted {stabilized})"), stabilized
            return limit, Reason.SCALE_UP_LIMITED, (
                f"the desired replica count is increasing faster than the maximum scale rate: {stabilized} "
                f"limited to {limit} by scaleUp policies"), stabilized
    elif stabilized < current:
        limit = scale_down_limit(current, events, down_rules, now)
        if limit > current:
            limit = current
        if stabilized < limit:
            if down_rules.select_policy == "Disabled":
                return limit, Reason.SCALING_DISABLED, (
                    f"scaleDown.selectPolicy is Disabled: staying at {current} (wanted {stabilized})"), stabilized
            return limit, Reason.SCALE_DOWN_LIMITED, (
                f"the desired replica count is decreasing faster than the maximum scale rate: {stabilized} "
                f"limited to {limit} by scaleDown policies"), stabilized
    return stabilized, reason, message, stabilized


def record_scale_event(spec: PredictiveAutoscalerSpec, events: tuple[ScaleEvent, ...], previous: int, new: int,
                       now: float, cap: int) -> tuple[ScaleEvent, ...]:
    """storeScaleEvent: the new change reuses the slot of an outdated event of its direction, or is appended.

    horizontal.go keeps one list per direction and never deletes: an event older than the longest
    policy period *of its own direction* is marked outdated, and the next event of that direction
    overwrites the last outdated slot. The overwritten event is gone even where the other
    direction's longer period would still have counted it (a 600 s scale-down policy after two
    scale-ups 60 s apart sees one of them, not two), so dropping by age instead would limit
    differently. One tuple holds both lists: each direction's events keep their slot order.
    Without a behavior nothing is stored (upstream does not use the events then).
    """
    b = spec.behavior
    if b is None or new == previous:
        return events
    up = new > previous
    rules = b.up if up else b.down
    cutoff = now - max((p.period_seconds for p in rules.policies or ()), default=0)
    slot = -1
    for i, e in enumerate(events):
        if (e.change > 0) == up and e.at < cutoff:  # markScaleEventsOutdated: timestamp.Before(cutoff)
            slot = i
    event = ScaleEvent(now, new - previous)
    kept = events + (event,) if slot < 0 else events[:slot] + (event,) + events[slot + 1:]
    if len(kept) > cap:
        # The status must stay bounded: past the cap, drop what no period can count any more, then
        # the oldest (a divergence only with more than `cap` changes inside one policy period).
        horizon = now - longest_period(spec)
        kept = tuple(e for e in kept if e.at > horizon) or (event,)
        if len(kept) > cap:
            kept = tuple(sorted(kept, key=lambda e: e.at)[-cap:])
    return kept
