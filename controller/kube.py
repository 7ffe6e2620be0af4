"""Adapters over the official kubernetes client: the only module that talks to the API server.

Every call goes through `KubeClient._call(verb, group, resource, ...)` whose first three arguments
are literals: tests/controller/test_rbac.py reads them from this file and checks that the ClusterRole
in configs/rbac/ grants exactly those (group, resource, verb) triples, least privilege by construction.

We use the client's ApiClient (its Configuration, authentication, TLS and connection pool) with JSON
bodies rather than the generated model classes: the scale subresource must work for any scalable kind
(Deployment, StatefulSet, custom resources), and deserialising into generated models costs more CPU
than the whole decision (bench/reconcile_speed.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s

from .errors import KubeError, KubeUnavailable, NotFound, ScaleConflict

PA_GROUP, PA_VERSION, PA_PLURAL = "prescaler.dev", "v1alpha1", "predictiveautoscalers"
FIELD_MANAGER = "prescaler-controller"
MERGE_PATCH = "application/merge-patch+json"


def _ts(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_ts(when: datetime) -> str:
    # events.k8s.io/v1 eventTime is a MicroTime (RFC 3339 with microseconds).
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Scale:
    """An autoscaling/v1 Scale as read: the replicas asked for, the replicas there, and the read's version."""

    replicas: int
    status_replicas: int
    selector: str
    resource_version: str
    ready_replicas: int | None = None  # from the workload's status, when it is an apps/v1 kind


@dataclass(frozen=True)
class TargetRef:
    api_version: str
    kind: str
    name: str


# Kinds whose plural and group we know without discovery (the common case: one less round trip).
_KNOWN_PLURALS = {
    ("apps", "Deployment"): "deployments",
    ("apps", "StatefulSet"): "statefulsets",
    ("apps", "ReplicaSet"): "replicasets",
    ("", "ReplicationController"): "replicationcontrollers",
}


class KubeClient:
    """The controller's view of the API server. `timeout` bounds every request (connect, read)."""

    def __init__(self, api_client: k8s.ApiClient, *, timeout: float = 5.0):
        self.api = api_client
        self.timeout = timeout
        self._plurals: dict[tuple[str, str, str], str] = {}

    # ---- the one request path ---------------------------------------------------------------
    def _call(self, verb: str, group: str, resource: str, method: str, path: str, *,
              query: dict[str, Any] | None = None, body: Any = None, content_type: str | None = None,
              timeout: float | None = None) -> dict[str, Any]:
        """One request. `verb`, `group` and `resource` are the RBAC triple this call needs (see module doc)."""
        del verb, group, resource  # documentation for RBAC; the server derives them from method and path
        headers = {"Accept": "application/json"}
        if content_type or body is not None:
            headers["Content-Type"] = content_type or "application/json"
        # The body is already plain JSON data: skip the client's sanitize_for_serialization walk (a
        # tenth of the controller's CPU in bench/reconcile_speed.py); its REST layer json.dumps it.
        method_, url, header_params, _, post = self.api.param_serialize(
            method, path, query_params=list((query or {}).items()) or None, header_params=headers,
            auth_settings=["BearerToken"])
        try:
            response = self.api.call_api(method_, url, header_params=header_params, body=body, post_params=post,
                                         _request_timeout=timeout if timeout is not None else self.timeout)
            data = response.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # timeouts, refused, reset
            raise KubeUnavailable(0, type(exc).__name__, str(exc), verb=method, path=path) from exc
        except k8s.ApiException as exc:  # the client's REST layer wraps TLS errors (status 0) and Retry-After
            if exc.status:
                raise _error(exc.status, exc.body.encode() if isinstance(exc.body, str) else exc.body,
                             method, path) from exc
            raise KubeUnavailable(0, "ApiException", str(exc.reason), verb=method, path=path) from exc
        if 200 <= response.status < 300:
            return json.loads(data) if data else {}
        raise _error(response.status, data, method, path)

    def _stream(self, verb: str, group: str, resource: str, path: str, query: list[tuple[str, str]], *,
                read_timeout: float) -> Any:
        """A streaming GET (watch) through the client's pool; the caller reads and releases it."""
        del verb, group, resource  # the RBAC triple, as in _call
        _, url, headers, _, _ = self.api.param_serialize(
            "GET", path, query_params=query, header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"])
        try:
            return self.api.rest_client.pool_manager.request(
                "GET", url, headers=headers, preload_content=False,
                timeout=urllib3.Timeout(connect=self.timeout, read=read_timeout))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnavailable(0, type(exc).__name__, str(exc), verb="WATCH", path=path) from exc

    # ---- discovery: map a scaleTargetRef's kind to its plural -------------------------------
    def plural_for(self, api_version: str, kind: str) -> str:
        group, _, version = api_version.rpartition("/")
        known = _KNOWN_PLURALS.get((group, kind))
        if known:
            return known
        key = (group, version, kind)
        if key not in self._plurals:
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            listing = self._call("get", "", "", "GET", path)  # discovery is allowed to every user
            for res in listing.get("resources", []):
                if res.get("kind") == kind and "/" not in res.get("name", ""):
                    self._plurals[key] = res["name"]
                    break
            else:
                raise NotFound(404, "NotFound", f"kind {kind} is not served by {api_version}", verb="GET", path=path)
        return self._plurals[key]

    def _object_path(self, api_version: str, plural: str, namespace: str, name: str = "") -> str:
        group, _, version = api_version.rpartition("/")
        base = f"/apis/{group}/{version}" if group else f"/api/{version}"
        path = f"{base}/namespaces/{quote(namespace)}/{plural}"
        return f"{path}/{quote(name)}" if name else path

    # ---- the scale subresource (any scalable kind) -------------------------------------------
    def get_scale(self, namespace: str, ref: TargetRef) -> Scale:
        plural = self.plural_for(ref.api_version, ref.kind)
        path = self._object_path(ref.api_version, plural, namespace, ref.name) + "/scale"
        scale = self._call("get", "*", "*/scale", "GET", path)
        return Scale(
            replicas=int(scale.get("spec", {}).get("replicas", 0)),
            status_replicas=int(scale.get("status", {}).get("replicas", 0)),
            selector=scale.get("status", {}).get("selector", ""),
            resource_version=scale.get("metadata", {}).get("resourceVersion", ""),
        )

    def patch_scale(self, namespace: str, ref: TargetRef, replicas: int, resource_version: str) -> Scale:
        """Set spec.replicas, only if nothing changed since the read (resourceVersion precondition: 409 else)."""
        plural = self.plural_for(ref.api_version, ref.kind)
        path = self._object_path(ref.api_version, plural, namespace, ref.name) + "/scale"
        body = {"metadata": {"resourceVersion": resource_version}, "spec": {"replicas": int(replicas)}}
        scale = self._call("patch", "*", "*/scale", "PATCH", path, body=body, content_type=MERGE_PATCH,
                           query={"fieldManager": FIELD_MANAGER})
        return Scale(int(scale["spec"]["replicas"]), int(scale.get("status", {}).get("replicas", 0)),
                     scale.get("status", {}).get("selector", ""), scale["metadata"].get("resourceVersion", ""))

    def ready_replicas(self, namespace: str, ref: TargetRef) -> int | None:
        """readyReplicas of an apps/v1 workload (for leadTime: auto); None for kinds without it."""
        group = ref.api_version.rpartition("/")[0]
        if group != "apps" or ref.kind not in ("Deployment", "StatefulSet"):
            return None
        plural = _KNOWN_PLURALS[("apps", ref.kind)]
        path = self._object_path(ref.api_version, plural, namespace, ref.name)
        if plural == "deployments":
            obj = self._call("get", "apps", "deployments", "GET", path)
        else:
            obj = self._call("get", "apps", "statefulsets", "GET", path)
        return int((obj.get("status") or {}).get("readyReplicas", 0))

    def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """The pods a /scale status.selector matches (their readiness feeds the HPA rules)."""
        path = f"/api/v1/namespaces/{quote(namespace)}/pods"
        return self._call("list", "", "pods", "GET", path, query={"labelSelector": label_selector}).get("items", [])

    # ---- PredictiveAutoscalers -----------------------------------------------------------------
    def _pa_path(self, namespace: str | None, name: str = "") -> str:
        base = f"/apis/{PA_GROUP}/{PA_VERSION}"
        if namespace is None:
            return f"{base}/{PA_PLURAL}"
        return f"{base}/namespaces/{quote(namespace)}/{PA_PLURAL}" + (f"/{quote(name)}" if name else "")

    def list_autoscalers(self, namespace: str | None = None) -> tuple[list[dict[str, Any]], str]:
        listing = self._call("list", PA_GROUP, PA_PLURAL, "GET", self._pa_path(namespace))
        return listing.get("items", []), listing.get("metadata", {}).get("resourceVersion", "")

    def get_autoscaler(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call("get", PA_GROUP, PA_PLURAL, "GET", self._pa_path(namespace, name))

    def watch_autoscalers(self, namespace: str | None, resource_version: str, *,
                          timeout_seconds: int = 60) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, object) events after resource_version until the server ends the watch.

        A 410 Gone arrives as an ERROR event; the caller relists (informer behaviour in client-go).
        """
        path = self._pa_path(namespace)
        query = [("watch", "true"), ("resourceVersion", resource_version),
                 ("timeoutSeconds", str(timeout_seconds)), ("allowWatchBookmarks", "false")]
        response = self._stream("watch", PA_GROUP, PA_PLURAL, path, query, read_timeout=timeout_seconds + self.timeout)
        try:
            if response.status != 200:
                raise _error(response.status, response.read(), "WATCH", path)
            buffer = b""
            for chunk in response.stream(amt=None, decode_content=False):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        event = json.loads(line)
                        yield event.get("type", ""), event.get("object") or {}
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnavailable(0, type(exc).__name__, str(exc), verb="WATCH", path=path) from exc
        finally:
            response.release_conn()

    def patch_autoscaler_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch the status subresource (the API server ignores anything but status there)."""
        return self._call("patch", PA_GROUP, "predictiveautoscalers/status", "PATCH",
                          self._pa_path(namespace, name) + "/status", body={"status": status},
                          content_type=MERGE_PATCH, query={"fieldManager": FIELD_MANAGER})

    # ---- other autoscalers (never fight them) --------------------------------------------------
    def list_hpas(self, namespace: str) -> list[dict[str, Any]]:
        path = f"/apis/autoscaling/v2/namespaces/{quote(namespace)}/horizontalpodautoscalers"
        return self._call("list", "autoscaling", "horizontalpodautoscalers", "GET", path).get("items", [])

    def list_scaled_objects(self, namespace: str) -> list[dict[str, Any]]:
        """KEDA ScaledObjects; an empty list when KEDA is not installed (404 on the kind)."""
        path = f"/apis/keda.sh/v1alpha1/namespaces/{quote(namespace)}/scaledobjects"
        try:
            return self._call("list", "keda.sh", "scaledobjects", "GET", path).get("items", [])
        except NotFound:
            return []

    # ---- events.k8s.io/v1 Events -------------------------------------------------------------
    def create_event(self, namespace: str, regarding: dict[str, Any], *, reason: str, note: str,
                     type_: str, action: str, now: datetime, reporting_instance: str) -> dict[str, Any]:
        body = {
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"generateName": f"{regarding.get('name', 'pa')}.", "namespace": namespace},
            "eventTime": _micro_ts(now), "reportingController": "prescaler.dev/controller",
            "reportingInstance": reporting_instance[:128], "action": action[:128], "reason": reason[:128],
            "note": note[:1024], "type": type_, "regarding": regarding,
        }
        path = f"/apis/events.k8s.io/v1/namespaces/{quote(namespace)}/events"
        return self._call("create", "events.k8s.io", "events", "POST", path, body=body)

    # ---- coordination.k8s.io/v1 Leases (leader election) -----------------------------------------
    def _lease_path(self, namespace: str, name: str = "") -> str:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{quote(namespace)}/leases"
        return f"{path}/{quote(name)}" if name else path

    def get_lease(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call("get", "coordination.k8s.io", "leases", "GET", self._lease_path(namespace, name))

    def create_lease(self, namespace: str, lease: dict[str, Any]) -> dict[str, Any]:
        return self._call("create", "coordination.k8s.io", "leases", "POST", self._lease_path(namespace), body=lease)

    def update_lease(self, namespace: str, lease: dict[str, Any]) -> dict[str, Any]:
        """PUT with the read's resourceVersion: two candidates racing get one 409."""
        return self._call("update", "coordination.k8s.io", "leases", "PUT",
                          self._lease_path(namespace, lease["metadata"]["name"]), body=lease)


def _error(status: int, data: bytes | None, method: str, path: str) -> KubeError:
    try:
        payload = json.loads(data or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = {}
    reason = payload.get("reason") or "Error"
    message = payload.get("message") or (data or b"").decode("utf-8", "replace")[:200]
    cls = {404: NotFound, 409: ScaleConflict}.get(status)
    if cls is None:
        cls = KubeUnavailable if status >= 500 or status == 429 else KubeError
    return cls(status, reason, message, verb=method, path=path)


def api_client_for(host: str | None = None, *, kubeconfig: str | None = None,
                   in_cluster: bool | None = None) -> k8s.ApiClient:
    """An ApiClient: explicit host (tests, bench), a kubeconfig file, or the pod's service account."""
    import os

    from kubernetes import config as kconfig

    configuration = k8s.Configuration()
    if host:
        configuration.host = host
    elif in_cluster or (in_cluster is None and kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST")):
        kconfig.load_incluster_config(client_configuration=configuration)
    else:
        kconfig.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return k8s.ApiClient(configuration)
