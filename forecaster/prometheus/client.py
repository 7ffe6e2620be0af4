"""The HTTP edge: prometheus-api-client calls with our errors, retries (tenacity) and auth.

prometheus-api-client turns every non-200 answer into one exception whose message is a repr of the
body, losing the status. We give it our own requests.Session whose response hook maps the status
first (401/403 -> auth, 400/422 -> query error with Prometheus's `error` text, 5xx -> unreachable),
so callers get typed errors without parsing the client's message. Retries are tenacity's (the
client's own urllib3 retries are switched off, so one policy applies, with an injectable sleep).

Every call has a total deadline (`deadline_s`), retries included. A socket timeout bounds each read,
not an answer: a server that accepts and never answers cost 125 s before (4 tries of 30 s), one that
sends a byte a second hung forever. The session's adapter reads each body in what arrives per
socket read and gives up at the deadline; a socket read never waits past it either.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from requests.adapters import HTTPAdapter
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential
from urllib3.util.retry import Retry

from forecaster.prometheus.config import PrometheusConfig
from forecaster.prometheus.errors import (
    PrometheusAuthError,
    PrometheusDeadlineExceeded,
    PrometheusQueryError,
    PrometheusUnreachable,
)

log = logging.getLogger(__name__)

__all__ = ["PrometheusClient"]


class _QueryContext(threading.local):
    """The query in flight on this thread (so the response hook can name it in an error) and the
    monotonic time its call must end by."""

    query: str = ""
    deadline: float = float("inf")


class _DeadlineExpired(requests.Timeout):
    """Raised inside a request when the call's deadline passed (mapped to PrometheusDeadlineExceeded)."""


class _DeadlineAdapter(HTTPAdapter):
    """An HTTPAdapter that never lets one request outlive its call's deadline.

    The connect and read timeouts are capped at the time left; the body is read with read1, which
    returns what one socket read brings, so the deadline is checked however slowly bytes arrive.
    """

    def __init__(self, context: _QueryContext, monotonic: Callable[[], float]):
        super().__init__(max_retries=Retry(total=0, connect=0, read=0, status=0, redirect=0))
        self._context, self._monotonic = context, monotonic

    def _left(self) -> float:
        left = self._context.deadline - self._monotonic()
        if left <= 0:
            raise _DeadlineExpired("deadline passed")
        return left

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: bool | str = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        left = self._left()
        if isinstance(timeout, tuple):
            timeout = tuple(min(t, left) if t is not None else left for t in timeout)
        else:
            timeout = min(timeout, left) if timeout is not None else left
        response = super().send(request, stream=True, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        if stream:
            return response
        chunks: list[bytes] = []
        try:
            while True:
                left = self._left()
                # Each socket read may wait only for the time left (urllib3 keeps the connection on
                # the streamed response); without the socket, the overshoot is one read timeout.
                sock = getattr(getattr(response.raw, "_connection", None), "sock", None)
                if sock is not None:
                    sock.settimeout(left)
                chunk = response.raw.read1(65536, decode_content=True)
                if not chunk:
                    break
                chunks.append(chunk)
        except _DeadlineExpired:
            response.close()
            raise
        except Exception as error:  # a read timeout or reset mid-body: as requests reports it
            response.close()
            raise requests.ConnectionError(f"reading the answer: {type(error).__name__}: {error}") from error
        response._content = b"".join(chunks)  # what requests' .content would hold, read under the deadline
        response._content_consumed = True
        return response


class PrometheusClient:
    """A thin, typed client over prometheus-api-client for one Prometheus server."""

    def __init__(
        self,
        config: PrometheusConfig,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.config = config
        self._sleep, self._monotonic = sleep, monotonic
        self._context = _QueryContext()
        session = session or requests.Session()
        adapter = _DeadlineAdapter(self._context, monotonic)
        session.verify = config.tls_verify()
        session.hooks["response"].append(self._check_response)
        headers: dict[str, str] | None = None
        auth: tuple[str, str] | None = None
        token = config.resolve_bearer_token()
        if token is not None:
            headers = {"Authorization": f"Bearer {token}"}
        if config.username is not None:
            auth = (config.username, config.resolve_password() or "")
        self._prom = PrometheusConnect(
            url=config.url,
            headers=headers,
            auth=auth,
            session=session,
            timeout=config.timeout_s,
            retry=Retry(total=0, connect=0, read=0, status=0, redirect=0),
        )
        # PrometheusConnect mounts its own adapter on its URL; ours replaces it (same prefix), and the
        # scheme-wide mounts cover a redirect elsewhere.
        for prefix in ("http://", "https://", self._prom.url):
            session.mount(prefix, adapter)

    def __repr__(self) -> str:
        return f"PrometheusClient({self.config!r})"

    # -- calls -------------------------------------------------------------------------------

    def query_range(self, query: str, start: float, end: float, step_seconds: int) -> list[dict[str, Any]]:
        """`/api/v1/query_range` evaluated at start, start+step, ..., <= end (seconds since epoch)."""
        from datetime import datetime, timezone

        return self._call(
            query,
            lambda: self._prom.custom_query_range(
                query,
                start_time=datetime.fromtimestamp(start, timezone.utc),
                end_time=datetime.fromtimestamp(end, timezone.utc),
                step=f"{int(step_seconds)}s",
            ),
        )

    def query(self, query: str, at: float) -> list[dict[str, Any]]:
        """`/api/v1/query` at one instant (seconds since epoch)."""
        return self._call(query, lambda: self._prom.custom_query(query, params={"time": at}))

    def metric_names(self, match: str, start: float, end: float) -> list[str]:
        """Metric names of the series matching the selector `match` within [start, end]."""
        params = {"match[]": match, "start": start, "end": end}
        return list(self._call(match, lambda: self._prom.get_label_values("__name__", params=params)))

    # -- machinery ---------------------------------------------------------------------------

    def _call(self, query: str, fn: Callable[[], Any]) -> Any:
        self._context.query = query
        self._context.deadline = self._monotonic() + self.config.deadline_s
        retrying = Retrying(
            # Unreachable is retried; a passed deadline is final (the deadline is the call's, not a try's).
            retry=retry_if_exception(
                lambda e: isinstance(e, PrometheusUnreachable) and not isinstance(e, PrometheusDeadlineExceeded)),
            stop=stop_after_attempt(self.config.retries + 1),
            wait=wait_exponential(
                multiplier=self.config.backoff_initial_s, max=self.config.backoff_max_s
            ),
            sleep=self._sleep_within_deadline,
            reraise=True,
            before_sleep=lambda state: log.warning(
                "Prometheus %s: %s; retry %d of %d",
                self.config.url,
                state.outcome.exception() if state.outcome else "?",
                state.attempt_number,
                self.config.retries,
            ),
        )
        try:
            return retrying(self._once, fn)
        finally:
            self._context.deadline = float("inf")

    def _sleep_within_deadline(self, seconds: float) -> None:
        """Back off, but not past the deadline (the next try then fails at once, naming it)."""
        self._sleep(max(0.0, min(seconds, self._context.deadline - self._monotonic())))

    def _once(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except _DeadlineExpired:
            raise PrometheusDeadlineExceeded(self.config.url, self._context.query, self.config.deadline_s) from None
        except (requests.ConnectionError, requests.Timeout) as error:
            if self._monotonic() >= self._context.deadline:
                # A socket read capped at the time left timed out: that is the deadline passing.
                raise PrometheusDeadlineExceeded(self.config.url, self._context.query,
                                                 self.config.deadline_s) from error
            raise PrometheusUnreachable(
                f"cannot reach Prometheus at {self.config.url}: {type(error).__name__}"
                f" ({_short(error)})"
            ) from error

    def _check_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        status = response.status_code
        if status < 400:
            return
        if status in (401, 403):
            raise PrometheusAuthError(self.config.url, status)
        text = _prometheus_error_text(response)
        if status in (400, 422):
            raise PrometheusQueryError(self._context.query, text, status)
        if status >= 500:
            raise PrometheusUnreachable(f"Prometheus at {self.config.url} answered HTTP {status}: {text}")
        raise PrometheusQueryError(self._context.query, text, status)


def _prometheus_error_text(response: requests.Response) -> str:
    """Prometheus's own `error` field (with its errorType), else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500].strip() or response.reason or ""
    if isinstance(body, dict) and "error" in body:
        kind = body.get("errorType")
        return f"{kind}: {body['error']}" if kind else str(body["error"])
    return str(body)[:500]


def _short(error: Exception) -> str:
    text = str(error)
    return text if len(text) <= 300 else text[:300] + "..."
