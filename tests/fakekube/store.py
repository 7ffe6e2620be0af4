"""The fake API server's state: typed resource kinds, objects, a global resourceVersion and a watch log.

Semantics copied from the real kube-apiserver where the controller depends on them:
- one global, increasing resourceVersion; every write bumps it and stamps the object;
- metadata.generation starts at 1 and is bumped only when something outside metadata and status
  changes (for kinds with a status subresource, writes to the main resource cannot change status
  and writes to /status change nothing else);
- an update or patch whose body carries metadata.resourceVersion different from the stored one is a
  409 Conflict (optimistic concurrency);
- a watch resumes after a resourceVersion; one older than the retained log answers 410 Gone;
- a custom resource written with `admit=True` (every write over HTTP) is defaulted and validated
  against its CRD's schema and CEL rules first (admission.py); a CRD whose rules do not compile is
  refused. The direct calls (`admit=False`, the default) are defaulted but not validated: what the
  API server reads back from etcd for an object written before its CRD had those rules, which the
  controller must still handle.
"""

from __future__ import annotations

import copy
import itertools
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from forecaster.contract import Clock, system_clock

from .admission import VersionSchema, compile_crd
from .errors import ApiError

Key = tuple[str, str, str, str]  # group, plural, namespace ("" when cluster-scoped), name


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status_subresource: bool = False
    scale_subresource: bool = False  # apps/v1 style: spec.replicas, status.replicas, spec.selector
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "update", "watch")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, status_subresource=True),
    ResourceType("", "v1", "pods", "Pod", status_subresource=True),
    ResourceType("", "v1", "events", "Event"),
    ResourceType("apps", "v1", "deployments", "Deployment", status_subresource=True, scale_subresource=True),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", status_subresource=True, scale_subresource=True),
    ResourceType("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
                 status_subresource=True, short_names=("hpa",)),
    ResourceType("keda.sh", "v1alpha1", "scaledobjects", "ScaledObject", status_subresource=True),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
    ResourceType("events.k8s.io", "v1", "events", "Event"),
    ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
                 namespaced=False, status_subresource=True),
)


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _ts(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class WatchEvent:
    rv: int
    type: str
    key: Key
    obj: dict[str, Any]


@dataclass
class _Rollout:
    ready_at: datetime
    replicas: int


class Store:
    """Thread-safe object store. Every method takes the lock; watchers wait on `changed`."""

    def __init__(self, clock: Clock = system_clock, *, ready_delay_seconds: float = 0.0,
                 watch_log_size: int = 20_000, simulate_rollouts: bool = True):
        """simulate_rollouts: readyReplicas follows spec.replicas (after ready_delay_seconds). False
        where something else plays the Deployment controller and kubelet (tests/e2e's pod runner
        writes the status of real processes), so the store never invents readiness."""
        self.clock = clock
        self.ready_delay_seconds = ready_delay_seconds
        self.simulate_rollouts = simulate_rollouts
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.types: dict[tuple[str, str, str], ResourceType] = {}
        self.objects: dict[Key, dict[str, Any]] = {}
        self.log: deque[WatchEvent] = deque(maxlen=watch_log_size)
        self._rv = itertools.count(1)
        self.rv = 0
        self._rollouts: dict[Key, _Rollout] = {}
        self.schemas: dict[tuple[str, str, str], VersionSchema] = {}  # (group, version, plural) of CRDs
        for rtype in BUILTIN_TYPES:
            self.register(rtype)

    # ---- kinds -------------------------------------------------------------------------------
    def register(self, rtype: ResourceType) -> None:
        with self.lock:
            self.types[(rtype.group, rtype.version, rtype.plural)] = rtype

    def register_crd(self, crd: dict[str, Any]) -> None:
        """Serve the kinds a CustomResourceDefinition declares, as the real server does once it is
        Established, with its schemas and CEL rules (ApiError 422, nothing served, if they do not compile)."""
        schemas = compile_crd(crd)
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        for version in spec.get("versions", []):
            if not version.get("served", True):
                continue
            if version["name"] in schemas:
                self.schemas[(spec["group"], version["name"], names["plural"])] = schemas[version["name"]]
            subresources = version.get("subresources") or {}
            self.register(ResourceType(
                spec["group"], version["name"], names["plural"], names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                status_subresource="status" in subresources,
                short_names=tuple(names.get("shortNames", ())),
            ))

    def find_type(self, group: str, version: str, plural: str) -> ResourceType:
        rtype = self.types.get((group, version, plural))
        if rtype is None:
            where = f"{group}/{version}" if group else version
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({where} {plural})")
        return rtype

    # ---- helpers ---------------------------------------------------------------------------
    def _next_rv(self) -> str:
        self.rv = next(self._rv)
        return str(self.rv)

    def _emit(self, kind: str, key: Key, obj: dict[str, Any]) -> None:
        self.log.append(WatchEvent(self.rv, kind, key, copy.deepcopy(obj)))
        self.changed.notify_all()

    def _key(self, rtype: ResourceType, namespace: str | None, name: str) -> Key:
        return (rtype.group, rtype.plural, (namespace or "") if rtype.namespaced else "", name)

    def _get(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.objects.get(self._key(rtype, namespace, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{rtype.plural}.{rtype.group or "core"} "{name}" not found')
        return obj

    # ---- verbs -----------------------------------------------------------------------------
    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        with self.lock:
            self.settle()
            return copy.deepcopy(self._get(rtype, namespace, name))

    def list(self, rtype: ResourceType, namespace: str | None, *, label_selector: str = "",
             field_selector: str = "") -> dict[str, Any]:
        with self.lock:
            self.settle()
            items = [copy.deepcopy(obj) for key, obj in self.objects.items()
                     if key[:2] == (rtype.group, rtype.plural)
                     and (not namespace or key[2] == namespace)
                     and matches(obj, label_selector, field_selector)]
            items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
            return {"kind": f"{rtype.kind}List", "apiVersion": rtype.api_version,
                    "metadata": {"resourceVersion": str(self.rv)}, "items": items}

    def _admit(self, rtype: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        schema = self.schemas.get((rtype.group, rtype.version, rtype.plural))
        return obj if schema is None else schema.admit(obj, old)

    def _as_read(self, rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """An object as the API server reads it from etcd: with its schema's defaults."""
        schema = self.schemas.get((rtype.group, rtype.version, rtype.plural))
        return obj if schema is None else schema.defaulted(obj)

    def create(self, rtype: ResourceType, namespace: str | None, body: dict[str, Any], *,
               admit: bool = False) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        with self.lock:
            obj = copy.deepcopy(body)
            meta = obj.setdefault("metadata", {})
            if not meta.get("name"):
                if meta.get("generateName"):
                    meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
                else:
                    raise ApiError(422, "Invalid", f"{rtype.kind}: metadata.name: Required value")
            if rtype.namespaced:
                body_ns = meta.get("namespace")
                if body_ns and namespace and body_ns != namespace:
                    raise ApiError(400, "BadRequest", f"the namespace of the object ({body_ns}) does not "
                                   f"match the namespace on the request ({namespace})")
                meta["namespace"] = namespace or body_ns or "default"
            else:
                meta.pop("namespace", None)
            key = self._key(rtype, meta.get("namespace"), meta["name"])
            if key in self.objects:
                raise ApiError(409, "AlreadyExists", f'{rtype.plural} "{meta["name"]}" already exists')
            obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
            meta.update(uid=str(uuid.uuid4()), resourceVersion=self._next_rv(), generation=1,
                        creationTimestamp=_ts(self.clock()))
            if rtype.scale_subresource:
                replicas = int(obj.setdefault("spec", {}).setdefault("replicas", 1))
                ready = replicas if self.simulate_rollouts else 0
                obj["status"] = {**obj.get("status", {}), "replicas": replicas, "readyReplicas": ready,
                                 "availableReplicas": ready, "observedGeneration": 1}
            obj = self._admit(rtype, obj, None) if admit else self._as_read(rtype, obj)
            if rtype.group == "apiextensions.k8s.io":
                self.register_crd(obj)  # before storing: a CRD whose rules do not compile is refused
            self.objects[key] = obj
            self._emit("ADDED", key, obj)
            return copy.deepcopy(obj)

    def replace(self, rtype: ResourceType, namespace: str | None, name: str, new: dict[str, Any], *,
                subresource: str | None = None, admit: bool = False) -> dict[str, Any]:
        """PUT semantics (and the final step of every patch): conflict check, subresource rules, generation."""
        if not isinstance(new, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        with self.lock:
            self.settle()
            old = self._get(rtype, namespace, name)
            meta_new = new.get("metadata") or {}
            sent_rv = meta_new.get("resourceVersion")
            if sent_rv not in (None, "") and str(sent_rv) != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rtype.plural} "{name}": '
                               "the object has been modified; please apply your changes to the latest "
                               "version and try again")
            if meta_new.get("name", name) != name:
                raise ApiError(400, "BadRequest", f"the name of the object ({meta_new.get('name')}) does "
                               f"not match the name on the URL ({name})")
            if subresource == "status":
                obj = copy.deepcopy(old)
                if "status" in new:
                    obj["status"] = copy.deepcopy(new["status"])
                else:
                    obj.pop("status", None)
            else:
                obj = copy.deepcopy(new)
                obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
                meta = obj.setdefault("metadata", {})
                # Immutable and server-owned metadata stays as stored.
                for field_name in ("uid", "creationTimestamp", "generation", "namespace", "name"):
                    if field_name in old["metadata"]:
                        meta[field_name] = old["metadata"][field_name]
                if rtype.status_subresource:
                    if "status" in old:
                        obj["status"] = copy.deepcopy(old["status"])
                    else:
                        obj.pop("status", None)
            obj = self._admit(rtype, obj, old) if admit else self._as_read(rtype, obj)
            if subresource != "status" and _spec_part(obj) != _spec_part(old):
                obj["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
            if rtype.group == "apiextensions.k8s.io":
                self.register_crd(obj)
            obj["metadata"]["resourceVersion"] = self._next_rv()
            key = self._key(rtype, namespace, name)
            if rtype.scale_subresource and self.simulate_rollouts:
                self._track_rollout(key, old, obj)
            self.objects[key] = obj
            self._emit("MODIFIED", key, obj)
            return copy.deepcopy(obj)

    def delete(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        with self.lock:
            obj = self._get(rtype, namespace, name)
            key = self._key(rtype, namespace, name)
            del self.objects[key]
            self._rollouts.pop(key, None)
            obj["metadata"]["resourceVersion"] = self._next_rv()
            self._emit("DELETED", key, obj)
            return copy.deepcopy(obj)

    # ---- workload simulation: readyReplicas follows spec.replicas after a delay --------------
    def _track_rollout(self, key: Key, old: dict[str, Any], new: dict[str, Any]) -> None:
        want = int(new.get("spec", {}).get("replicas", 1))
        status = new.setdefault("status", {})
        status["replicas"] = want
        status["observedGeneration"] = new["metadata"].get("generation", 1)
        ready = int(status.get("readyReplicas", 0))
        if want <= ready or self.ready_delay_seconds <= 0:
            # Scale-in (or no delay configured): the terminated pods stop being ready at once.
            status["readyReplicas"] = status["availableReplicas"] = want
            self._rollouts.pop(key, None)
        else:
            self._rollouts[key] = _Rollout(self.clock() + timedelta(seconds=self.ready_delay_seconds), want)

    def settle(self) -> None:
        """Finish the rollouts whose delay has passed on the injected clock (called before every read)."""
        with self.lock:
            if not self._rollouts:
                return
            now = self.clock()
            for key, rollout in list(self._rollouts.items()):
                if rollout.ready_at > now:
                    continue
                del self._rollouts[key]
                obj = self.objects.get(key)
                if obj is None:
                    continue
                status = obj.setdefault("status", {})
                ready = min(rollout.replicas, int(obj["spec"].get("replicas", 1)))
                status["readyReplicas"] = status["availableReplicas"] = ready
                obj["metadata"]["resourceVersion"] = self._next_rv()
                self._emit("MODIFIED", key, obj)

    # ---- watch -----------------------------------------------------------------------------
    def events_after(self, rtype: ResourceType, namespace: str | None, after: int,
                     name: str | None = None) -> list[WatchEvent]:
        """Events of this kind with rv > after. Raises 410 when `after` is older than the retained log."""
        with self.lock:
            if self.log and after < self.log[0].rv - 1:
                raise ApiError(410, "Expired", f"too old resource version: {after} ({self.log[0].rv - 1})")
            return [e for e in self.log
                    if e.rv > after and e.key[:2] == (rtype.group, rtype.plural)
                    and (not namespace or e.key[2] == namespace) and (name is None or e.key[3] == name)]


def matches(obj: dict[str, Any], label_selector: str, field_selector: str) -> bool:
    """Equality-based label and field selectors (`a=b,c!=d`, `metadata.name=x`), what the controller uses."""
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in label_selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    for term in filter(None, (t.strip() for t in field_selector.split(","))):
        k, _, v = term.replace("==", "=").partition("=")
        node: Any = obj
        for part in k.strip().split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if str(node) != v.strip():
            return False
    return True
