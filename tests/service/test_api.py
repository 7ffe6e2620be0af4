"""The REST API on a real uvicorn on loopback: answers, errors (404/422/503), auth."""

from __future__ import annotations

import math
from datetime import datetime

import httpx
import pytest

from forecaster.contract import Forecast, WorkloadForecast
from forecaster.service.cache import forecast_value
from tests.service.conftest import TOKEN


@pytest.fixture(scope="module")
def client(live):
    with httpx.Client(base_url=live.url, timeout=10) as c:
        yield c


def test_health_and_ready(client):
    assert client.get("/healthz").json() == {"status": "ok", "detail": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["detail"]["m-small"]["serving"].keys() == {"requests", "output_tokens"}


def test_list_workloads(client, service):
    body = client.get("/v1/workloads").json()
    assert [w["name"] for w in body] == ["m-small"]
    w = body[0]
    assert w["ready"] and w["step_seconds"] == 600 and w["namespace"] == "llm"
    assert set(w["serving"]) == {"requests", "output_tokens"}


def test_forecast_is_a_workload_forecast_sliced_to_the_horizon(client, clock):
    response = client.get("/v1/workloads/m-small/forecast", params={"horizon": "1h", "quantiles": "0.9"})
    assert response.status_code == 200
    forecast = WorkloadForecast.model_validate(response.json())
    requests = forecast.forecasts["requests"]
    # Every bin overlapping [12:03, 13:03): 12:03 lies in the 12:00 bin, 13:03 in the 13:00 one.
    assert [p.timestamp.strftime("%H:%M") for p in requests.points] == [
        "12:00", "12:10", "12:20", "12:30", "12:40", "12:50", "13:00"]
    assert all(set(p.quantiles) == {"0.9"} for p in requests.points)
    assert all(p.quantiles["0.9"] >= 0 for p in requests.points)


def test_forecast_step_takes_mean_of_means_and_max_of_quantiles(client):
    fine = Forecast.model_validate(client.get(
        "/v1/workloads/m-small/forecast/requests", params={"horizon": "1h"}).json())
    coarse = Forecast.model_validate(client.get(
        "/v1/workloads/m-small/forecast/requests", params={"horizon": "1h", "step": "30m"}).json())
    # Fine bins 12:00 .. 13:00 group into 30-minute bins 12:00, 12:30 and 13:00 (epoch-aligned).
    assert coarse.step_seconds == 1800
    assert [p.timestamp.strftime("%H:%M") for p in coarse.points] == ["12:00", "12:30", "13:00"]
    first = fine.points[:3]
    assert coarse.points[0].mean == pytest.approx(sum(p.mean for p in first) / 3)
    assert coarse.points[0].quantiles["0.95"] == max(p.quantiles["0.95"] for p in first)


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        pytest.param("/v1/workloads/m-small/forecast", {"horizon": "soon"}, "horizon", id="horizon-unparsable"),
        pytest.param("/v1/workloads/m-small/forecast", {"horizon": "3d"}, "horizon", id="horizon-too-long"),
        pytest.param("/v1/workloads/m-small/forecast", {"horizon": "-1h"}, "horizon", id="horizon-negative"),
        pytest.param("/v1/workloads/m-small/forecast", {"step": "15m"}, "step", id="step-not-multiple"),
        pytest.param("/v1/workloads/m-small/forecast", {"quantiles": "0.5,abc"}, "quantiles", id="quantile-nan"),
        pytest.param("/v1/workloads/m-small/forecast", {"quantiles": "1.5"}, "quantiles", id="quantile-range"),
        pytest.param("/v1/workloads/m-small/forecast", {"quantiles": "0.3"}, "quantiles", id="quantile-unserved"),
        pytest.param("/v1/workloads/m-small/forecast/prompt_tokens", {}, "signal", id="signal-unconfigured"),
        pytest.param("/v1/workloads/m-small/decisions", {"limit": "0"}, "limit", id="limit-zero"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(client, path, params, field):
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    assert [e["loc"][-1] for e in response.json()["detail"]] == [field]


@pytest.mark.parametrize("path", [
    pytest.param("/v1/workloads/nope", id="workload"),
    pytest.param("/v1/workloads/nope/forecast", id="forecast"),
    pytest.param("/v1/workloads/nope/cards", id="cards"),
    pytest.param("/v1/keda/nope", id="keda"),
])
def test_unknown_workload_is_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "unknown workload 'nope'" in response.json()["detail"]


def test_cards_and_decisions_record_the_choice(client):
    cards = client.get("/v1/workloads/m-small/cards").json()
    assert set(cards) == {"requests", "output_tokens"}
    card = cards["requests"]
    # The registry's ModelCard: the selection records the objective and the replacement decision.
    assert card["selection"]["objective"].startswith("pinball[0.9]@") and len(card["artifact_sha256"]) == 64
    assert card["selection"]["selected"] == card["model"] and card["selection"]["outcome"] == "accepted"
    assert card["selection"]["replaces"] is None and card["backtest"]["objective_scores"]
    decisions = client.get("/v1/workloads/m-small/decisions").json()
    assert {d["signal"] for d in decisions} == {"requests", "output_tokens"}
    assert all(d["outcome"] == "accepted" for d in decisions[:2])


def test_retrain_is_accepted_with_202(client, service):
    response = client.post("/v1/workloads/m-small/retrain")
    assert response.status_code == 202
    assert response.json()["workload"] == "m-small"
    assert service.state.scheduler.workloads["m-small"].retrain_requested
    assert client.post("/v1/workloads/nope/retrain").status_code == 404


def test_keda_metrics_api_value_matches_the_external_metric(client, service, clock):
    body = client.get("/v1/keda/m-small", params={"metric": "prescaler-forecast-requests"}).json()
    entry = service.state.cache.get("m-small")
    expected = forecast_value(entry, service.state.workload("m-small"), "requests", clock())
    assert body["value"] == pytest.approx(expected)
    replicas = client.get("/v1/keda/m-small").json()["value"]
    assert replicas == max(1, min(20, math.ceil(expected / 400.0 / 0.8)))
    assert client.get("/v1/keda/m-small", params={"metric": "cpu"}).status_code == 404


def test_metrics_endpoint_uses_its_own_registry(client):
    client.get("/v1/workloads")
    text = client.get("/metrics").text
    assert 'prescaler_forecaster_http_requests_total{code="200",route="/v1/workloads"}' in text
    assert ('prescaler_forecaster_retrain_decisions_total'
            '{outcome="accepted",signal="requests",workload="m-small"}') in text
    assert "prescaler_forecaster_forecast_age_seconds" in text
    assert "python_gc_objects_collected_total" not in text  # not the global default registry


def test_openapi_documents_the_routes(client):
    spec = client.get("/openapi.json").json()
    assert "/v1/workloads/{name}/forecast" in spec["paths"]
    assert "/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}" in spec["paths"]
    assert client.get("/docs").status_code == 200
    # /cards answers registry ModelCards, documented field by field (not as an opaque object).
    cards = spec["paths"]["/v1/workloads/{name}/cards"]["get"]["responses"]["200"]["content"]
    assert cards["application/json"]["schema"]["additionalProperties"] == {"$ref": "#/components/schemas/ModelCard"}
    card_properties = spec["components"]["schemas"]["ModelCard"]["properties"]
    assert {"version", "artifact_sha256", "selection", "backtest"} <= set(card_properties)


def test_before_the_first_model_forecasts_are_503_with_retry_after(untrained):
    service, server = untrained
    with httpx.Client(base_url=server.url) as c:
        for path in ["/v1/workloads/m-small/forecast", "/v1/keda/m-small",
                     "/apis/external.metrics.k8s.io/v1beta1/namespaces/llm/prescaler-desired-replicas"]:
            response = c.get(path)
            assert response.status_code == 503, path
            assert int(response.headers["Retry-After"]) >= 1
        ready = c.get("/readyz")
        assert ready.status_code == 503 and ready.headers["Retry-After"]
        assert c.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 401, id="missing"),
        pytest.param({"Authorization": "Bearer wrong"}, 401, id="wrong"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, 401, id="not-bearer"),
        pytest.param({"Authorization": f"Bearer {TOKEN}"}, 200, id="accepted"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/workloads", "/apis/external.metrics.k8s.io/v1beta1"])
def test_bearer_token(secured_live, headers, status, path):
    response = httpx.get(secured_live.url + path, headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_health_needs_no_token(secured_live):
    assert httpx.get(secured_live.url + "/healthz").status_code == 200
    assert httpx.get(secured_live.url + "/readyz").status_code == 200


def test_generated_at_is_the_refresh_time(client, clock):
    forecast = Forecast.model_validate(client.get("/v1/workloads/m-small/forecast/requests").json())
    assert forecast.generated_at == clock() and isinstance(forecast.generated_at, datetime)
