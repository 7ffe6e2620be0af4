"""Errors of the Prometheus boundary, each mapped to what a caller can do about it.

- PrometheusUnreachable: connection refused, DNS, timeout or a 5xx; retried with backoff, then raised.
  PrometheusDeadlineExceeded, one of them: the call's total deadline passed (a hung or trickling server).
- PrometheusAuthError: 401/403; never retried (a wrong password does not get better).
- PrometheusQueryError: Prometheus refused the PromQL (400/422); carries Prometheus's own error text.
- PrometheusEmptyResult: the query ran but matched no series; names the query.
"""

from __future__ import annotations

from forecaster.errors import ForecasterError


class PrometheusError(ForecasterError):
    """Base of the Prometheus source's errors."""


class PrometheusUnreachable(PrometheusError):
    """Prometheus could not be reached (or answered 5xx) after the configured retries."""


class PrometheusDeadlineExceeded(PrometheusUnreachable):
    """One call (with its retries) did not complete within `deadline_s`; never retried past it."""

    def __init__(self, url: str, query: str, deadline_s: float):
        self.url, self.query, self.deadline_s = url, query, deadline_s
        super().__init__(f"Prometheus at {url} gave no complete answer to {query!r} within the "
                         f"{deadline_s:g} s deadline (prometheus.deadline_s)")


class PrometheusAuthError(PrometheusError):
    """Prometheus refused the credentials (HTTP 401 or 403)."""

    def __init__(self, url: str, status: int):
        self.url, self.status = url, status
        super().__init__(
            f"Prometheus at {url} refused the credentials (HTTP {status}); check the bearer token or "
            "basic-auth user and password (file or environment variable)"
        )


class PrometheusQueryError(PrometheusError):
    """Prometheus rejected a query; `prometheus_error` is Prometheus's own text."""

    def __init__(self, query: str, prometheus_error: str, status: int | None = None):
        self.query, self.prometheus_error, self.status = query, prometheus_error, status
        code = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"Prometheus rejected query {query!r}{code}: {prometheus_error}")


class PrometheusEmptyResult(PrometheusError):
    """A query matched no series in the asked range."""

    def __init__(self, query: str, detail: str = ""):
        self.query = query
        super().__init__(f"query {query!r} returned no data" + (f": {detail}" if detail else ""))
