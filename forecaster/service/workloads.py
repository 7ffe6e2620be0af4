"""Where the service's set of workloads comes from: a `WorkloadSource`, listed again every `resync`.

Two sources exist: `StaticWorkloads`, the config's `workloads:` list (listed once), and the
PredictiveAutoscalers in the cluster (prescaler.discovery, wired by the composition root, since this
package never imports the controller). Both build their listing with `combine`, which lays the
config's overrides over each discovered workload and validates the result as WorkloadSettings; a
workload that does not validate is skipped with a reason naming where the bad field came from (the
object and its field, or the config's override), and never takes the others down with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from pydantic import ValidationError

from forecaster.errors import ForecasterError
from forecaster.service.config import ServiceConfig, WorkloadOverride, WorkloadSettings


class WorkloadSourceError(ForecasterError):
    """The source could not be read (API server down, no permission); the current set keeps serving."""


@dataclass(frozen=True)
class WorkloadListing:
    """One reading of a source: the workloads by name, where each came from, and what was skipped."""

    workloads: Mapping[str, WorkloadSettings]
    origins: Mapping[str, str] = field(default_factory=dict)  # name -> "PredictiveAutoscaler llm/m-small"
    skipped: Mapping[str, str] = field(default_factory=dict)  # origin -> why it is not served


class WorkloadSource(Protocol):
    """What the scheduler needs from a source of workloads."""

    @property
    def description(self) -> str:
        """What is listed, for logs and /v1/workload-source: "the config", "PredictiveAutoscalers in llm"."""
        ...

    @property
    def resync(self) -> timedelta | None:
        """How often to list again; None: once, at start-up (the set never changes)."""
        ...

    def load(self) -> WorkloadListing:
        """The current set. Blocking (the scheduler calls it in a thread); WorkloadSourceError when
        the source cannot be read at all."""
        ...


@dataclass(frozen=True)
class WorkloadBase:
    """A discovered workload before the config's override: WorkloadSettings fields as plain data,
    and for each field the place in its object it came from, so an error can point there."""

    origin: str
    fields: Mapping[str, Any]
    paths: Mapping[str, str] = field(default_factory=dict)  # "capacity.max_replicas" -> "spec.maxReplicas"


def combine(bases: Mapping[str, WorkloadBase], overrides: Sequence[WorkloadOverride],
            skipped: Mapping[str, str] | None = None) -> WorkloadListing:
    """Each base with the override of its name over it, and each override no base names on its own.

    `skipped` carries the reasons the caller already has (objects it could not turn into a base).
    """
    by_name = {o.name: o for o in overrides}
    workloads: dict[str, WorkloadSettings] = {}
    origins: dict[str, str] = {}
    reasons = dict(skipped or {})
    for name in sorted(set(bases) | set(by_name)):
        base, override = bases.get(name), by_name.get(name)
        origin = base.origin if base is not None else f"config workloads[{name}]"
        data = dict(base.fields) if base is not None else {}
        merged = override.merged(data) if override is not None else data
        try:
            workloads[name] = WorkloadSettings.model_validate(merged)
        except ValidationError as error:
            reasons[origin] = describe_error(error, name, base, override)
            continue
        origins[name] = origin if override is None or base is None else f"{origin} with config workloads[{name}]"
    return WorkloadListing(workloads, origins, reasons)


def describe_error(error: ValidationError, name: str, base: WorkloadBase | None,
                   override: WorkloadOverride | None) -> str:
    """`spec.forecast.model: model 'arima' is neither ...; config workloads[m-small].quantile: ...`.

    A field the override sets is the config's; any other is the base's, named by its path there.
    Cross-field errors (no field) are given as the service words them, naming its fields.
    """
    set_by_override = override.fields() if override is not None else {}
    items = error.errors(include_url=False)
    parts = []
    if base is None and any(item["type"] == "missing" for item in items):
        # With discovery, an entry is an override: alone it serves only when it is complete.
        parts.append(f"no PredictiveAutoscaler names workload {name!r}, and config workloads[{name}] "
                     "alone is not a complete workload")
    for item in items:
        loc = [str(p) for p in item["loc"]]
        message = item["msg"].removeprefix("Value error, ")
        if not loc:
            # A cross-field rule (max_horizon >= lead_time + interval) names its fields: those the
            # config's entry sets are where to look, so name them as the config's.
            named = [k for k in set_by_override if k != "name" and re.search(rf"(?<!\w){k}(?!\w)", message)]
            where = ", ".join(f"config workloads[{name}].{k}" for k in named)
            parts.append(f"{where}: {message}" if where else message)
            continue
        dotted = ".".join(loc)
        if _sets(set_by_override, loc):
            where = f"config workloads[{name}].{dotted}"
        elif base is not None:
            where = _base_path(base, loc)
        else:
            where = f"config workloads[{name}].{dotted}"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _sets(fields: Mapping[str, Any], loc: list[str]) -> bool:
    node: Any = fields
    for part in loc:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _base_path(base: WorkloadBase, loc: list[str]) -> str:
    # The longest prefix the base maps (capacity.per_replica.requests -> spec.capacity.perReplica + .requests).
    for cut in range(len(loc), 0, -1):
        mapped = base.paths.get(".".join(loc[:cut]))
        if mapped is not None:
            rest = loc[cut:]
            return ".".join([mapped, *rest])
    return ".".join(loc)


class StaticWorkloads:
    """The config's `workloads:` list: every entry complete (ServiceConfig checked it at load)."""

    def __init__(self, config: ServiceConfig):
        self._overrides = tuple(config.workloads)

    @property
    def description(self) -> str:
        return "the config's workloads"

    @property
    def resync(self) -> timedelta | None:
        return None

    def load(self) -> WorkloadListing:
        return combine({}, self._overrides)
