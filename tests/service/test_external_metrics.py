"""external.metrics.k8s.io/v1beta1 as the official kubernetes client reads it, plus its pure parts."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes import client as k8s

from forecaster.contract import Forecast, ForecastPoint, WorkloadForecast
from forecaster.service.cache import CachedForecast, forecast_value
from forecaster.service.config import parse_config
from forecaster.service.external_metrics import SelectorError, parse_selector, quantity, selector_matches
from forecaster.service.server import build_service
from tests.service.conftest import T0, FakeClock, LiveServer, config_dict

BASE = "/apis/external.metrics.k8s.io/v1beta1"


@pytest.fixture(scope="module")
def api(live):
    configuration = k8s.Configuration()
    configuration.host = live.url
    with k8s.ApiClient(configuration) as api_client:
        yield api_client


def call(api, path, query=None):
    """GET through the client's own request pipeline (kubernetes 37: param_serialize, call_api,
    response_deserialize with response type "object"), as a generated API method does."""
    method, url, headers, body, post = api.param_serialize(
        "GET", path, query_params=query or [], auth_settings=["BearerToken"],
    )
    response = api.call_api(method, url, header_params=headers, body=body, post_params=post)
    response.read()
    result = api.response_deserialize(response, {"200": "object", "4XX": "object", "5XX": "object"})
    return result.data, result.status_code


def test_discovery(api):
    groups, status = call(api, "/apis")
    assert status == 200 and groups["kind"] == "APIGroupList"
    group = groups["groups"][0]
    assert group["name"] == "external.metrics.k8s.io"
    assert group["preferredVersion"]["groupVersion"] == "external.metrics.k8s.io/v1beta1"
    resources, _ = call(api, BASE)
    assert resources["kind"] == "APIResourceList"
    assert resources["groupVersion"] == "external.metrics.k8s.io/v1beta1"
    names = {r["name"] for r in resources["resources"]}
    assert names == {"prescaler-desired-replicas", "prescaler-forecast-requests",
                     "prescaler-forecast-output-tokens"}
    assert all(r["namespaced"] and r["verbs"] == ["get"] for r in resources["resources"])


def test_desired_replicas_one_item_per_workload(api, service, clock):
    body, status = call(api, f"{BASE}/namespaces/llm/prescaler-desired-replicas",
                        [("labelSelector", "workload=m-small")])
    assert status == 200
    assert body["kind"] == "ExternalMetricValueList"
    assert body["apiVersion"] == "external.metrics.k8s.io/v1beta1"
    (item,) = body["items"]
    assert item["metricName"] == "prescaler-desired-replicas"
    assert item["metricLabels"] == {"workload": "m-small", "model_name": "m-small", "team": "inference",
                                    "namespace": "llm"}
    # seasonal_naive_daily on the shipped trace: q0.9 of requests over [12:08, 12:09] (the 12:00
    # bin) is 2283.053 req/s (the forecast metric below); 2283.053 / 400 per replica / 0.8 = 7.13 -> 8.
    assert item["value"] == "8"
    assert item["timestamp"].endswith("Z")
    forecast, _ = call(api, f"{BASE}/namespaces/llm/prescaler-forecast-requests",
                       [("labelSelector", "workload=m-small")])
    assert forecast["items"][0]["value"] == "2283053m"


def _flat(signal: str, q90: float) -> Forecast:
    start = T0.replace(minute=0)
    points = [ForecastPoint(timestamp=start + timedelta(minutes=m), mean=q90, quantiles={"0.9": q90})
              for m in range(60)]
    return Forecast(workload="w", signal=signal, model="test", generated_at=start, step_seconds=60, points=points)


@pytest.fixture(scope="module")
def handmade(tmp_path_factory):
    """The service over real HTTP with hand-made forecasts in its cache: 8 req/s and 3,000 output
    tok/s, for two workloads with the example config's capacity, one per `combine`."""
    data = config_dict(tmp_path_factory.mktemp("handmade"))
    base = data["workloads"][0]
    capacity = {"per_replica": {"requests": 4.0, "output_tokens": 2500.0}, "target_utilization": 0.8,
                "min_replicas": 1, "max_replicas": 20}
    data["workloads"] = [
        {**base, "name": name, "model_name": name, "bin": "1m", "capacity": {**capacity, "combine": combine}}
        for name, combine in (("max-wl", "Max"), ("sum-wl", "Sum"))
    ]
    service = build_service(parse_config(data, "test"), clock=FakeClock(), executor=ThreadPoolExecutor(1),
                            run_scheduler=False)
    for name in ("max-wl", "sum-wl"):
        forecasts = {"requests": _flat("requests", 8.0), "output_tokens": _flat("output_tokens", 3000.0)}
        service.state.cache.put(name, CachedForecast(WorkloadForecast(workload=name, forecasts=forecasts), T0, {}))
    server = LiveServer(service.app)
    configuration = k8s.Configuration()
    configuration.host = server.url
    with k8s.ApiClient(configuration) as api_client:
        yield api_client
    server.close()


@pytest.mark.parametrize(
    ("workload", "replicas"),
    [
        # 8 / 4 = 2 and 3000 / 2500 = 1.2 replicas' worth: the controller's Max, 2 / 0.8 = 2.5 -> 3
        # (before issue 15 the endpoint always summed: 3.2 / 0.8 = 4).
        pytest.param("max-wl", "3", id="max-like-the-controller"),
        pytest.param("sum-wl", "4", id="sum-when-configured"),
    ],
)
def test_desired_replicas_is_the_controllers_capacity_model(handmade, workload, replicas):
    body, status = call(handmade, f"{BASE}/namespaces/llm/prescaler-desired-replicas",
                        [("labelSelector", f"workload={workload}")])
    assert status == 200
    (item,) = body["items"]
    assert item["value"] == replicas


def test_forecast_metric_is_the_window_max_as_a_quantity(api, service, clock):
    body, _ = call(api, f"{BASE}/namespaces/llm/prescaler-forecast-requests")
    (item,) = body["items"]
    value = forecast_value(service.state.cache.get("m-small"), service.state.workload("m-small"), "requests", clock())
    assert item["value"] == quantity(value)
    assert item["value"].endswith("m") or item["value"].isdigit()


@pytest.mark.parametrize(
    ("namespace", "selector", "count"),
    [
        pytest.param("llm", None, 1, id="no-selector"),
        pytest.param("llm", "workload=m-small,team=inference", 1, id="two-labels"),
        pytest.param("llm", "model_name in (m-small,m-large)", 1, id="set-in"),
        pytest.param("llm", "workload!=m-small", 0, id="not-equal"),
        pytest.param("llm", "workload=other", 0, id="other-workload"),
        pytest.param("llm", "!team", 0, id="not-exists"),
        pytest.param("other-ns", None, 0, id="other-namespace"),
    ],
)
def test_label_selector_matching(api, namespace, selector, count):
    query = [("labelSelector", selector)] if selector else []
    body, status = call(api, f"{BASE}/namespaces/{namespace}/prescaler-desired-replicas", query)
    assert status == 200 and len(body["items"]) == count


def test_unknown_metric_is_a_404_status(api):
    with pytest.raises(k8s.ApiException) as caught:
        call(api, f"{BASE}/namespaces/llm/cpu-usage")
    assert caught.value.status == 404
    assert caught.value.data["kind"] == "Status" and caught.value.data["code"] == 404


def test_bad_selector_is_a_400_status(api):
    with pytest.raises(k8s.ApiException) as caught:
        call(api, f"{BASE}/namespaces/llm/prescaler-desired-replicas", [("labelSelector", "a in (b")])
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        pytest.param("a=1", {"a": "1"}, True, id="eq"),
        pytest.param("a==1", {"a": "1"}, True, id="double-eq"),
        pytest.param("a=1", {}, False, id="eq-missing"),
        pytest.param("a!=1", {}, True, id="ne-missing"),
        pytest.param("a in (1, 2)", {"a": "2"}, True, id="in"),
        pytest.param("a notin (1,2)", {"a": "3"}, True, id="notin"),
        pytest.param("a notin (1,2)", {}, True, id="notin-missing"),
        pytest.param("a", {"a": ""}, True, id="exists"),
        pytest.param("!a", {"a": "x"}, False, id="not-exists"),
        pytest.param("a in (1,2),b=x", {"a": "1", "b": "x"}, True, id="comma-inside-parens"),
        pytest.param("example.com/tier=gpu", {"example.com/tier": "gpu"}, True, id="prefixed-key"),
    ],
)
def test_selector_semantics(selector, labels, expected):
    assert selector_matches(parse_selector(selector), labels) is expected


@pytest.mark.parametrize("selector", ["a in ()", "a in (b", "a)", "a=b,", "=b", "a b c"])
def test_selector_errors(selector):
    with pytest.raises(SelectorError, match="labelSelector"):
        parse_selector(selector)


@pytest.mark.parametrize(("value", "text"), [
    pytest.param(1.5, "1500m", id="milli"), pytest.param(2.0, "2", id="whole"),
    pytest.param(0.0, "0", id="zero"), pytest.param(0.0004, "1m", id="rounds-up"),
    pytest.param(1234.5678, "1234568m", id="large"),
])
def test_quantity_table(value, text):
    assert quantity(value) == text


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_quantity_never_under_states_and_is_within_a_milli(value):
    text = quantity(value)
    parsed = Decimal(text[:-1]) / 1000 if text.endswith("m") else Decimal(text)
    assert parsed >= Decimal(repr(value))
    assert parsed - Decimal(repr(value)) <= Decimal("0.001")
    assert math.isfinite(float(parsed))
