"""The controller's own /metrics, /healthz and /readyz.

prometheus_client with an explicit CollectorRegistry (never the global one: tests build many
controllers in one process, and the registry is the seam they read).
- /healthz: the process is alive and its loop has ticked within `stall_seconds` (a wedged loop fails
  the liveness probe and the kubelet restarts the pod);
- /readyz: the loop has finished at least one cycle (as leader) or is a healthy standby.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        labels = ("namespace", "name")
        self.desired = Gauge("prescaler_desired_replicas", "Replicas the last decision asked for",
                             labels, registry=self.registry)
        self.current = Gauge("prescaler_current_replicas", "Replicas the target had at the last sync",
                             labels, registry=self.registry)
        self.decisions = Counter("prescaler_decisions_total", "Decisions by reason",
                                 labels + ("reason",), registry=self.registry)
        self.last_reason = Gauge("prescaler_decision_reason", "1 for the last decision's reason, 0 for earlier ones",
                                 labels + ("reason",), registry=self.registry)
        self.forecast_age = Gauge("prescaler_forecast_age_seconds", "Age of the forecast the last decision used",
                                  labels, registry=self.registry)
        self.live_error = Gauge("prescaler_forecast_live_error", "Median relative live error of the forecast",
                                labels + ("signal",), registry=self.registry)
        self.forecast_healthy = Gauge("prescaler_forecast_healthy", "1 when the predictive stage is in use",
                                      labels, registry=self.registry)
        self.lead_time = Gauge("prescaler_lead_time_seconds", "Lead time in use", labels, registry=self.registry)
        self.scales = Counter("prescaler_scale_patches_total", "Scale patches applied", labels + ("direction",),
                              registry=self.registry)
        self.errors = Counter("prescaler_reconcile_errors_total", "Reconcile errors by type", ("type",),
                              registry=self.registry)
        self.duration = Histogram("prescaler_reconcile_duration_seconds", "Time of one reconcile",
                                  buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
                                  registry=self.registry)
        self.leader = Gauge("prescaler_leader", "1 while this replica holds the lease", registry=self.registry)
        self._reasons: dict[tuple[str, str], str] = {}

    def record_reason(self, namespace: str, name: str, reason: str) -> None:
        previous = self._reasons.get((namespace, name))
        if previous is not None and previous != reason:
            self.last_reason.labels(namespace, name, previous).set(0)
        self._reasons[(namespace, name)] = reason
        self.last_reason.labels(namespace, name, reason).set(1)
        self.decisions.labels(namespace, name, reason).inc()


class Health:
    """What the probes answer. The loop calls `tick(now_monotonic)`; the server reads it."""

    def __init__(self, monotonic: Callable[[], float], stall_seconds: float = 120.0):
        self._monotonic = monotonic
        self.stall_seconds = stall_seconds
        self.last_tick: float | None = None
        self.ready = False
        self._lock = threading.Lock()

    def tick(self, *, ready: bool) -> None:
        with self._lock:
            self.last_tick = self._monotonic()
            self.ready = self.ready or ready

    def healthy(self) -> bool:
        with self._lock:
            return self.last_tick is None or self._monotonic() - self.last_tick <= self.stall_seconds


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body, ctype, code = generate_latest(self.server.metrics.registry), CONTENT_TYPE_LATEST, 200
        elif path == "/healthz":
            ok = self.server.health.healthy()
            body, ctype, code = (b"ok\n" if ok else b"loop stalled\n"), "text/plain", 200 if ok else 503
        elif path == "/readyz":
            ok = self.server.health.ready
            body, ctype, code = (b"ok\n" if ok else b"not ready\n"), "text/plain", 200 if ok else 503
        else:
            body, ctype, code = b"not found\n", "text/plain", 404
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    metrics: ControllerMetrics
    health: Health


def serve(metrics: ControllerMetrics, health: Health, host: str = "0.0.0.0", port: int = 8080) -> _Server:
    """Start the probe and metrics server in a daemon thread; `.shutdown()` stops it."""
    server = _Server((host, port), _Handler)
    server.metrics, server.health = metrics, health
    threading.Thread(target=server.serve_forever, name="prescaler-http", daemon=True).start()
    return server
