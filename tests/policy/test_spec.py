"""The spec models: Kubernetes quantities and durations, HPA validation rules, cross-field checks."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from controller.policy.spec import (
    QUANTITY_PATTERN,
    PredictiveAutoscalerSpec,
    format_duration_seconds,
    format_quantity,
    parse_duration_seconds,
    parse_quantity,
)
from tests.policy.builders import CAPACITY, forecast_spec, make_spec, pods_metric, predictive_spec


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("500m", 0.5, id="milli"), pytest.param("2", 2.0, id="integer"),
        pytest.param("1.5", 1.5, id="decimal"), pytest.param("1Gi", 2.0**30, id="binary-suffix"),
        pytest.param("1k", 1000.0, id="kilo"), pytest.param("1e3", 1000.0, id="exponent"),
        pytest.param("2E-2", 0.02, id="negative-exponent"), pytest.param("100u", 1e-4, id="micro"),
        pytest.param(".5", 0.5, id="leading-dot"), pytest.param(3, 3.0, id="json-number"),
    ],
)
def test_quantity_parses(text, value) -> None:
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "abc", "1 m", "1mi", "1.2.3", "--1", "1e", "1KB", True, None, [1]])
def test_quantity_rejects_with_example(text) -> None:
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity(text)


@given(st.floats(min_value=1e-6, max_value=1e12, allow_nan=False))
def test_quantity_formats_back_within_the_crd_pattern(value) -> None:
    import re

    written = format_quantity(value)
    assert re.fullmatch(QUANTITY_PATTERN, str(written))
    assert parse_quantity(written) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "seconds", "back"),
    [
        pytest.param("15s", 15.0, "15s", id="seconds"), pytest.param("5m", 300.0, "5m", id="minutes"),
        pytest.param("1h30m", 5400.0, "1h30m", id="compound"), pytest.param("300s", 300.0, "5m", id="normalised"),
        pytest.param("500ms", 0.5, "500ms", id="millis"), pytest.param("0", 0.0, "0", id="zero"),
        pytest.param("1.5h", 5400.0, "1h30m", id="fractional"),
        # d and w: the one grammar (forecaster.contract.durations) shared with the service config.
        pytest.param("1d", 86400.0, "24h", id="days"), pytest.param("1w2d", 777600.0, "216h", id="weeks"),
    ],
)
def test_duration_round_trip(text, seconds, back) -> None:
    assert parse_duration_seconds(text) == seconds
    assert format_duration_seconds(seconds) == back


@pytest.mark.parametrize("text", ["5", "5 m", "5min", "1y", "-5m", "m", "5m3", "5M", True])
def test_duration_rejects(text) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration_seconds(text)


def errors_of(**fields) -> str:
    with pytest.raises(ValidationError) as info:
        make_spec(**fields)
    return str(info.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"minReplicas": 3, "maxReplicas": 2}, "maxReplicas (2) must be >= minReplicas (3)",
                     id="max-lt-min"),
        pytest.param({"minReplicas": 0}, "greater than or equal to 1", id="min-at-least-1"),
        pytest.param({"metrics": []}, "at least 1 item", id="metrics-required"),
        pytest.param({"metrics": [{"type": "Pods", "external": {"metric": {"name": "x"},
                                                                 "target": {"type": "Value", "value": 1}}}]},
                     "metric type Pods needs the field pods", id="type-needs-its-source"),
        pytest.param({"metrics": [dict(pods_metric(), external={"metric": {"name": "x"},
                                                               "target": {"type": "Value", "value": 1}})]},
                     "metric type Pods must not set external", id="only-its-source"),
        pytest.param({"metrics": [{"type": "Pods", "pods": {"metric": {"name": "x"},
                                                            "target": {"type": "Value", "value": 1}}}]},
                     "a Pods metric takes target type AverageValue, not Value", id="pods-average-value-only"),
        pytest.param({"metrics": [{"type": "External", "external": {"metric": {"name": "x"},
                                                                    "target": {"type": "Utilization",
                                                                               "averageUtilization": 50}}}]},
                     "takes target type Value or AverageValue", id="external-no-utilization"),
        pytest.param({"metrics": [pods_metric(average_value="-1")]}, "target.averageValue must be positive",
                     id="target-positive"),
        pytest.param({"metrics": [{"type": "Pods",
                                   "pods": {"metric": {"name": "x"}, "target": {"type": "AverageValue"}}}]},
                     "target type AverageValue needs target.averageValue", id="target-field-required"),
        pytest.param({"metrics": [pods_metric(average_value="ten")]}, "'ten' is not a Kubernetes quantity",
                     id="quantity-message"),
        pytest.param({"behavior": {"scaleUp": {"stabilizationWindowSeconds": 3601}}}, "less than or equal to 3600",
                     id="window-max-3600"),
        pytest.param({"behavior": {"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 1801}]}}},
                     "less than or equal to 1800", id="period-max-1800"),
        pytest.param({"behavior": {"scaleDown": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 60}]}}},
                     "greater than 0", id="policy-value-positive"),
        pytest.param({"behavior": {"scaleDown": {"policies": []}}}, "at least one policy", id="empty-policies"),
        pytest.param({"behavior": {"scaleDown": {"selectPolicy": "Average"}}}, "'Max', 'Min' or 'Disabled'",
                     id="select-policy-enum"),
        pytest.param({"behavior": {"scaleUp": {"tolerance": "-0.1"}}}, "tolerance must be >= 0", id="tolerance-sign"),
        pytest.param({"forecast": forecast_spec()}, "forecast needs capacity", id="forecast-needs-capacity"),
        pytest.param({"forecast": forecast_spec(signals=[{"name": "output_tokens"}]),
                      "capacity": {"perReplica": {"requestsPerSecond": 4}}},
                     "forecast.signals[0] (output_tokens) has no capacity.perReplica.outputTokensPerSecond",
                     id="signal-needs-capacity"),
        pytest.param({"forecast": forecast_spec(horizon="5m"), "capacity": CAPACITY},
                     "forecast.horizon (5m) must be >= leadTime (5m) + forecast.interval (1m)",
                     id="horizon-covers-lead"),
        pytest.param({"forecast": forecast_spec(signals=[{"name": "requests"}, {"name": "requests"}]),
                      "capacity": CAPACITY}, "forecast.signals lists requests more than once", id="duplicate-signal"),
        pytest.param({"capacity": {"perReplica": {}}}, "perReplica needs at least one of", id="capacity-one-rate"),
        pytest.param({"capacity": {"perReplica": {"requestsPerSecond": 4}, "targetUtilization": 1.5}},
                     "less than or equal to 1", id="utilization-le-1"),
        pytest.param({"forecast": forecast_spec(quantile=1.0), "capacity": CAPACITY}, "less than 1",
                     id="quantile-lt-1"),
        pytest.param({"leadTime": "5 minutes"}, "or \"auto\"", id="lead-time-message"),
        pytest.param({"mode": "auto"}, "'Auto', 'Advisory' or 'Off'", id="mode-enum"),
        pytest.param({"maxReplica": 3}, "Extra inputs are not permitted", id="typo-rejected"),
    ],
)
def test_spec_validation_names_what_is_wrong(fields, message) -> None:
    assert message in errors_of(**fields)


def test_defaults() -> None:
    spec = predictive_spec()
    assert (spec.min_replicas, spec.mode, spec.sync_period_seconds, spec.lead_time) == (1, "Auto", 15.0, 300.0)
    f = spec.forecast
    assert (f.model, f.quantile, f.max_age_seconds, f.max_live_error, f.interval_seconds, f.horizon_seconds) == \
        ("auto", 0.9, 600.0, 0.5, 60.0, 1800.0)
    assert spec.capacity.target_utilization == 0.8 and spec.capacity.combine == "Max"
    assert spec.behavior is None  # absent stays absent: the HPA's older path (see behavior.py)


def test_lead_time_auto_skips_horizon_check() -> None:
    spec = predictive_spec(leadTime="auto", forecast=forecast_spec(horizon="1m"))
    assert spec.lead_time == "auto"


def test_snake_case_names_are_accepted_too() -> None:
    spec = PredictiveAutoscalerSpec(scale_target_ref={"kind": "Deployment", "name": "x"}, max_replicas=3,
                                    metrics=[pods_metric()], sync_period_seconds=30)
    assert spec.sync_period_seconds == 30.0


def test_json_dump_round_trips_and_is_kubernetes_shaped() -> None:
    spec = predictive_spec([pods_metric(average_value="500m")], behavior={"scaleUp": {"tolerance": "50m"}},
                           leadTime="2m30s")
    dumped = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped["leadTime"] == "2m30s" and dumped["syncPeriod"] == "15s"
    assert dumped["metrics"][0]["pods"]["target"]["averageValue"] == "0.5"
    assert dumped["behavior"]["scaleUp"]["tolerance"] == "0.05"
    assert dumped["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert PredictiveAutoscalerSpec.model_validate(json.loads(json.dumps(dumped))) == spec


def test_json_schema_carries_the_constraints() -> None:
    schema = PredictiveAutoscalerSpec.model_json_schema(by_alias=True)
    defs = schema["$defs"]
    assert set(schema["required"]) == {"scaleTargetRef", "maxReplicas", "metrics"}
    assert schema["properties"]["leadTime"]["default"] == "5m"
    assert schema["properties"]["mode"]["enum"] == ["Auto", "Advisory", "Off"]
    rules = defs["HPAScalingRules"]["properties"]
    assert rules["stabilizationWindowSeconds"]["anyOf"][0]["maximum"] == 3600
    assert defs["HPAScalingPolicy"]["properties"]["periodSeconds"]["maximum"] == 1800
    assert defs["MetricSpec"]["properties"]["type"]["enum"] == [
        "Resource", "Pods", "Object", "External", "ContainerResource"]
    value = defs["MetricTarget"]["properties"]["averageValue"]["anyOf"][0]
    assert value["x-kubernetes-int-or-string"] is True and value["pattern"] == QUANTITY_PATTERN
    assert defs["ForecastSpec"]["properties"]["maxAge"] == {
        "default": "10m", "description": "a forecast generated longer ago is stale",
        "pattern": defs["ForecastSpec"]["properties"]["horizon"]["pattern"], "title": "Maxage", "type": "string",
        "maxLength": 64}  # bounded, so the CRD's CEL rules over durations stay within the API server's cost
