"""The HTTP edge against a fake transport: status -> error mapping, retries with an injected sleep.

The fake is a requests transport adapter (the seam requests itself offers), so the real client,
session hooks and prometheus-api-client code all run.
"""

from __future__ import annotations

import json

import pytest
import requests
from requests.adapters import BaseAdapter

from forecaster.prometheus.client import PrometheusClient
from forecaster.prometheus.config import PrometheusConfig
from forecaster.prometheus.errors import (
    PrometheusAuthError,
    PrometheusQueryError,
    PrometheusUnreachable,
)


class FakeTransport(BaseAdapter):
    """Answers each request with the next scripted (status, body) or raises a scripted exception."""

    def __init__(self, script):
        super().__init__()
        self.script = list(script)
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):
        self.requests.append(request)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        status, body = item
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(body).encode() if not isinstance(body, bytes) else body
        response.headers["Content-Type"] = "application/json"
        response.url = request.url
        response.request = request
        return response

    def close(self):
        pass


OK_RANGE = (200, {"status": "success", "data": {"resultType": "matrix", "result": []}})


def client_with(script, **cfg):
    transport = FakeTransport(script)
    session = requests.Session()
    sleeps: list[float] = []
    config = PrometheusConfig(url="http://prom.test:9090", backoff_initial_s=1, backoff_max_s=4, **cfg)
    client = PrometheusClient(config, session=session, sleep=sleeps.append)
    # prometheus-api-client mounts its own adapter at the URL; ours replaces it there.
    session.mount(config.url, transport)
    return client, transport, sleeps


@pytest.mark.parametrize(
    "script, error, text",
    [
        pytest.param([(401, b"Unauthorized")], PrometheusAuthError, "HTTP 401", id="401"),
        pytest.param([(403, b"Forbidden")], PrometheusAuthError, "HTTP 403", id="403"),
        pytest.param(
            [(400, {"status": "error", "errorType": "bad_data",
                    "error": 'invalid parameter "query": 1:5: parse error: unexpected <EOF>'})],
            PrometheusQueryError, "bad_data: invalid parameter \"query\": 1:5: parse error", id="400-bad-promql",
        ),
        pytest.param(
            [(422, {"status": "error", "errorType": "execution", "error": "many-to-many matching not allowed"})],
            PrometheusQueryError, "many-to-many", id="422-execution",
        ),
    ],
)
def test_status_maps_to_error_without_retry(script, error, text):
    client, transport, sleeps = client_with(script)
    with pytest.raises(error, match=text):
        client.query_range("sum(rate(x[1m]))", 0, 600, 60)
    assert len(transport.requests) == 1 and sleeps == []


def test_query_error_names_the_query():
    client, _, _ = client_with([(400, {"status": "error", "errorType": "bad_data", "error": "parse error"})])
    with pytest.raises(PrometheusQueryError) as info:
        client.query_range("sum(rate(x[1m]", 0, 600, 60)
    assert info.value.query == "sum(rate(x[1m]" and info.value.prometheus_error == "bad_data: parse error"


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(requests.ConnectionError("refused"), id="connection-refused"),
        pytest.param(requests.ReadTimeout("slow"), id="timeout"),
        pytest.param((503, b"Service Unavailable"), id="503"),
    ],
)
def test_transient_failures_are_retried_with_backoff_then_succeed(failure):
    client, transport, sleeps = client_with([failure, failure, OK_RANGE], retries=3)
    assert client.query_range("up", 0, 600, 60) == []
    assert len(transport.requests) == 3
    assert sleeps == [1.0, 2.0]  # exponential backoff from backoff_initial_s


def test_retries_run_out_into_unreachable():
    client, transport, sleeps = client_with([requests.ConnectionError("refused")], retries=2)
    with pytest.raises(PrometheusUnreachable, match="cannot reach Prometheus at http://prom.test:9090"):
        client.query("up", 0)
    assert len(transport.requests) == 3 and sleeps == [1.0, 2.0]


def test_backoff_is_capped():
    client, _, sleeps = client_with([(502, b"bad gateway")], retries=5)
    with pytest.raises(PrometheusUnreachable, match="HTTP 502"):
        client.query("up", 0)
    assert sleeps == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_bearer_token_is_sent_as_header(tmp_path):
    (tmp_path / "token").write_text("tok-123\n")
    client, transport, _ = client_with([OK_RANGE], bearer_token_file=tmp_path / "token")
    client.query_range("up", 0, 60, 60)
    assert transport.requests[0].headers["Authorization"] == "Bearer tok-123"


def test_basic_auth_is_sent(monkeypatch):
    monkeypatch.setenv("PW", "pw-456")
    client, transport, _ = client_with([OK_RANGE], username="me", password_env="PW")
    client.query_range("up", 0, 60, 60)
    assert transport.requests[0].headers["Authorization"].startswith("Basic ")
