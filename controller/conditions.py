"""The summary `Ready` condition, from the conditions a sync wrote (pure: no I/O, no clock).

Ready says in one column what `kubectl get pas` users want to know: is the resource being scaled as
its spec asks? It is True when every condition below holds as shown, in this order, and otherwise
takes the status and reason of the first that does not (so `Ready=False InvalidSpec`, `Ready=False
FailedGetScale`), as a Knative ConditionSet's happy condition takes its first failing dependent's:

- SpecValid=True: the spec parses (the CRD's CEL rules cannot check everything the model does);
- OwnedByAnotherAutoscaler=False: no HPA or ScaledObject targets the same workload;
- AbleToScale=True: the target's /scale can be read and written;
- ScalingActive=True: the metrics were read and scaling is on (mode Off and a target at zero
  replicas are ScalingActive=False, hence not Ready).

ForecastHealthy and ScalingLimited do not count: with the forecast unhealthy the resource still
scales, reactively, as a plain HPA would (its own column says so), and a bound that binds is the
spec obeyed. A condition absent from the list (a sync that stopped before writing it) makes Ready
Unknown, as does one whose status is Unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NamedTuple, Protocol

ConditionStatus = Literal["True", "False", "Unknown"]

# (type, the status it has when the resource is being scaled as asked), in the order they are read.
READY_REQUIRES: tuple[tuple[str, ConditionStatus], ...] = (
    ("SpecValid", "True"),
    ("OwnedByAnotherAutoscaler", "False"),
    ("AbleToScale", "True"),
    ("ScalingActive", "True"),
)


class ConditionLike(Protocol):
    """What Ready reads of a condition: resource.StatusCondition and policy.types.Condition both fit."""

    @property
    def type(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def reason(self) -> str: ...

    @property
    def message(self) -> str: ...


class Ready(NamedTuple):
    status: ConditionStatus
    reason: str
    message: str


def ready_condition(conditions: Iterable[ConditionLike]) -> Ready:
    """The Ready condition summarising `conditions` (the status being written, Ready itself ignored)."""
    by_type = {c.type: c for c in conditions if c.type != "Ready"}
    for type_, wanted in READY_REQUIRES:
        condition = by_type.get(type_)
        if condition is None:
            return Ready("Unknown", f"{type_}Unknown", f"no {type_} condition yet")
        if condition.status == wanted:
            continue
        status: ConditionStatus = "Unknown" if condition.status == "Unknown" else "False"
        return Ready(status, condition.reason, f"{type_} is {condition.status}: {condition.message}")
    return Ready("True", "Scaling", "the spec is valid, the target can be scaled and scaling is active")
