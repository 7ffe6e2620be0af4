"""A stateful fake Kubernetes API server over real HTTP, for the official client to talk to.

It speaks the REST paths the controller uses (discovery, core, apps/v1 with /scale, custom resources,
autoscaling/v2, keda.sh, coordination.k8s.io, events.k8s.io), with list + watch (chunked JSON lines),
patches (merge, JSON, strategic merge), server-side apply (a subset, see `_apply`) and fault injection.
No kube-apiserver can run where the tests run; this is the seam (docs/architecture.md: "fakes at the
edges") that lets the controller run its real client code. It is a test double: no authentication, no
admission webhooks, no field pruning; custom resources are defaulted and validated against their
CRD's schema and CEL rules (admission.py) on every write over HTTP, as kube-apiserver does.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from .patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from .store import ApiError, Clock, ResourceType, Store, system_clock

APPLY_PATCH = "application/apply-patch+yaml"
_PATH = re.compile(
    r"^/(?:api/(?P<cv>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)


@dataclass
class Fault:
    """The next `count` requests whose method and path match fail: with `status`, or by hanging."""

    path_regex: str
    count: int
    method: str | None = None
    status: int = 500
    hang_seconds: float = 0.0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.count > 0 and (self.method is None or self.method == method) \
            and re.search(self.path_regex, path) is not None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so urllib3's pool reuses connections
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stall
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read failures, not access logs
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ---------------------------------------------------------------------------------------
    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        if self._content_type() == APPLY_PATCH:  # YAML (of which JSON is a subset), as kubectl sends it
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise ApiError(400, "BadRequest", f"request body is not YAML: {exc}") from None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ApiError(400, "BadRequest", f"request body is not JSON: {exc}") from None

    def _content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip()

    def _dispatch(self, method: str) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        url = url._replace(path=url.path.rstrip("/") or "/")  # the client asks for /apis/ as well as /apis
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            body = self._body() if method in ("POST", "PUT", "PATCH") else None
            fake.requests.append((method, url.path))
            fault = fake._take_fault(method, url.path)
            if fault is not None:
                if fault.hang_seconds:
                    # Hang past the client's timeout; the stop event ends it early on shutdown.
                    fake._stopping.wait(fault.hang_seconds)
                    self.close_connection = True
                    return
                raise ApiError(fault.status, "InternalError", f"injected fault for {method} {url.path}")
            self._route(method, url.path, query, body)
        except ApiError as err:
            self._send(err.code, err.status())
        except PatchError as err:
            self._send(422, ApiError(422, "Invalid", str(err)).status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        store = self.server.fake.store
        if method == "GET" and path in ("/api", "/apis") or path.startswith("/apis/") and path.count("/") == 3 \
                or path == "/api/v1":
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on {path}")
            return self._send(200, self.server.fake.discovery(path))
        match = _PATH.match(path)
        if not match:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource: {path}")
        group = match["group"] or ""
        version = match["cv"] or match["version"]
        rtype = store.find_type(group, version, match["plural"])
        ns, name, sub = match["ns"], match["name"], match["sub"]
        if rtype.namespaced is False and ns:
            raise ApiError(404, "NotFound", f"{rtype.plural} is cluster-scoped")
        if name is None:
            if method == "GET":
                if query.get("watch") in ("true", "1"):
                    return self._watch(rtype, ns, query)
                return self._send(200, store.list(rtype, ns, label_selector=query.get("labelSelector", ""),
                                                  field_selector=query.get("fieldSelector", "")))
            if method == "POST":
                return self._send(201, store.create(rtype, ns, body, admit=True))
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")
        if sub not in (None, "status", "scale"):
            raise ApiError(404, "NotFound", f"{rtype.plural} has no subresource {sub!r}")
        if sub == "status" and not rtype.status_subresource or sub == "scale" and not rtype.scale_subresource:
            raise ApiError(404, "NotFound", f"{rtype.plural} has no subresource {sub!r}")
        if sub == "scale":
            return self._scale(method, rtype, ns, name, body)
        if method == "GET":
            return self._send(200, store.get(rtype, ns, name))
        if method == "DELETE":
            return self._send(200, store.delete(rtype, ns, name))
        if method == "PUT":
            return self._send(200, store.replace(rtype, ns, name, body, subresource=sub, admit=True))
        if method == "PATCH":
            if self._content_type() == APPLY_PATCH:
                return self._apply(rtype, ns, name, sub, body, query)
            with store.lock:
                current = store.get(rtype, ns, name)
                patched = self._apply_patch(current, body)
                if not isinstance(patched, dict):  # a merge patch that is not an object replaces it all
                    raise ApiError(400, "BadRequest", "the patched object is not a JSON object")
                # The body's resourceVersion (if it set one) is the precondition; otherwise the read's.
                sent = ((body or {}).get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
                patched.setdefault("metadata", {})["resourceVersion"] = sent or current["metadata"]["resourceVersion"]
                return self._send(200, store.replace(rtype, ns, name, patched, subresource=sub, admit=True))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on {path}")

    def _apply(self, rtype: ResourceType, ns: str | None, name: str, sub: str | None, body: Any,
               query: dict[str, str]) -> None:
        """Server-side apply, the subset tests need: it creates the object when absent (201), else merges
        the applied configuration into it as a strategic merge patch does (conditions by type, ...).
        No managedFields: a field dropped from a later apply stays, and no apply conflicts with another
        manager. fieldManager is required, as on the real server."""
        store = self.server.fake.store
        if not query.get("fieldManager"):
            raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                           "is required for apply patch")
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "an apply patch must be an object")
        meta = body.get("metadata") or {}
        if meta.get("name", name) != name:
            raise ApiError(400, "BadRequest", f"the name of the object ({meta.get('name')}) does not match the "
                           f"name on the URL ({name})")
        with store.lock:
            try:
                current = store.get(rtype, ns, name)
            except ApiError as err:
                if err.code != 404 or sub is not None:
                    raise
                created = {**body, "metadata": {**meta, "name": name}}
                return self._send(201, store.create(rtype, ns, created, admit=True))
            patched = strategic_merge_patch(current, body)
            sent = meta.get("resourceVersion")
            patched.setdefault("metadata", {})["resourceVersion"] = sent or current["metadata"]["resourceVersion"]
            return self._send(200, store.replace(rtype, ns, name, patched, subresource=sub, admit=True))

    def _apply_patch(self, current: dict[str, Any], body: Any) -> dict[str, Any]:
        ctype = self._content_type()
        if ctype == "application/json-patch+json":
            return json_patch(current, body)
        if ctype == "application/merge-patch+json":
            return merge_patch(current, body)
        if ctype == "application/strategic-merge-patch+json":
            return strategic_merge_patch(current, body)
        raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype!r}")

    def _scale(self, method: str, rtype: ResourceType, ns: str | None, name: str, body: Any) -> None:
        store = self.server.fake.store
        with store.lock:
            parent = store.get(rtype, ns, name)
            scale = to_scale(parent)
            if method == "GET":
                return self._send(200, scale)
            if method == "PUT":
                new_scale = body
            elif method == "PATCH":
                new_scale = self._apply_patch(scale, body)
                sent = ((body or {}).get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None
                new_scale.setdefault("metadata", {})["resourceVersion"] = sent or scale["metadata"]["resourceVersion"]
            else:
                raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on /scale")
            replicas = (new_scale or {}).get("spec", {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(422, "Invalid", f"Scale.spec.replicas: Invalid value: {replicas!r}: "
                               "must be a non-negative integer")
            parent["spec"]["replicas"] = replicas
            parent["metadata"]["resourceVersion"] = (new_scale.get("metadata") or {}).get("resourceVersion") \
                or parent["metadata"]["resourceVersion"]
            updated = store.replace(rtype, ns, name, parent, admit=True)
            return self._send(200, to_scale(updated))

    def _watch(self, rtype: ResourceType, ns: str | None, query: dict[str, str]) -> None:
        store = self.server.fake.store
        fake = self.server.fake
        timeout = float(query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        name = None
        field_selector = query.get("fieldSelector", "")
        if field_selector.startswith("metadata.name="):
            name = field_selector.split("=", 1)[1]
        with store.lock:
            rv_param = query.get("resourceVersion", "")
            if rv_param in ("", "0"):
                # No resourceVersion: the current state as synthetic ADDED events, then changes.
                initial = [("ADDED", o) for o in store.list(rtype, ns, field_selector=field_selector)["items"]]
                after = store.rv
            else:
                try:
                    after = int(rv_param)
                except ValueError:
                    raise ApiError(400, "BadRequest", f"resourceVersion {rv_param!r} is not an integer") from None
                initial = []  # a too-old version is answered in the stream (200, then an ERROR 410 event)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for kind, obj in initial:
                self._chunk({"type": kind, "object": obj})
            while not fake._stopping.is_set():
                with store.lock:
                    try:
                        events = store.events_after(rtype, ns, after, name)
                    except ApiError as err:
                        self._chunk({"type": "ERROR", "object": err.status()})
                        break
                    if not events:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        store.changed.wait(min(remaining, 0.2))
                        continue
                for event in events:
                    self._chunk({"type": event.type, "object": event.obj})
                    after = event.rv
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _chunk(self, event: dict[str, Any]) -> None:
        data = json.dumps(event, separators=(",", ":")).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


def to_scale(parent: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale of an apps/v1 object: what the scale subresource returns."""
    meta = parent["metadata"]
    match_labels = (parent.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": int(parent.get("spec", {}).get("replicas", 1))},
        "status": {"replicas": int(parent.get("status", {}).get("replicas", 0)),
                   "selector": ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))},
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: "FakeKube"


class FakeKube:
    """Start with `with FakeKube() as kube:`; `kube.url` is the API server address for a client Configuration."""

    def __init__(self, clock: Clock = system_clock, *, ready_delay_seconds: float = 0.0,
                 host: str = "127.0.0.1", port: int = 0, simulate_rollouts: bool = True):
        self.store = Store(clock, ready_delay_seconds=ready_delay_seconds, simulate_rollouts=simulate_rollouts)
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self._faults_lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server((host, port), _Handler)
        self._server.fake = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeKube":
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fakekube", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self.store.lock:
            self.store.changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeKube":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- faults ----------------------------------------------------------------------------
    def fail_next(self, path_regex: str, count: int = 1, *, status: int = 500, method: str | None = None) -> Fault:
        fault = Fault(path_regex, count, method=method, status=status)
        with self._faults_lock:
            self.faults.append(fault)
        return fault

    def hang_next(self, path_regex: str, count: int = 1, *, seconds: float = 2.0,
                  method: str | None = None) -> Fault:
        fault = Fault(path_regex, count, method=method, hang_seconds=seconds)
        with self._faults_lock:
            self.faults.append(fault)
        return fault

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._faults_lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.count -= 1
                    fault.hits += 1
                    return fault
        return None

    # ---- direct access for test set-up and assertions (no HTTP) ---------------------------
    def rtype(self, api_version: str, plural: str) -> ResourceType:
        group, _, version = api_version.rpartition("/")
        return self.store.find_type(group, version, plural)

    def create(self, api_version: str, plural: str, obj: dict[str, Any], namespace: str | None = None) -> dict:
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        return self.store.create(self.rtype(api_version, plural), ns, obj)

    def get(self, api_version: str, plural: str, name: str, namespace: str | None = "default") -> dict:
        return self.store.get(self.rtype(api_version, plural), namespace, name)

    def list(self, api_version: str, plural: str, namespace: str | None = None) -> list[dict]:
        return self.store.list(self.rtype(api_version, plural), namespace)["items"]

    def delete(self, api_version: str, plural: str, name: str, namespace: str | None = "default") -> dict:
        return self.store.delete(self.rtype(api_version, plural), namespace, name)

    def update(self, api_version: str, plural: str, obj: dict[str, Any], *, subresource: str | None = None) -> dict:
        meta = obj["metadata"]
        return self.store.replace(self.rtype(api_version, plural), meta.get("namespace"), meta["name"], obj,
                                  subresource=subresource)

    def settle(self) -> None:
        self.store.settle()

    # ---- discovery ---------------------------------------------------------------------------
    def discovery(self, path: str) -> dict[str, Any]:
        types = list(self.store.types.values())
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": self.url[7:]}]}
        if path == "/apis":
            groups: dict[str, list[str]] = {}
            for t in types:
                if t.group:
                    groups.setdefault(t.group, [])
                    if t.version not in groups[t.group]:
                        groups[t.group].append(t.version)
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                 "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]}}
                for g, vs in sorted(groups.items())]}
        group_version = "v1" if path == "/api/v1" else path[len("/apis/"):]
        group, _, version = group_version.rpartition("/")
        chosen = [t for t in types if t.group == group and t.version == version]
        if not chosen:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource: {path}")
        resources: list[dict[str, Any]] = []
        for t in chosen:
            resources.append({"name": t.plural, "singularName": t.kind.lower(), "namespaced": t.namespaced,
                              "kind": t.kind, "verbs": list(t.verbs), "shortNames": list(t.short_names)})
            if t.status_subresource:
                resources.append({"name": f"{t.plural}/status", "singularName": "", "namespaced": t.namespaced,
                                  "kind": t.kind, "verbs": ["get", "patch", "update"]})
            if t.scale_subresource:
                resources.append({"name": f"{t.plural}/scale", "singularName": "", "namespaced": t.namespaced,
                                  "group": "autoscaling", "version": "v1", "kind": "Scale",
                                  "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                "resources": resources}
