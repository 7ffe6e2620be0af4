"""A small router in front of the ready replicas: the Service (and its load balancer) of the e2e.

Each request goes to the ready replica with the fewest requests in flight (what a gateway's
least-request policy does; round robin would overload a replica that just became ready with a
share of a queue it has not got). With no replica ready it answers 503 at once, as a Service with no
ready endpoints refuses the connection; a replica that fails mid-request becomes a 502. Every answer
it gives is counted by status, so the test can check that no request is lost silently.
"""

from __future__ import annotations

import collections
import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlsplit

# The clients' own timeout (loadgen.CLIENT_TIMEOUT_S): past it nobody waits for the answer, and
# closing the upstream connection makes vLLM abort the request, as a gateway's timeout does.
UPSTREAM_TIMEOUT_S = 60.0


class _Server(ThreadingHTTPServer):
    # socketserver's listen backlog is 5: a burst of Poisson arrivals overflowed it and the kernel
    # reset connections the router never saw (found by the e2e's accounting). A gateway's is large.
    request_queue_size = 1024
    daemon_threads = True


class Router:
    def __init__(self, backends: Callable[[], list[str]]):
        self._backends = backends
        self._lock = threading.Lock()
        self._in_flight: collections.Counter[str] = collections.Counter()
        self.answered: collections.Counter[int] = collections.Counter()
        self.by_backend: collections.Counter[str] = collections.Counter()
        self.client_gone = 0  # answers the client was no longer there to read
        router = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                router._forward(self)

            def log_message(self, *args: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="router", daemon=True)

    def start(self) -> "Router":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _pick(self) -> str | None:
        ready = self._backends()
        if not ready:
            return None
        with self._lock:
            backend = min(ready, key=lambda b: self._in_flight[b])
            self._in_flight[backend] += 1
        return backend

    def _answer(self, handler: BaseHTTPRequestHandler, status: int, body: bytes,
                content_type: str = "application/json") -> None:
        with self._lock:
            self.answered[status] += 1
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:  # the client gave up first (its timeout): it counts the request as failed
            with self._lock:
                self.client_gone += 1

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        backend = self._pick()
        if backend is None:
            self._answer(handler, 503, b'{"error": "no ready replica"}')
            return
        try:
            parts = urlsplit(backend)
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=UPSTREAM_TIMEOUT_S)
            try:
                conn.request("POST", handler.path, body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
                status = response.status
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as exc:
            status, payload = 502, f'{{"error": "upstream {type(exc).__name__}"}}'.encode()
        finally:
            with self._lock:
                self._in_flight[backend] -= 1
                self.by_backend[backend] += 1
        self._answer(handler, status, payload)
