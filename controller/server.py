"""The controller's own /metrics, /healthz and /readyz.

prometheus_client with an explicit CollectorRegistry (never the global one: tests build many
controllers in one process, and the registry is the seam they read).
- /healthz: the process is alive and its loop has ticked within `stall_seconds` (a wedged loop fails
  the liveness probe and the kubelet restarts the pod);
- /readyz: the loop has finished at least one cycle (as leader) or is a healthy standby.

Per-autoscaler series (docs/observability.md lists them) say what the last sync concluded. A value
that the last sync did not produce (a stage that abstained, a signal without a forecast, an
autoscaler whose spec no longer parses) is removed, not set to NaN: Grafana draws a gap for a
missing series either way, but a NaN sample poisons sum() and avg() over autoscalers and makes
comparisons in alerts silently false, while an absent series is what `absent()` and `unless` expect.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from forecaster.contract import quantile_key

if TYPE_CHECKING:
    from controller.policy.spec import PredictiveAutoscalerSpec
    from controller.policy.types import Decision, StageResult
    from forecaster.contract import Forecast

# Decision reasons (controller.policy.types.Reason) under which the predictive stage never ran, so
# there is no forecast health to report: spelled here so that this module imports no policy code.
_NO_PREDICTIVE_STAGE = ("ForecastNotConfigured", "ModeOff")


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        labels = ("namespace", "name")
        self.desired = Gauge("prescaler_desired_replicas", "Replicas the last decision asked for",
                             labels, registry=self.registry)
        self.current = Gauge("prescaler_current_replicas", "Replicas the target had at the last sync",
                             labels, registry=self.registry)
        self.min_replicas = Gauge("prescaler_min_replicas", "spec.minReplicas", labels, registry=self.registry)
        self.max_replicas = Gauge("prescaler_max_replicas", "spec.maxReplicas", labels, registry=self.registry)
        self.recommended = Gauge("prescaler_recommended_replicas",
                                 "Each stage's recommendation at the last sync (stage: reactive, predictive, "
                                 "final); absent while a stage abstains", labels + ("stage",), registry=self.registry)
        self.decisions = Counter("prescaler_decisions_total", "Decisions by reason",
                                 labels + ("reason",), registry=self.registry)
        self.last_reason = Gauge("prescaler_decision_reason", "1 for the last decision's reason, 0 for earlier ones",
                                 labels + ("reason",), registry=self.registry)
        self.forecast_age = Gauge("prescaler_forecast_age_seconds", "Age of the forecast the last decision used",
                                  labels, registry=self.registry)
        self.forecast_at_lead = Gauge(
            "prescaler_forecast_at_lead",
            "The forecast's quantile at lead time: its maximum over [now + lead, now + lead + interval], in the "
            "signal's unit per second (what the predictive stage sizes the target for)",
            labels + ("signal", "quantile"), registry=self.registry)
        self.observed_rate = Gauge("prescaler_observed_rate",
                                   "The signal's rate over the last forecast step, in its unit per second",
                                   labels + ("signal",), registry=self.registry)
        self.live_error_ratio = Gauge("prescaler_forecast_live_error_ratio",
                                      "Median relative live error of the forecast (0.2 is 20%)",
                                      labels + ("signal",), registry=self.registry)
        # Deprecated: the same value as prescaler_forecast_live_error_ratio, kept one release for
        # dashboards that read it (Prometheus naming: a ratio's name ends in _ratio).
        self.live_error = Gauge("prescaler_forecast_live_error",
                                "Deprecated, use prescaler_forecast_live_error_ratio (the same value)",
                                labels + ("signal",), registry=self.registry)
        self.max_live_error = Gauge("prescaler_forecast_max_live_error_ratio",
                                    "spec.forecast.maxLiveError: above it the predictive stage abstains",
                                    labels, registry=self.registry)
        self.forecast_healthy = Gauge("prescaler_forecast_healthy",
                                      "1 when the predictive stage is in use, 0 when it abstains; absent "
                                      "without spec.forecast or in mode Off", labels, registry=self.registry)
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
        # (namespace, name) -> gauge -> the extra label values of the series set for it, so a series the
        # last sync did not produce is removed (a signal dropped from the spec, a quantile changed).
        self._series: dict[tuple[str, str], dict[Gauge, set[tuple[str, ...]]]] = {}

    def _put(self, gauge: Gauge, namespace: str, name: str,
             values: Mapping[tuple[str, ...], float | None]) -> None:
        """Set the series of `values` for one autoscaler; remove this gauge's other series of it,
        and those whose value is None or not finite."""
        owned = self._series.setdefault((namespace, name), {})
        kept: set[tuple[str, ...]] = set()
        for extra, value in values.items():
            if value is not None and math.isfinite(value):
                gauge.labels(namespace, name, *extra).set(value)
                kept.add(extra)
        for extra in owned.get(gauge, set()) - kept:
            gauge.remove(namespace, name, *extra)
        owned[gauge] = kept

    def _put_one(self, gauge: Gauge, namespace: str, name: str, value: float | None) -> None:
        self._put(gauge, namespace, name, {(): value})

    def record_reason(self, namespace: str, name: str, reason: str) -> None:
        previous = self._reasons.get((namespace, name))
        if previous is not None and previous != reason:
            self.last_reason.labels(namespace, name, previous).set(0)
        self._reasons[(namespace, name)] = reason
        self.last_reason.labels(namespace, name, reason).set(1)
        self._series.setdefault((namespace, name), {}).setdefault(self.last_reason, set()).add((reason,))
        self.decisions.labels(namespace, name, reason).inc()

    def record_sync(self, namespace: str, name: str, *, desired: int, current: int, lead_seconds: float,
                    forecast_age: float | None) -> None:
        """What a completed sync read and concluded; the forecast's age is removed when none came."""
        self._put_one(self.desired, namespace, name, desired)
        self._put_one(self.current, namespace, name, current)
        self._put_one(self.lead_time, namespace, name, lead_seconds)
        self._put_one(self.forecast_age, namespace, name, forecast_age)

    def record_decision(self, namespace: str, name: str, spec: PredictiveAutoscalerSpec, decision: Decision) -> None:
        """Each stage's recommendation, the bounds, the forecast's health and live error."""

        def used(stage: StageResult) -> float | None:
            # None: the stage abstained; Off: no stage ran (decide() fills them with the current count).
            return None if stage.reason == "ModeOff" else stage.replicas

        self._put(self.recommended, namespace, name, {
            ("reactive",): used(decision.reactive),
            ("predictive",): used(decision.predictive),
            ("final",): decision.desired_replicas,
        })
        self._put_one(self.min_replicas, namespace, name, spec.min_replicas)
        self._put_one(self.max_replicas, namespace, name, spec.max_replicas)
        ran = decision.forecast_reason not in _NO_PREDICTIVE_STAGE
        self._put_one(self.forecast_healthy, namespace, name, (1 if decision.forecast_healthy else 0) if ran else None)
        forecast = spec.forecast
        self._put_one(self.max_live_error, namespace, name, forecast.max_live_error if forecast else None)
        errors: dict[tuple[str, ...], float | None] = {(s,): e for s, e in decision.live_error.items()}
        self._put(self.live_error_ratio, namespace, name, errors)
        self._put(self.live_error, namespace, name, errors)

    def record_forecasts(self, namespace: str, name: str, spec: PredictiveAutoscalerSpec,
                         forecasts: Mapping[str, Forecast | None], observed: Mapping[str, float | None], *,
                         now: datetime, lead_seconds: float) -> None:
        """The forecast at lead time per signal (the window the predictive stage reads, through the
        same contract rule, Forecast.window_max) and the observed rate per signal.

        A signal without a forecast, without the quantile or without a finite value over the window has
        no series: the stage had nothing to use.
        """
        at_lead: dict[tuple[str, ...], float | None] = {}
        fc = spec.forecast
        if fc is not None:
            start = now + timedelta(seconds=lead_seconds)
            end = start + timedelta(seconds=fc.interval_seconds)
            key = quantile_key(fc.quantile)
            for signal, forecast in forecasts.items():
                value = None
                if forecast is not None:
                    try:
                        value = forecast.window_max(start, end, fc.quantile)
                    except KeyError:  # the quantile is absent: the stage abstains on it too
                        value = None
                at_lead[(signal, key)] = value
        self._put(self.forecast_at_lead, namespace, name, at_lead)
        self._put(self.observed_rate, namespace, name, {(s,): r for s, r in observed.items()})

    def forget(self, namespace: str, name: str) -> None:
        """Remove every per-autoscaler series of one autoscaler (a sync that reached no decision, a
        deleted resource, a replica that lost the lease): none may linger at its last value."""
        for gauge, extras in self._series.pop((namespace, name), {}).items():
            for extra in extras:
                gauge.remove(namespace, name, *extra)
        self._reasons.pop((namespace, name), None)

    def forget_all(self) -> None:
        for namespace, name in list(self._series):
            self.forget(namespace, name)


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
