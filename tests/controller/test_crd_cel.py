"""The CRD's CEL rules, as a real API server applies them, against the pydantic model they mirror.

The fake API server (tests/fakekube) installs the committed CRD file and evaluates its rules with
cel-python on every write; requests go through the official kubernetes client, so each refusal is
what `kubectl apply` would print. The model is the reference: whatever a rule refuses, the model
refuses too (a rule may check less, never more), and where a rule can read its inputs exactly
(min/max, whole-unit durations) the two agree on every input.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes import client as k8s
from pydantic import ValidationError

from controller.conditions import READY_REQUIRES, Ready, ready_condition
from controller.crd import CRD_PATH
from controller.policy.spec import DURATION_MAX_LENGTH, MAX_METRICS, PredictiveAutoscalerSpec
from controller.resource import StatusCondition, format_validation_error
from tests.fakekube import FakeClock, FakeKube
from tests.fakekube.admission import VersionSchema, compile_crd

from .conftest import BASE_SPEC, NS, deployment, make_reconciler, sync_pods

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION, PLURAL = "prescaler.dev", "v1alpha1", "predictiveautoscalers"
ARGS = (GROUP, VERSION, NS, PLURAL)
APPLY = "application/apply-patch+yaml"


@functools.cache
def _crd_file() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


def _committed_crd() -> dict[str, Any]:
    """configs/crd/predictiveautoscalers.yaml as committed (equal to the generated one: test_manifests)."""
    return copy.deepcopy(_crd_file())


@pytest.fixture(scope="module")
def schema() -> VersionSchema:
    """The committed CRD's v1alpha1 schema and rules, compiled as the fake API server compiles them."""
    return compile_crd(_committed_crd())[VERSION]


@pytest.fixture
def server() -> Iterator[FakeKube]:
    with FakeKube(FakeClock()) as kube:
        kube.create("apiextensions.k8s.io/v1", "customresourcedefinitions", _committed_crd())
        yield kube


@pytest.fixture
def api(server: FakeKube) -> k8s.CustomObjectsApi:
    configuration = k8s.Configuration()
    configuration.host = server.url
    configuration.retries = False
    return k8s.CustomObjectsApi(k8s.ApiClient(configuration))


def _obj(spec: dict[str, Any], name: str = "chat") -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PredictiveAutoscaler",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


def _spec(**changes: Any) -> dict[str, Any]:
    """BASE_SPEC with top-level fields replaced; None removes one."""
    spec = copy.deepcopy(BASE_SPEC)
    spec.update(changes)
    return {k: v for k, v in spec.items() if v is not None}


def _forecast(**changes: Any) -> dict[str, Any]:
    return {**BASE_SPEC["forecast"], **changes}


def _refusal(call: Callable[[], Any]) -> dict[str, Any]:
    with pytest.raises(k8s.ApiException) as info:
        call()
    assert info.value.status == 422, info.value.body
    body = json.loads(info.value.body)
    assert body["kind"] == "Status" and body["reason"] == "Invalid"
    return body


_PODS = {"metric": {"name": "vllm:num_requests_running"}, "target": {"type": "AverageValue", "averageValue": "8"}}
_EXTERNAL_VALUE = {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "10"}}

# (id, spec, the cause's field, its reason, a fragment of its message). Every rule of the CRD has a
# case here (test_every_rule_has_a_refusal_case), and so do the openAPI checks the rules rely on.
BAD = [
    ("max-below-min", _spec(minReplicas=5, maxReplicas=2), "spec.maxReplicas", "FieldValueInvalid",
     "maxReplicas (2) must be >= minReplicas (5)"),
    ("max-below-default-min", _spec(minReplicas=None, maxReplicas=0), "spec.maxReplicas", "FieldValueInvalid",
     "should be greater than or equal to 1"),
    ("quantile-1", _spec(forecast=_forecast(quantile=1)), "spec.forecast.quantile", "FieldValueInvalid",
     "should be less than 1"),
    ("quantile-0", _spec(forecast=_forecast(quantile=0)), "spec.forecast.quantile", "FieldValueInvalid",
     "should be greater than 0"),
    ("horizon-below-lead-plus-interval", _spec(forecast=_forecast(horizon="5m"), leadTime="5m"),
     "spec.forecast.horizon", "FieldValueInvalid",
     "forecast.horizon (5m) must be >= leadTime (5m) + forecast.interval (1m)"),
    ("default-horizon-below-a-long-lead", _spec(leadTime="40m"), "spec.forecast.horizon", "FieldValueInvalid",
     "forecast.horizon (30m) must be >= leadTime (40m) + forecast.interval (1m)"),
    ("forecast-without-capacity", _spec(capacity=None), "spec.capacity", "FieldValueRequired",
     "forecast needs capacity (perReplica rates) to turn rates into replicas"),
    ("min-samples-above-samples", _spec(forecast=_forecast(liveErrorMinSamples=20)),
     "spec.forecast.liveErrorMinSamples", "FieldValueInvalid",
     "liveErrorMinSamples (20) must be <= liveErrorSamples (12)"),
    ("metric-type-without-its-source", _spec(metrics=[{"type": "Pods", "external": _EXTERNAL_VALUE}]),
     "spec.metrics[0]", "FieldValueRequired", "metric type Pods needs the field pods"),
    ("metric-with-two-sources", _spec(metrics=[{"type": "Pods", "pods": _PODS, "external": _EXTERNAL_VALUE}]),
     "spec.metrics[0]", "FieldValueForbidden", "metric type Pods must set only pods"),
    ("pods-metric-with-value-target",
     _spec(metrics=[{"type": "Pods", "pods": {**_PODS, "target": {"type": "Value", "value": "1"}}}]),
     "spec.metrics[0].pods.target.type", "FieldValueInvalid",
     "a Pods metric takes target type AverageValue, not Value"),
    ("resource-metric-with-value-target",
     _spec(metrics=[{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Value", "value": "1"}}}]),
     "spec.metrics[0].resource.target.type", "FieldValueInvalid",
     "a Resource metric takes target type Utilization or AverageValue, not Value"),
    ("container-metric-with-value-target",
     _spec(metrics=[{"type": "ContainerResource", "containerResource": {
         "name": "cpu", "container": "vllm", "target": {"type": "Value", "value": "1"}}}]),
     "spec.metrics[0].containerResource.target.type", "FieldValueInvalid",
     "a ContainerResource metric takes target type Utilization or AverageValue, not Value"),
    ("object-metric-with-utilization-target",
     _spec(metrics=[{"type": "Object", "object": {
         "describedObject": {"kind": "Service", "name": "gw"}, "metric": {"name": "rps"},
         "target": {"type": "Utilization", "averageUtilization": 50}}}]),
     "spec.metrics[0].object.target.type", "FieldValueInvalid",
     "a Object metric takes target type Value or AverageValue, not Utilization"),
    ("external-metric-with-utilization-target",
     _spec(metrics=[{"type": "External", "external": {
         "metric": {"name": "queue"}, "target": {"type": "Utilization", "averageUtilization": 50}}}]),
     "spec.metrics[0].external.target.type", "FieldValueInvalid",
     "a External metric takes target type Value or AverageValue, not Utilization"),
    ("target-without-its-value",
     _spec(metrics=[{"type": "External", "external": {"metric": {"name": "q"}, "target": {"type": "Value"}}}]),
     "spec.metrics[0].external.target", "FieldValueRequired", "target type Value needs target.value"),
    ("per-replica-empty", _spec(capacity={"perReplica": {}}), "spec.capacity.perReplica", "FieldValueRequired",
     "perReplica needs at least one of requestsPerSecond"),
    ("empty-policies", _spec(behavior={"scaleUp": {"policies": []}}), "spec.behavior.scaleUp.policies",
     "FieldValueRequired", "policies must list at least one policy"),
    ("too-many-metrics", _spec(metrics=[{"type": "Pods", "pods": _PODS}] * (MAX_METRICS + 1)), "spec.metrics",
     "FieldValueTooMany", f"must have at most {MAX_METRICS} items"),
    ("duration-too-long", _spec(leadTime="1s" * 33), "spec.leadTime", "FieldValueTooLong",
     f"may not be more than {DURATION_MAX_LENGTH} bytes"),
]


def _create(api: k8s.CustomObjectsApi, server: FakeKube, spec: dict[str, Any]) -> Any:
    return api.create_namespaced_custom_object(*ARGS, _obj(spec))


def _replace(api: k8s.CustomObjectsApi, server: FakeKube, spec: dict[str, Any]) -> Any:
    stored = api.create_namespaced_custom_object(*ARGS, _obj(BASE_SPEC))
    return api.replace_namespaced_custom_object(*ARGS, "chat", {**stored, "spec": spec})


def _json_patch(api: k8s.CustomObjectsApi, server: FakeKube, spec: dict[str, Any]) -> Any:
    api.create_namespaced_custom_object(*ARGS, _obj(BASE_SPEC))
    return api.patch_namespaced_custom_object(*ARGS, "chat", [{"op": "replace", "path": "/spec", "value": spec}],
                                              _content_type="application/json-patch+json")


def _apply(api: k8s.CustomObjectsApi, server: FakeKube, spec: dict[str, Any]) -> Any:
    return api.patch_namespaced_custom_object(*ARGS, "chat", _obj(spec), field_manager="kubectl",
                                              _content_type=APPLY)


VERBS = [pytest.param(_create, id="create"), pytest.param(_replace, id="update"),
         pytest.param(_json_patch, id="patch"), pytest.param(_apply, id="apply")]


@pytest.mark.parametrize("write", VERBS)
@pytest.mark.parametrize(("spec", "where", "reason", "text"), [pytest.param(*c[1:], id=c[0]) for c in BAD])
def test_the_api_server_refuses_a_bad_spec_naming_the_field(api, server, schema, write, spec, where, reason,
                                                            text) -> None:
    body = _refusal(lambda: write(api, server, spec))
    causes = body["details"]["causes"]
    assert any(c["field"] == where and c["reason"] == reason and text in c["message"] for c in causes), causes
    assert body["message"].startswith('PredictiveAutoscaler.prescaler.dev "chat" is invalid: ')
    assert body["details"]["kind"] == "PredictiveAutoscaler" and body["details"]["name"] == "chat"
    stored = [o["spec"] for o in server.list(f"{GROUP}/{VERSION}", PLURAL, NS)]
    assert stored in ([], [schema.defaulted(_obj(BASE_SPEC))["spec"]]), "nothing of the refused write is stored"


@pytest.mark.parametrize(("spec", "where"), [pytest.param(c[1], c[2], id=c[0]) for c in BAD])
def test_the_model_refuses_whatever_the_api_server_refuses(spec, where) -> None:
    with pytest.raises(ValidationError) as info:
        PredictiveAutoscalerSpec.model_validate(spec)
    field = where.split("[")[0].rsplit(".", 1)[-1]
    assert field in format_validation_error(info.value) or where.startswith("spec.metrics"), \
        format_validation_error(info.value)


def _examples() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted((ROOT / "configs" / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "PredictiveAutoscaler":
                out.append((path.name, doc))
    return out


GOOD = [
    ("base", _spec()),
    ("horizon-exactly-lead-plus-interval", _spec(forecast=_forecast(horizon="6m", interval="1m"), leadTime="5m")),
    ("zero-interval", _spec(forecast=_forecast(horizon="5m", interval="0"), leadTime="5m")),
    ("lead-time-auto", _spec(leadTime="auto")),
    ("days-and-weeks", _spec(forecast=_forecast(horizon="1d", retrainInterval="1w"), leadTime="40m")),
    ("no-forecast", _spec(forecast=None, capacity=None)),
    ("external-value", _spec(metrics=[{"type": "External", "external": _EXTERNAL_VALUE}])),
    ("utilization", _spec(metrics=[{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}])),
    ("max-metrics", _spec(metrics=[{"type": "Pods", "pods": _PODS}] * MAX_METRICS)),
]


@pytest.mark.parametrize("write", VERBS)
@pytest.mark.parametrize("doc", [pytest.param(d, id=n) for n, d in _examples()]
                         + [pytest.param(_obj(s), id=n) for n, s in GOOD])
def test_good_specs_and_the_shipped_examples_are_accepted(api, server, write, doc) -> None:
    PredictiveAutoscalerSpec.model_validate(doc["spec"])  # the model takes it too
    write(api, server, {**doc["spec"]})  # (the client returns None for an apply's 201: read it back)
    stored = api.get_namespaced_custom_object(*ARGS, "chat")
    assert stored["spec"]["maxReplicas"] == doc["spec"]["maxReplicas"]
    assert stored["spec"]["minReplicas"] == doc["spec"].get("minReplicas", 1), "the API server applies defaults"


def test_a_horizon_the_rules_cannot_read_exactly_is_left_to_the_controller(api) -> None:
    """Honest about the gap: CEL has no `d` and rounds fractions unlike the model, so such spellings
    pass the API server and the controller refuses them (SpecValid=False, the same message)."""
    spec = _spec(forecast=_forecast(horizon="0.5h"), leadTime="40m")
    api.create_namespaced_custom_object(*ARGS, _obj(spec))
    with pytest.raises(ValidationError, match=r"forecast.horizon \(30m\) must be >= leadTime \(40m\)"):
        PredictiveAutoscalerSpec.model_validate(spec)


def test_status_writes_are_validated_and_an_old_bad_spec_does_not_block_them(api, server) -> None:
    # Stored behind the API server's back (as before its CRD had the rules): min > max.
    server.create(f"{GROUP}/{VERSION}", PLURAL, _obj(_spec(minReplicas=5, maxReplicas=2)))
    condition = {"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "m",
                 "lastTransitionTime": "2026-01-05T12:00:00Z"}
    api.patch_namespaced_custom_object_status(*ARGS, "chat", {"status": {"conditions": [condition]}})
    bad_time = {**condition, "lastTransitionTime": "yesterday"}
    body = _refusal(lambda: api.patch_namespaced_custom_object_status(
        *ARGS, "chat", {"status": {"conditions": [bad_time]}}))
    assert [c["field"] for c in body["details"]["causes"]] == ["status.conditions[0].lastTransitionTime"]
    assert "must be of type date-time" in body["message"]
    # Any change to the spec makes the rules judge it again (ratcheting forgives only the unchanged).
    body = _refusal(lambda: api.patch_namespaced_custom_object(*ARGS, "chat", {"spec": {"mode": "Advisory"}}))
    assert "maxReplicas (2) must be >= minReplicas (5)" in body["message"]


def test_a_wrong_type_skips_the_rules_as_the_api_server_does(api) -> None:
    body = _refusal(lambda: api.create_namespaced_custom_object(*ARGS, _obj(_spec(minReplicas="five", maxReplicas=2))))
    fields = [c["field"] for c in body["details"]["causes"]]
    assert fields == ["spec.minReplicas", "<nil>"], body["message"]
    assert "some validation rules were not checked" in body["message"]


# ---- the rules and the model agree --------------------------------------------------------------


def _verdict(schema: VersionSchema, spec: dict[str, Any]) -> str | None:
    """None when the fake API server admits the spec, else its message."""
    from tests.fakekube.errors import ApiError

    try:
        schema.admit(_obj(spec))
    except ApiError as err:
        return err.message
    return None


def _model(spec: dict[str, Any]) -> str | None:
    try:
        PredictiveAutoscalerSpec.model_validate(spec)
    except ValidationError as err:
        return format_validation_error(err)
    return None


replicas = st.integers(min_value=1, max_value=2**31 - 1) | st.integers(min_value=1, max_value=40)


@settings(max_examples=150, deadline=None)
@given(low=replicas, high=replicas)
def test_cel_and_the_model_agree_on_min_and_max(schema, low, high) -> None:
    spec = _spec(minReplicas=low, maxReplicas=high)
    server, model = _verdict(schema, spec), _model(spec)
    assert (server is None) == (model is None), (server, model)
    if model is not None:
        assert server is not None and model.removeprefix("spec: ") in server  # the same words, values included


whole_units = st.lists(st.tuples(st.integers(0, 99999), st.sampled_from("hms")), min_size=1, max_size=3).map(
    lambda parts: "".join(f"{n}{u}" for n, u in parts))


@settings(max_examples=150, deadline=None)
@given(horizon=whole_units, lead=whole_units, interval=whole_units)
def test_cel_and_the_model_agree_on_the_horizon_in_whole_units(schema, horizon, lead, interval) -> None:
    spec = _spec(forecast=_forecast(horizon=horizon, interval=interval), leadTime=lead)
    model = _model(spec)
    if model is not None and "must be >= leadTime" not in model:
        return  # refused for another reason (a zero horizon): not this rule's to judge
    assert (_verdict(schema, spec) is None) == (model is None), (horizon, lead, interval, model)


any_duration = st.lists(st.tuples(st.integers(0, 10**7), st.none() | st.integers(0, 999),
                                  st.sampled_from(["ns", "us", "µs", "ms", "s", "m", "h", "d", "w"])),
                        min_size=1, max_size=4).map(
    lambda parts: "".join(f"{n}{'' if f is None else f'.{f}'}{u}" for n, f, u in parts))


@settings(max_examples=150, deadline=None)
@given(horizon=any_duration, lead=any_duration, interval=any_duration)
def test_the_horizon_rule_never_refuses_what_the_model_accepts(schema, horizon, lead, interval) -> None:
    spec = _spec(forecast=_forecast(horizon=horizon, interval=interval), leadTime=lead)
    if _model(spec) is None:
        assert _verdict(schema, spec) is None, (horizon, lead, interval)


# ---- the rules stay within what a real API server accepts ---------------------------------------


def _nodes(node: dict[str, Any], path: str = "", lists: tuple[dict[str, Any], ...] = ()) -> Iterator[tuple]:
    """(path, schema, enclosing array schemas) of every schema node."""
    yield path, node, lists
    for name, sub in (node.get("properties") or {}).items():
        yield from _nodes(sub, f"{path}.{name}", lists)
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"], f"{path}[]", lists + (node,))


def _root() -> dict[str, Any]:
    return _committed_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_every_rule_under_a_list_has_bounded_cardinality() -> None:
    """The API server prices a rule times the most nodes it can run on: under an unbounded list that
    is what fits in 3 MiB, enough to refuse the CRD. Every list above a rule has maxItems."""
    for path, node, lists in _nodes(_root()):
        if node.get("x-kubernetes-validations"):
            assert all("maxItems" in array for array in lists), f"{path}: a rule under an unbounded list"


def test_every_string_a_rule_searches_is_bounded() -> None:
    """matches()/contains() cost the string's length: every string field such a rule reads has maxLength."""
    for path, node, _ in _nodes(_root()):
        for entry in node.get("x-kubernetes-validations") or []:
            if not re.search(r"\.(matches|contains|startsWith|endsWith)\(", entry["rule"]):
                continue
            for ref in re.findall(r"self((?:\.[A-Za-z]+)+)", entry["rule"]):
                target = node
                for name in ref.strip(".").split("."):
                    target = (target.get("properties") or {}).get(name, {})
                if target.get("type") == "string":
                    assert "maxLength" in target, f"{path}: {ref} is searched by a rule but unbounded"


def test_every_rule_has_a_refusal_case(schema) -> None:
    """Each rule of the CRD fails on at least one BAD spec (so each is exercised over HTTP above)."""
    from tests.fakekube.cel import evaluate

    rules = {entry["rule"] for _, node, _ in _nodes(_root()) for entry in node.get("x-kubernetes-validations") or []}
    fired = {e.rule for _, spec, *_ in BAD for e in evaluate(schema.rules, schema.defaulted(_obj(spec)))}
    assert rules and rules <= fired, rules - fired


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        pytest.param({"rule": "self.maxReplicas.isSorted()"}, "undeclared reference to 'isSorted'",
                     id="unknown-method"),
        pytest.param({"rule": "quantity(self.x) > 0"}, "undeclared reference to 'quantity'", id="unknown-function"),
        pytest.param({"rule": "self.maxReplica > 0"}, "undefined field 'maxReplica'", id="field-typo"),
        pytest.param({"rule": "self.mode.size > 0"}, "does not support field selection", id="select-on-a-string"),
        pytest.param({"rule": "self.minReplicas == oldSelf.minReplicas"}, "oldSelf", id="transition-rule"),
        pytest.param({"rule": "other > 0"}, "undeclared reference to 'other'", id="free-variable"),
        pytest.param({"rule": "self.minReplicas >", "message": "m"}, "syntax error", id="syntax"),
        pytest.param({"rule": "true", "reason": "FieldValueBad"}, "supported values", id="bad-reason"),
        pytest.param({"rule": "true", "fieldPath": ".nope"}, "fieldPath", id="bad-field-path"),
        pytest.param({"rule": "true", "messageExpression": "nope(1)"}, "undeclared reference to 'nope'",
                     id="bad-message-expression"),
    ],
)
def test_a_crd_whose_rules_do_not_compile_is_refused(server, rule, problem) -> None:
    crd = _committed_crd()
    crd["metadata"]["name"] = "others.prescaler.dev"
    crd["spec"]["names"] = {"plural": "others", "singular": "other", "kind": "Other", "listKind": "OtherList"}
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] = [rule]
    configuration = k8s.Configuration()
    configuration.host = server.url
    ext = k8s.ApiextensionsV1Api(k8s.ApiClient(configuration))
    with pytest.raises(k8s.ApiException) as info:
        ext.create_custom_resource_definition(crd)
    assert info.value.status == 422 and problem in info.value.body, info.value.body
    assert "x-kubernetes-validations[0]" in info.value.body
    assert ("prescaler.dev", "v1alpha1", "others") not in server.store.types, "a refused CRD serves nothing"


# ---- Ready ---------------------------------------------------------------------------------------


def _c(type_: str, status: str, reason: str = "R", message: str = "m") -> StatusCondition:
    return StatusCondition(type=type_, status=status, reason=reason, message=message,
                           last_transition_time="2026-01-05T12:00:00Z")


_HEALTHY = [_c("SpecValid", "True", "Valid"), _c("OwnedByAnotherAutoscaler", "False", "NoOtherAutoscaler"),
            _c("AbleToScale", "True", "ReadyForNewScale"), _c("ScalingActive", "True", "ValidMetricFound"),
            _c("ForecastHealthy", "True", "ForecastHealthy"), _c("ScalingLimited", "False", "DesiredWithinRange")]


def _with(*changes: StatusCondition, drop: str = "") -> list[StatusCondition]:
    by_type = {c.type: c for c in _HEALTHY if c.type != drop}
    by_type.update({c.type: c for c in changes})
    return list(by_type.values())


@pytest.mark.parametrize(
    ("conditions", "status", "reason"),
    [
        pytest.param(_HEALTHY, "True", "Scaling", id="all-good"),
        pytest.param(_with(_c("ForecastHealthy", "False", "ForecastStale")), "True", "Scaling",
                     id="forecast-unhealthy-still-scales-reactively"),
        pytest.param(_with(_c("ScalingLimited", "True", "TooManyReplicas")), "True", "Scaling", id="bound-binds"),
        pytest.param([_c("SpecValid", "False", "InvalidSpec"), _c("ScalingActive", "False", "InvalidSpec")],
                     "False", "InvalidSpec", id="invalid-spec"),
        pytest.param(_with(_c("OwnedByAnotherAutoscaler", "True", "AnotherAutoscaler"),
                           _c("AbleToScale", "False", "AnotherAutoscaler")), "False", "AnotherAutoscaler",
                     id="another-autoscaler"),
        pytest.param(_with(_c("AbleToScale", "False", "FailedGetScale"),
                           _c("ScalingActive", "False", "FailedGetScale")), "False", "FailedGetScale", id="no-target"),
        pytest.param(_with(_c("AbleToScale", "False", "FailedUpdateScale")), "False", "FailedUpdateScale",
                     id="patch-failed"),
        pytest.param(_with(_c("ScalingActive", "False", "FailedGetPodsMetric")), "False", "FailedGetPodsMetric",
                     id="no-metrics"),
        pytest.param(_with(_c("ScalingActive", "False", "ModeOff")), "False", "ModeOff", id="mode-off"),
        pytest.param(_with(_c("AbleToScale", "Unknown", "Pending")), "Unknown", "Pending", id="unknown"),
        pytest.param(_with(drop="ScalingActive"), "Unknown", "ScalingActiveUnknown", id="missing"),
        pytest.param(_with(_c("SpecValid", "False", "InvalidSpec"), _c("AbleToScale", "False", "FailedGetScale")),
                     "False", "InvalidSpec", id="first-failing-wins"),
        pytest.param(_with(_c("Ready", "False", "Stale")), "True", "Scaling", id="its-own-old-value-ignored"),
    ],
)
def test_ready_summarises_the_first_failing_condition(conditions, status, reason) -> None:
    ready = ready_condition(conditions)
    assert (ready.status, ready.reason) == (status, reason)
    if status != "True":  # the message names the condition it comes from
        assert any(ready.message.startswith(f"{t} is ") or t in ready.message for t, _ in READY_REQUIRES)


@given(st.permutations(_HEALTHY))
def test_ready_does_not_depend_on_the_order_of_the_conditions(conditions) -> None:
    assert ready_condition(conditions) == Ready("True", "Scaling", ready_condition(_HEALTHY).message)


def test_a_sync_writes_ready_through_the_api_server_and_kubectl_shows_it(prom) -> None:
    """The controller's status passes the status schema (date-time formats included), Ready is in it,
    and the CRD's Ready printer column points at it."""
    clock = FakeClock()
    with FakeKube(clock) as kube:
        kube.create("apiextensions.k8s.io/v1", "customresourcedefinitions", _committed_crd())
        kube.create("apps/v1", "deployments", deployment(replicas=2))
        kube.create(f"{GROUP}/{VERSION}", PLURAL, _obj(_spec(forecast=None, capacity=None)))
        pods = sync_pods(kube)
        prom.pod_metrics["vllm:num_requests_running"] = {p: 8.0 for p in pods}
        reconciler = make_reconciler(kube, prom, None)
        outcome = reconciler.reconcile_one(kube.get(f"{GROUP}/{VERSION}", PLURAL, "chat"), clock.now())
        assert outcome.error is None, outcome
        status = kube.get(f"{GROUP}/{VERSION}", PLURAL, "chat")["status"]
        ready = {c["type"]: c for c in status["conditions"]}["Ready"]
        assert (ready["status"], ready["reason"]) == ("True", "Scaling"), status["conditions"]
    columns = _committed_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    column = next(c for c in columns if c["name"] == "Ready")
    assert column["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
