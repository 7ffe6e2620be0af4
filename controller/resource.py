"""The PredictiveAutoscaler object as the controller reads and writes it: metadata, spec, status.

The spec model is controller.policy.spec.PredictiveAutoscalerSpec (used unchanged); this module adds
the status model (camelCase, what the CRD's status schema is generated from) and the parsing of a raw
object from the API server into one `Autoscaler`, with a bad spec turned into an error naming the field
(`spec.maxReplicas: maxReplicas (2) must be >= minReplicas (3)`) instead of an exception.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema
from pydantic.alias_generators import to_camel

API_GROUP = "prescaler.dev"
API_VERSION = "prescaler.dev/v1alpha1"
KIND = "PredictiveAutoscaler"
PLURAL = "predictiveautoscalers"

# Condition types the controller writes: the policy's four and our own two (docs/architecture.md,
# "The controller loop").
CONDITION_TYPES = ("AbleToScale", "ScalingActive", "ForecastHealthy", "ScalingLimited",
                   "OwnedByAnotherAutoscaler", "SpecValid", "Ready")

# An RFC 3339 time as the status carries it (what `rfc3339()` writes). A string to the model, which
# reads it with `parse_rfc3339` (None when unreadable); `format: date-time` in the CRD, so the API
# server refuses a write that is not one and kubectl and CEL see a timestamp.
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class StatusCondition(_Model):
    """metav1.Condition's fields (type, status, reason, message, lastTransitionTime, observedGeneration)."""

    type: str = Field(min_length=1)
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(min_length=1, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = ""
    last_transition_time: Timestamp = Field(description="RFC 3339, when status last changed")
    observed_generation: int | None = None


class PendingScaleUp(_Model):
    """A scale-up whose new pods are not ready yet: what `leadTime: auto` is measuring."""

    since: Timestamp = Field(description="RFC 3339 time of the scale-up patch")
    replicas: int = Field(ge=0, description="the replica count the patch asked for")


class PredictiveAutoscalerStatus(_Model):
    observed_generation: int | None = None
    current_replicas: int | None = Field(None, ge=0)
    desired_replicas: int | None = Field(None, ge=0)
    last_scale_time: Timestamp | None = Field(None, description="RFC 3339 time of the last scale patch")
    last_sync_time: Timestamp | None = Field(None, description="RFC 3339 time of the last sync")
    last_reason: str | None = Field(None, description="the last decision's reason")
    lead_time_seconds: float | None = Field(None, ge=0, description="the lead time in use (learned when auto)")
    lead_time_samples: list[float] = Field(default_factory=list,
                                           description="recent measured cold starts in seconds (auto)")
    pending_scale_up: PendingScaleUp | None = None
    forecast_age_seconds: float | None = None
    policy_state: dict[str, Any] | None = Field(
        None, description="controller.policy.PolicyState: the recommendation history a restart must keep"
    )
    conditions: list[StatusCondition] = Field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_merge_patch(self) -> dict[str, Any]:
        """to_api() plus an explicit null for every top-level field now unset: in a JSON merge patch
        an absent key keeps the stored value, so a cleared field (pendingScaleUp) must be sent as null."""
        body: dict[str, Any] = dict.fromkeys(
            (f.alias or name for name, f in type(self).model_fields.items()), None)
        body.update(self.to_api())
        return body


@dataclass
class Autoscaler:
    """One PredictiveAutoscaler as read: `spec` is None when invalid, with `spec_error` naming the field."""

    namespace: str
    name: str
    uid: str
    generation: int
    resource_version: str
    raw_spec: dict[str, Any]
    spec: Any  # controller.policy.spec.PredictiveAutoscalerSpec | None
    spec_error: str | None
    status: PredictiveAutoscalerStatus
    status_error: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    creation_timestamp: str | None = None  # who came first when two target one workload

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def object_reference(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": KIND, "namespace": self.namespace, "name": self.name,
                "uid": self.uid, "resourceVersion": self.resource_version}


def format_validation_error(err: ValidationError, prefix: str = "spec") -> str:
    """`spec.forecast.quantile: Input should be less than 1` for each error, joined with '; '."""
    parts = []
    for item in err.errors(include_url=False):
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in item["loc"]).replace(".[", "[")
        where = f"{prefix}.{loc}" if loc else prefix
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


class SpecCache:
    """The last parsed spec of each autoscaler (by uid), reused while its raw spec is unchanged.

    Validating a spec costs far more than a sync's decision, so parsing the same spec anew at every
    sync would pay it every 15 s. An entry is reused only when the raw spec equals the one it was parsed from
    (dict equality, not metadata.generation, which not every writer bumps), so an edit is seen at
    the next sync. Bounded: emptied at `maxsize` entries, and refilled by the next syncs.
    """

    def __init__(self, maxsize: int = 4096) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self._maxsize = maxsize
        self._entries: dict[str, tuple[dict[str, Any], Any, str | None]] = {}

    def parse(self, uid: str, raw_spec: dict[str, Any]) -> tuple[Any, str | None]:
        """(spec, None) or (None, the error naming the field), as parse_autoscaler reports them."""
        entry = self._entries.get(uid) if uid else None
        if entry is not None and entry[0] == raw_spec:
            return entry[1], entry[2]
        spec, error = _parse_spec(raw_spec)
        if uid:
            if len(self._entries) >= self._maxsize:
                self._entries.clear()
            self._entries[uid] = (copy.deepcopy(raw_spec), spec, error)  # a copy: callers may mutate theirs
        return spec, error

    def __len__(self) -> int:
        return len(self._entries)


def _parse_spec(raw_spec: dict[str, Any]) -> tuple[Any, str | None]:
    from controller.policy.spec import PredictiveAutoscalerSpec  # the policy package, used unchanged

    try:
        return PredictiveAutoscalerSpec.model_validate(raw_spec), None
    except ValidationError as err:
        return None, format_validation_error(err)


def parse_autoscaler(obj: dict[str, Any], specs: SpecCache | None = None) -> Autoscaler:
    """A raw object from the API server -> Autoscaler. Never raises for a bad spec or status.

    With `specs`, an unchanged spec is not validated again (SpecCache).
    """
    meta = obj.get("metadata") or {}
    raw_spec = obj.get("spec")
    spec, spec_error = None, None
    if not isinstance(raw_spec, dict):
        spec_error = "spec: must be an object"
        raw_spec = {}
    elif specs is not None:
        spec, spec_error = specs.parse(str(meta.get("uid") or ""), raw_spec)
    else:
        spec, spec_error = _parse_spec(raw_spec)
    status_error = None
    try:
        status = PredictiveAutoscalerStatus.model_validate(obj.get("status") or {})
    except ValidationError as err:
        # A status we cannot read is rebuilt from scratch (it is ours to write); say so in the condition.
        status_error = format_validation_error(err, "status")
        status = PredictiveAutoscalerStatus()
    return Autoscaler(
        namespace=meta.get("namespace", "default"), name=meta.get("name", ""), uid=meta.get("uid", ""),
        generation=int(meta.get("generation") or 1), resource_version=str(meta.get("resourceVersion", "")),
        raw_spec=raw_spec, spec=spec, spec_error=spec_error, status=status, status_error=status_error,
        annotations=dict(meta.get("annotations") or {}),
        creation_timestamp=meta.get("creationTimestamp"),
    )


def rfc3339(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
