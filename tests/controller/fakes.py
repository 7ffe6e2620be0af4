"""Fake Prometheus and fake forecaster over real HTTP on loopback, for the controller's tests.

Each is a ThreadingHTTPServer whose answers the test sets; `down = True` makes it answer 503. The
controller's real httpx clients talk to them (fakes at the edges, docs/architecture.md).
"""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from forecaster.contract import Forecast, ForecastPoint, WorkloadForecast, quantile_key


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: Any


class _Base:
    def __init__(self) -> None:
        self.down = False
        self.requests: list[str] = []
        handler = type("H", (BaseHTTPRequestHandler,), {
            "log_message": lambda *a: None,
            "disable_nagle_algorithm": True,
            "do_GET": lambda h: self._handle(h),
        })
        self._server = _Server(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _send(self, h: BaseHTTPRequestHandler, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.requests.append(h.path)
        if self.down:
            return self._send(h, 503, {"status": "error", "error": "down for the test"})
        self.answer(h, url.path, query)

    def answer(self, h: BaseHTTPRequestHandler, path: str, query: dict[str, str]) -> None:
        raise NotImplementedError


class FakePrometheus(_Base):
    """/api/v1/query: per-pod values for a metric whose name appears in the query, or a rate."""

    def __init__(self) -> None:
        self.pod_metrics: dict[str, dict[str, float]] = {}  # metric name -> pod -> value
        self.rates: dict[str, float] = {}                     # counter name -> rate per second
        super().__init__()

    def answer(self, h: BaseHTTPRequestHandler, path: str, query: dict[str, str]) -> None:
        if path != "/api/v1/query":
            return self._send(h, 404, {"status": "error", "error": f"no {path}"})
        promql = query.get("query", "")
        for counter, rate in self.rates.items():
            if counter.split(":", 1)[-1] in promql and promql.startswith("sum(rate("):
                return self._send(h, 200, {"status": "success", "data": {
                    "resultType": "vector", "result": [{"metric": {}, "value": [0, str(rate)]}]}})
        for metric, pods in self.pod_metrics.items():
            if metric.split(":", 1)[-1] in promql:
                match = re.search(r'pod=~"([^"]*)"', promql)
                wanted = set(match.group(1).replace("\\", "").split("|")) if match else None
                result = [{"metric": {"pod": pod}, "value": [0, str(v)]} for pod, v in pods.items()
                          if wanted is None or pod in wanted]
                return self._send(h, 200, {"status": "success", "data": {"resultType": "vector", "result": result}})
        return self._send(h, 200, {"status": "success", "data": {"resultType": "vector", "result": []}})


def flat_then_peak(origin: datetime, *, base: float, peak: float, peak_from_s: float, peak_to_s: float,
                   step_s: int = 60, bins: int = 60, quantile_spread: float = 1.1,
                   generated_at: datetime | None = None, signal: str = "requests",
                   workload: str = "chat") -> Forecast:
    points = []
    for i in range(bins):
        t = origin + timedelta(seconds=i * step_s)
        offset = i * step_s
        mean = peak if peak_from_s <= offset < peak_to_s else base
        points.append(ForecastPoint(timestamp=t, mean=mean, quantiles={
            quantile_key(0.5): mean, quantile_key(0.9): mean * quantile_spread,
            quantile_key(0.95): mean * quantile_spread * 1.05}))
    return Forecast(workload=workload, signal=signal, model="test", generated_at=generated_at or origin,
                    step_seconds=step_s, points=points)


class FakeForecaster(_Base):
    """GET /v1/workloads/{w}/forecast -> WorkloadForecast from `make(workload)` (set by the test)."""

    def __init__(self, make: Callable[[str], WorkloadForecast | None] | None = None) -> None:
        self.make = make
        super().__init__()

    def answer(self, h: BaseHTTPRequestHandler, path: str, query: dict[str, str]) -> None:
        match = re.fullmatch(r"/v1/workloads/([^/]+)/forecast", path)
        if not match:
            return self._send(h, 404, {"detail": f"no route {path}"})
        forecast = self.make(match.group(1)) if self.make else None
        if forecast is None:
            return self._send(h, 404, {"detail": f"unknown workload {match.group(1)}"})
        data = forecast.model_dump_json().encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
