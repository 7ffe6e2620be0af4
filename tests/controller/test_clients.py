"""The HTTP clients of the controller's edges: live metrics (Prometheus API) and the forecaster."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.errors import ForecastUnavailable, MetricsUnavailable
from controller.forecast_client import HttpForecastClient
from controller.live_metrics import (
    PrometheusLiveMetrics,
    default_signal_query,
    name_matcher,
    regex_literal,
    selector_matchers,
)
from controller.reconcile import parse_equality_selector, pod_condition
from forecaster.contract import WorkloadForecast
from tests.misbehaving import MisbehavingServer, hang, trickle

from .fakes import flat_then_peak


@pytest.mark.parametrize(
    ("name", "matches", "rejects"),
    [
        pytest.param("vllm:num_requests_running", ["vllm:num_requests_running", "vllm_num_requests_running"],
                     ["vllmXnum_requests_running", "vllm:num_requests_running_total"], id="colon-or-underscore"),
        pytest.param("vllm:kv_cache_usage_perc", ["vllm_kv_cache_usage_perc"], ["vllm:gpu_cache_usage_perc"],
                     id="kv-cache"),
    ],
)
def test_name_matcher_matches_both_spellings(name, matches, rejects) -> None:
    import re

    pattern = re.compile(name_matcher(name))
    assert all(pattern.fullmatch(m) for m in matches)
    assert not any(pattern.fullmatch(r) for r in rejects)


def test_selector_matchers() -> None:
    selector = {"matchLabels": {"model_name": 'a"b'},
                "matchExpressions": [{"key": "engine", "operator": "In", "values": ["0", "1"]},
                                     {"key": "x", "operator": "DoesNotExist"}]}
    assert selector_matchers(selector) == ['model_name="a\\"b"', 'engine=~"0|1"', 'x=""']


def _prom(handler) -> PrometheusLiveMetrics:
    return PrometheusLiveMetrics("http://prom", transport=httpx.MockTransport(handler))


def test_pod_values_query_and_parse() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params["query"])
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"pod": "a"}, "value": [1, "3.5"]}, {"metric": {"pod": "b"}, "value": [1, "NaN"]},
            {"metric": {}, "value": [1, "1"]}]}})

    values = _prom(handler).pod_values("vllm:num_requests_waiting", "llm")
    assert values == {"a": 3.5}, "NaN samples and series without a pod label are left out"
    assert seen == ['max by (pod) ({__name__=~"vllm[:_]num_requests_waiting", namespace="llm"})']


@pytest.mark.parametrize(
    ("response", "message"),
    [
        pytest.param(httpx.Response(400, json={"status": "error", "errorType": "bad_data", "error": "parse error"}),
                     "bad_data parse error", id="bad-promql"),
        pytest.param(httpx.Response(503, text="<html>down</html>"), "not JSON", id="not-json"),
        pytest.param(httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix", "result": []}}),
                     "expected a vector", id="wrong-type"),
    ],
)
def test_prometheus_errors_are_metrics_unavailable(response, message) -> None:
    with pytest.raises(MetricsUnavailable, match=message):
        _prom(lambda request: response).pod_values("m", "ns")


def test_prometheus_unreachable() -> None:
    def handler(request):
        raise httpx.ConnectError("refused")
    with pytest.raises(MetricsUnavailable, match="ConnectError"):
        _prom(handler).rate("sum(x)")


def test_default_signal_query() -> None:
    q = default_signal_query("output_tokens", "llm", ["b-1", "a.0"], 30)
    # The regex is a\.0|b-1 (RE2 needs no escape for "-"); in a PromQL string its backslash is doubled.
    assert q == 'sum(rate({__name__=~"vllm[:_]generation_tokens_total", namespace="llm", pod=~"a\\\\.0|b-1"}[60s]))'


def _forecast_json(workload="chat") -> bytes:
    now = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)
    f = flat_then_peak(now, base=1, peak=2, peak_from_s=0, peak_to_s=60, bins=3, workload=workload)
    return WorkloadForecast(workload=workload, forecasts={"requests": f}).model_dump_json().encode()


def test_forecast_client_reads_the_contract() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, dict(request.url.params), request.headers.get("authorization")))
        return httpx.Response(200, content=_forecast_json())

    client = HttpForecastClient("http://f/", token="s3cret", transport=httpx.MockTransport(handler))
    got = client.get("chat", horizon_seconds=1800, quantiles=[0.9, 0.5], step_seconds=60)
    assert got.forecasts["requests"].points[0].quantile(0.9) == pytest.approx(2.2)
    assert seen == [("/v1/workloads/chat/forecast", {"horizon": "1800s", "quantiles": "0.9,0.5", "step": "60s"},
                     "Bearer s3cret")]


@pytest.mark.parametrize(
    ("response", "message"),
    [
        pytest.param(httpx.Response(503, text="warming up"), "HTTP 503", id="503"),
        pytest.param(httpx.Response(200, content=b'{"workload": "chat"}'), "not a WorkloadForecast", id="bad-body"),
        pytest.param(httpx.Response(200, content=_forecast_json("other")), "answered for workload 'other'",
                     id="wrong-workload"),
    ],
)
def test_forecast_client_errors(response, message) -> None:
    client = HttpForecastClient("http://f", transport=httpx.MockTransport(lambda r: response))
    with pytest.raises(ForecastUnavailable, match=message):
        client.get("chat", horizon_seconds=600, quantiles=[0.9])


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        pytest.param({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}, "Ready",
                     id="ready"),
        pytest.param({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}}, "Unready",
                     id="loading-weights"),
        pytest.param({"status": {"phase": "Pending"}}, "Unready", id="pending"),
        pytest.param({"metadata": {"deletionTimestamp": "x"}, "status": {"phase": "Running"}}, "Ignored",
                     id="deleting"),
        pytest.param({"status": {"phase": "Failed"}}, "Ignored", id="failed"),
    ],
)
def test_pod_condition(pod, expected) -> None:
    assert pod_condition(pod) == expected


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param("app=vllm,tier=gpu", {"app": "vllm", "tier": "gpu"}, id="equality"),
        pytest.param("app==vllm", {"app": "vllm"}, id="double-equals"),
        pytest.param("app!=vllm", None, id="inequality"),
        pytest.param("app in (a,b)", None, id="set-based"),
    ],
)
def test_parse_equality_selector(selector, expected) -> None:
    assert parse_equality_selector(selector) == expected


def test_an_unreachable_api_server_is_kube_unavailable() -> None:
    import socket

    from kubernetes import client as k8s

    from controller.errors import KubeUnavailable
    from controller.kube import KubeClient, TargetRef

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    configuration = k8s.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    configuration.retries = False
    kube = KubeClient(k8s.ApiClient(configuration), timeout=0.5)
    with pytest.raises(KubeUnavailable) as err:
        kube.get_scale("default", TargetRef("apps/v1", "Deployment", "vllm"))
    assert err.value.status == 0 and "/deployments/vllm/scale" in str(err.value)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30),
       st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_regex_literal_matches_exactly_its_value(value: str, other: str) -> None:
    import re

    pattern = re.compile(regex_literal(value), re.DOTALL)
    assert pattern.fullmatch(value)
    assert bool(pattern.fullmatch(other)) == (other == value)
    # Only RE2's metacharacters are escaped: a backslash never precedes a letter, digit, "-" or ":".
    assert not re.search(r"\\[A-Za-z0-9:\-_ ]", regex_literal(value).replace("\\\\", ""))


@pytest.mark.parametrize("behave", [pytest.param(hang, id="never-answers"), pytest.param(trickle, id="trickles")])
def test_a_live_query_ends_by_its_deadline(behave) -> None:
    """The sync loop waits on these queries: a trickling Prometheus must not stall it (issue 18)."""
    import time

    server = MisbehavingServer(behave)
    try:
        live = PrometheusLiveMetrics(server.url, timeout=1.0, deadline=1.5)
        start = time.monotonic()
        with pytest.raises(MetricsUnavailable, match="Timeout|deadline"):
            live.pod_values("vllm:num_requests_running", "llm")
        assert time.monotonic() - start < 4.0
    finally:
        server.close()


def test_the_forecast_token_file_is_read_for_each_request(tmp_path) -> None:
    """A mounted Secret is updated in place by the kubelet: a rotated token is sent without a restart."""
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, content=_forecast_json())

    client = HttpForecastClient("http://forecaster", token_file=str(token_file), transport=httpx.MockTransport(handler))
    client.get("chat", horizon_seconds=600, quantiles=[0.9])
    token_file.write_text("second")
    client.get("chat", horizon_seconds=600, quantiles=[0.9])
    assert seen == ["Bearer first", "Bearer second"]
    token_file.write_text("")
    with pytest.raises(ForecastUnavailable, match="token file .* is empty"):
        client.get("chat", horizon_seconds=600, quantiles=[0.9])
    token_file.unlink()
    with pytest.raises(ForecastUnavailable, match="cannot read the token file"):
        client.get("chat", horizon_seconds=600, quantiles=[0.9])
