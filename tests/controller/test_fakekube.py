"""The fake API server behaves like the real one where the controller depends on it.

Driven through the official kubernetes client's generated APIs (not our adapter), so the fake is
checked against what the real client sends and expects.
"""

from __future__ import annotations

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import watch

from tests.fakekube import FakeClock, FakeKube
from tests.fakekube.patch import PatchError, json_patch, merge_patch, strategic_merge_patch

from .conftest import NS, autoscaler, deployment


@pytest.fixture
def api(kube: FakeKube) -> k8s.ApiClient:
    configuration = k8s.Configuration()
    configuration.host = kube.url
    configuration.retries = False
    return k8s.ApiClient(configuration)


def test_discovery_lists_groups_and_resources(kube, api) -> None:
    groups = {g.name for g in k8s.ApisApi(api).get_api_versions().groups}
    assert {"apps", "autoscaling", "coordination.k8s.io", "events.k8s.io", "keda.sh", "prescaler.dev"} <= groups
    resources = {r.name for r in k8s.AppsV1Api(api).get_api_resources().resources}
    assert {"deployments", "deployments/scale", "deployments/status", "statefulsets/scale"} <= resources
    pa = k8s.CustomObjectsApi(api).get_api_resources("prescaler.dev", "v1alpha1").resources
    assert {(r.name, r.namespaced) for r in pa} == {("predictiveautoscalers", True),
                                                    ("predictiveautoscalers/status", True)}
    assert pa[0].short_names == ["pas"]


def test_uid_resource_version_generation(kube, api) -> None:
    apps = k8s.AppsV1Api(api)
    created = apps.create_namespaced_deployment(NS, deployment())
    assert created.metadata.uid and created.metadata.generation == 1
    rv1 = int(created.metadata.resource_version)
    labelled = apps.patch_namespaced_deployment("vllm", NS, {"metadata": {"labels": {"a": "b"}}})
    assert labelled.metadata.generation == 1, "a metadata change is not a new generation"
    assert int(labelled.metadata.resource_version) > rv1
    scaled = apps.patch_namespaced_deployment("vllm", NS, {"spec": {"replicas": 3}})
    assert scaled.metadata.generation == 2 and scaled.metadata.uid == created.metadata.uid


def test_stale_resource_version_is_a_conflict(kube, api) -> None:
    apps = k8s.AppsV1Api(api)
    first = apps.create_namespaced_deployment(NS, deployment())
    apps.patch_namespaced_deployment("vllm", NS, {"spec": {"replicas": 3}})
    stale = api.sanitize_for_serialization(first)
    stale["spec"]["replicas"] = 5
    with pytest.raises(k8s.ApiException) as err:
        apps.replace_namespaced_deployment("vllm", NS, stale)
    assert err.value.status == 409
    with pytest.raises(k8s.ApiException) as err:
        apps.patch_namespaced_deployment_scale(
            "vllm", NS, {"metadata": {"resourceVersion": first.metadata.resource_version}, "spec": {"replicas": 5}})
    assert err.value.status == 409
    assert apps.read_namespaced_deployment("vllm", NS).spec.replicas == 3


def test_scale_subresource(kube, api) -> None:
    apps = k8s.AppsV1Api(api)
    apps.create_namespaced_deployment(NS, deployment(replicas=2))
    scale = apps.read_namespaced_deployment_scale("vllm", NS)
    assert scale.kind == "Scale" and scale.api_version == "autoscaling/v1"
    assert (scale.spec.replicas, scale.status.replicas, scale.status.selector) == (2, 2, "app=vllm")
    apps.replace_namespaced_deployment_scale("vllm", NS, {"metadata": {"name": "vllm"}, "spec": {"replicas": 4}})
    assert apps.read_namespaced_deployment("vllm", NS).spec.replicas == 4
    with pytest.raises(k8s.ApiException) as err:
        apps.patch_namespaced_deployment_scale("vllm", NS, {"spec": {"replicas": -1}})
    assert err.value.status == 422


def test_ready_replicas_follow_after_the_delay_on_the_injected_clock(api) -> None:
    clock = FakeClock()
    with FakeKube(clock, ready_delay_seconds=90) as server:
        configuration = k8s.Configuration()
        configuration.host = server.url
        apps = k8s.AppsV1Api(k8s.ApiClient(configuration))
        apps.create_namespaced_deployment(NS, deployment(replicas=2))
        apps.patch_namespaced_deployment_scale("vllm", NS, {"spec": {"replicas": 5}})
        status = apps.read_namespaced_deployment("vllm", NS).status
        assert (status.replicas, status.ready_replicas) == (5, 2)
        clock.advance(89)
        assert apps.read_namespaced_deployment("vllm", NS).status.ready_replicas == 2
        clock.advance(1)
        assert apps.read_namespaced_deployment("vllm", NS).status.ready_replicas == 5
        apps.patch_namespaced_deployment_scale("vllm", NS, {"spec": {"replicas": 1}})
        assert apps.read_namespaced_deployment("vllm", NS).status.ready_replicas == 1, "scale-in is immediate"


def test_status_subresource_separates_spec_and_status(kube, api) -> None:
    co = k8s.CustomObjectsApi(api)
    args = ("prescaler.dev", "v1alpha1", NS, "predictiveautoscalers")
    co.create_namespaced_custom_object(*args, autoscaler())
    co.patch_namespaced_custom_object_status(*args, "chat", {"status": {"desiredReplicas": 3},
                                                              "spec": {"maxReplicas": 99}})
    obj = co.get_namespaced_custom_object(*args, "chat")
    assert obj["status"] == {"desiredReplicas": 3} and obj["spec"]["maxReplicas"] == 20
    assert obj["metadata"]["generation"] == 1, "a status write is not a new generation"
    co.patch_namespaced_custom_object(*args, "chat", {"spec": {"maxReplicas": 30}, "status": {"desiredReplicas": 9}})
    obj = co.get_namespaced_custom_object(*args, "chat")
    assert obj["status"] == {"desiredReplicas": 3} and obj["spec"]["maxReplicas"] == 30
    assert obj["metadata"]["generation"] == 2


def test_list_and_watch_resume_from_a_resource_version(kube, api) -> None:
    apps = k8s.AppsV1Api(api)
    apps.create_namespaced_deployment(NS, deployment("a"))
    listing = apps.list_namespaced_deployment(NS)
    rv = listing.metadata.resource_version
    assert [d.metadata.name for d in listing.items] == ["a"]
    apps.create_namespaced_deployment(NS, deployment("b"))
    apps.patch_namespaced_deployment("a", NS, {"spec": {"replicas": 3}})
    apps.delete_namespaced_deployment("b", NS)
    events = [(e["type"], e["object"].metadata.name)
              for e in watch.Watch().stream(apps.list_namespaced_deployment, NS, resource_version=rv,
                                            timeout_seconds=1)]
    assert events == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]


def test_watch_without_a_version_starts_with_the_current_state_and_times_out(kube, api) -> None:
    apps = k8s.AppsV1Api(api)
    apps.create_namespaced_deployment(NS, deployment("a"))
    events = list(watch.Watch().stream(apps.list_namespaced_deployment, NS, timeout_seconds=1))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "a")]


def test_watch_from_a_compacted_version_is_gone(api) -> None:
    with FakeKube() as server:
        server.store.log = type(server.store.log)(maxlen=2)
        for name in "abcd":
            server.create("apps/v1", "deployments", deployment(name))
        configuration = k8s.Configuration()
        configuration.host = server.url
        apps = k8s.AppsV1Api(k8s.ApiClient(configuration))
        with pytest.raises(k8s.ApiException) as err:
            list(watch.Watch().stream(apps.list_namespaced_deployment, NS, resource_version="1", timeout_seconds=1))
        assert err.value.status == 410


def test_faults_fail_the_next_requests_then_clear(kube, api) -> None:
    apps = k8s.AppsV1Api(api)
    apps.create_namespaced_deployment(NS, deployment())
    kube.fail_next(r"/deployments/vllm$", 2, status=500, method="GET")
    for _ in range(2):
        with pytest.raises(k8s.ApiException) as err:
            apps.read_namespaced_deployment("vllm", NS)
        assert err.value.status == 500
    assert apps.read_namespaced_deployment("vllm", NS).metadata.name == "vllm"
    kube.hang_next(r"/deployments/vllm$", 1, seconds=1.0)
    with pytest.raises(Exception) as timeout:
        apps.read_namespaced_deployment("vllm", NS, _request_timeout=0.2)
    assert "timed out" in str(timeout.value).lower() or "timeout" in type(timeout.value).__name__.lower()


def test_unknown_kinds_and_objects_are_404(kube, api) -> None:
    co = k8s.CustomObjectsApi(api)
    with pytest.raises(k8s.ApiException) as err:
        co.list_namespaced_custom_object("example.com", "v1", NS, "widgets")
    assert err.value.status == 404
    with pytest.raises(k8s.ApiException) as err:
        k8s.AppsV1Api(api).read_namespaced_deployment_scale("nope", NS)
    assert err.value.status == 404


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        pytest.param({"a": 1, "b": {"c": 2}}, {"b": {"c": None, "d": 3}}, {"a": 1, "b": {"d": 3}}, id="null-deletes"),
        pytest.param({"l": [1, 2]}, {"l": [3]}, {"l": [3]}, id="lists-replace"),
        pytest.param({"a": 1}, {"a": {"x": 1}}, {"a": {"x": 1}}, id="scalar-to-object"),
    ],
)
def test_merge_patch(target, patch, expected) -> None:
    assert merge_patch(target, patch) == expected


def test_strategic_merge_patch_merges_conditions_by_type_and_containers_by_name() -> None:
    target = {"status": {"conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "False"}]},
              "spec": {"containers": [{"name": "x", "image": "1"}], "args": ["a"]}}
    patch = {"status": {"conditions": [{"type": "B", "status": "True"}, {"type": "C", "status": "True"}]},
             "spec": {"containers": [{"name": "x", "image": "2"}], "args": ["b"]}}
    out = strategic_merge_patch(target, patch)
    assert out["status"]["conditions"] == [{"type": "A", "status": "True"}, {"type": "B", "status": "True"},
                                           {"type": "C", "status": "True"}]
    assert out["spec"]["containers"] == [{"name": "x", "image": "2"}] and out["spec"]["args"] == ["b"]
    deleted = strategic_merge_patch(target, {"status": {"conditions": [{"type": "A", "$patch": "delete"}]}})
    assert [c["type"] for c in deleted["status"]["conditions"]] == ["B"]


def test_json_patch_operations_and_errors() -> None:
    doc = {"spec": {"replicas": 1, "list": [1, 2]}}
    out = json_patch(doc, [{"op": "replace", "path": "/spec/replicas", "value": 3},
                           {"op": "add", "path": "/spec/list/-", "value": 9},
                           {"op": "remove", "path": "/spec/list/0"},
                           {"op": "copy", "from": "/spec/replicas", "path": "/spec/copy"},
                           {"op": "test", "path": "/spec/copy", "value": 3}])
    assert out == {"spec": {"replicas": 3, "list": [2, 9], "copy": 3}} and doc["spec"]["replicas"] == 1
    with pytest.raises(PatchError, match="test failed"):
        json_patch(doc, [{"op": "test", "path": "/spec/replicas", "value": 2}])
    with pytest.raises(PatchError, match="does not exist"):
        json_patch(doc, [{"op": "replace", "path": "/spec/nope", "value": 2}])


def test_json_patch_over_http(kube, api) -> None:
    apps = k8s.AppsV1Api(api)
    apps.create_namespaced_deployment(NS, deployment(replicas=2))
    out = apps.patch_namespaced_deployment("vllm", NS, [{"op": "replace", "path": "/spec/replicas", "value": 6}])
    assert out.spec.replicas == 6
    with pytest.raises(k8s.ApiException) as err:
        apps.patch_namespaced_deployment("vllm", NS, [{"op": "test", "path": "/spec/replicas", "value": 1}])
    assert err.value.status == 422


# ---- admission: defaulting, schema validation, CEL, server-side apply ------------------------------

@pytest.mark.parametrize(
    ("text", "nanos"),
    [("0", 0), ("5s", 5 * 10**9), ("1h30m", 5400 * 10**9), ("1.5h", 5400 * 10**9), ("500ms", 5 * 10**8),
     ("1us", 1000), ("1µs", 1000), ("1ns", 1), (".5s", 5 * 10**8), ("1.s", 10**9), ("+2m", 120 * 10**9),
     ("-1s", -(10**9)), ("1h1m1s1ms", 3661001 * 10**6), ("2562047h", 2562047 * 3600 * 10**9)],
)
def test_cel_duration_reads_what_go_time_parse_duration_reads(text, nanos) -> None:
    from tests.fakekube.cel import go_duration_nanos

    assert go_duration_nanos(text) == nanos


@pytest.mark.parametrize(("text", "error"), [("14d", "unknown unit"), ("1w", "unknown unit"), ("5", "missing unit"),
                                             ("", "invalid"), (".s", "invalid"), ("00", "missing unit"),
                                             ("2562048h", "invalid"), ("5 m", "unknown unit")])
def test_cel_duration_refuses_what_go_refuses(text, error) -> None:
    from tests.fakekube.cel import go_duration_nanos

    with pytest.raises(ValueError, match=error):
        go_duration_nanos(text)


_SCHEMA = {
    "type": "object", "required": ["n"],
    "properties": {
        "n": {"type": "integer", "minimum": 1, "maximum": 10},
        "q": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1, "exclusiveMaximum": True},
        "s": {"type": "string", "minLength": 1, "maxLength": 3, "pattern": "^[a-z]+$"},
        "e": {"type": "string", "enum": ["A", "B"]},
        "t": {"type": "string", "format": "date-time"},
        "l": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "integer"}},
        "x": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True,
              "pattern": "^[0-9]+m?$"},
        "c": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
              "items": {"type": "object", "properties": {"type": {"type": "string"}}}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


@pytest.mark.parametrize(
    ("value", "field", "kind", "text"),
    [
        ({}, "n", "FieldValueRequired", "Required value"),
        ({"n": "1"}, "n", "FieldValueTypeInvalid", 'n in body must be of type integer: "string"'),
        ({"n": 0}, "n", "FieldValueInvalid", "n in body should be greater than or equal to 1"),
        ({"n": 11}, "n", "FieldValueInvalid", "n in body should be less than or equal to 10"),
        ({"n": 1, "q": 1}, "q", "FieldValueInvalid", "q in body should be less than 1"),
        ({"n": 1, "q": 0}, "q", "FieldValueInvalid", "q in body should be greater than 0"),
        ({"n": 1, "s": ""}, "s", "FieldValueInvalid", "should be at least 1 chars long"),
        ({"n": 1, "s": "abcd"}, "s", "FieldValueTooLong", "may not be more than 3 bytes"),
        ({"n": 1, "s": "A"}, "s", "FieldValueInvalid", "s in body should match '^[a-z]+$'"),
        ({"n": 1, "e": "C"}, "e", "FieldValueNotSupported", 'supported values: "A", "B"'),
        ({"n": 1, "t": "2026-13-01T00:00:00Z"}, "t", "FieldValueInvalid", "must be of type date-time"),
        ({"n": 1, "t": "yesterday"}, "t", "FieldValueInvalid", "must be of type date-time"),
        ({"n": 1, "l": []}, "l", "FieldValueInvalid", "should have at least 1 items"),
        ({"n": 1, "l": [1, 2, 3]}, "l", "FieldValueTooMany", "must have at most 2 items"),
        ({"n": 1, "l": ["a"]}, "l[0]", "FieldValueTypeInvalid", "must be of type integer"),
        ({"n": 1, "x": 1.5}, "x", "FieldValueTypeInvalid", "must be of type integer-or-string"),
        ({"n": 1, "x": "5s"}, "x", "FieldValueInvalid", "should match"),
        ({"n": 1, "c": [{"type": "A"}, {"type": "A"}]}, "c[1]", "FieldValueDuplicate", "Duplicate value"),
    ],
)
def test_schema_validation_names_the_field_as_the_api_server_does(value, field, kind, text) -> None:
    from tests.fakekube.schema import validate

    errors = validate(value, _SCHEMA)
    assert errors and {e.field for e in errors} == {field}, [e.message() for e in errors]
    assert (errors[0].type, errors[0].field) == (kind, field) and text in errors[0].message()


@pytest.mark.parametrize("value", [
    {"n": 1}, {"n": 2.0}, {"n": 10, "q": 0.5, "s": "ab", "e": "B", "t": "2026-01-05T12:00:00Z", "l": [1]},
    {"n": 1, "x": 5}, {"n": 1, "x": "500m"}, {"n": 1, "t": "2026-01-05T12:00:00.123+02:00"},
    {"n": 1, "free": {"anything": [1, {"goes": True}]}, "unknown": "kept, not pruned"},
])
def test_schema_validation_accepts_what_the_api_server_accepts(value) -> None:
    from tests.fakekube.schema import validate

    assert validate(value, _SCHEMA) == []


def test_defaults_fill_absent_fields_at_every_depth_and_replace_nulls() -> None:
    from tests.fakekube.schema import apply_defaults

    schema = {"type": "object", "properties": {
        "a": {"type": "integer", "default": 1},
        "o": {"type": "object", "properties": {"b": {"type": "string", "default": "x"}}},
        "l": {"type": "array", "items": {"type": "object", "properties": {"c": {"type": "integer", "default": 3}}}},
    }}
    value = {"a": None, "o": {}, "l": [{}, {"c": 4}]}
    assert apply_defaults(value, schema) == {"a": 1, "o": {"b": "x"}, "l": [{"c": 3}, {"c": 4}]}
    assert value == {"a": None, "o": {}, "l": [{}, {"c": 4}]}, "the input is not changed"
    assert apply_defaults({}, schema) == {"a": 1}, "no default where the enclosing object is absent"


@pytest.mark.parametrize(
    ("rule", "value", "ok"),
    [
        ("self.q > 0.5", {"q": 1}, True),  # a number field is a double even when the JSON has an integer
        ("self.n + 1 == 3", {"n": 2}, True),
        ("self.t < timestamp('2030-01-01T00:00:00Z')", {"t": "2026-01-05T12:00:00Z"}, True),  # date-time: timestamp
        ("duration(self.s) > duration('1m')", {"s": "90s"}, True),
        ("self.s.matches('^[0-9]+s$')", {"s": "90s"}, True),
        ("!has(self.q) || self.q < 0.5", {"n": 1}, True),
        ("self.l.all(i, i > 1)", {"l": [1, 2]}, False),
        ("size(self.l) <= 2", {"l": [1, 2, 3]}, False),
    ],
)
def test_cel_sees_values_typed_by_the_schema(rule, value, ok) -> None:
    from tests.fakekube.cel import compile_rules, evaluate

    schema = {"type": "object", "x-kubernetes-validations": [{"rule": rule, "message": "m"}], "properties": {
        "q": {"type": "number"}, "n": {"type": "integer"}, "s": {"type": "string", "maxLength": 8},
        "t": {"type": "string", "format": "date-time"}, "l": {"type": "array", "items": {"type": "integer"}}}}
    errors = evaluate(compile_rules(schema, "x"), value)
    assert (errors == []) is ok, [e.message() for e in errors]


def test_a_rule_that_errors_refuses_the_object_naming_the_error() -> None:
    """cel-go: reading an absent field is an error, and the write is refused (not passed)."""
    from tests.fakekube.cel import compile_rules, evaluate

    schema = {"type": "object", "properties": {"d": {"type": "string", "maxLength": 8}},
              "x-kubernetes-validations": [{"rule": "duration(self.d) > duration('0s')", "message": "d > 0"}]}
    [error] = evaluate(compile_rules(schema, "x"), {"d": "14d"})
    assert 'unknown unit "d"' in error.message() and "evaluating rule: d > 0" in error.message()
    [error] = evaluate(compile_rules(schema, "x"), {})
    assert "evaluating rule" in error.message()


def test_ratcheting_forgives_only_what_did_not_change() -> None:
    from tests.fakekube.cel import compile_rules, evaluate
    from tests.fakekube.schema import MISSING

    schema = {"type": "object", "properties": {
        "items": {"type": "array", "items": {
            "type": "object", "properties": {"v": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.v > 0", "message": "v > 0"}]}},
        "other": {"type": "string"}}}
    rules = compile_rules(schema, "x")
    bad = {"items": [{"v": 0}], "other": "a"}
    assert len(evaluate(rules, bad, "", MISSING)) == 1, "a create is checked"
    assert evaluate(rules, {**bad, "other": "b"}, "", bad) == [], "the atomic list is unchanged: forgiven"
    assert len(evaluate(rules, {"items": [{"v": 0}, {"v": 1}], "other": "a"}, "", bad)) == 1, \
        "the list changed: its items are checked again"


def test_server_side_apply_creates_then_merges_and_needs_a_field_manager(kube, api) -> None:
    co = k8s.CustomObjectsApi(api)
    args = ("prescaler.dev", "v1alpha1", NS, "predictiveautoscalers")
    apply = "application/apply-patch+yaml"
    with pytest.raises(k8s.ApiException) as err:
        co.patch_namespaced_custom_object(*args, "chat", autoscaler(), _content_type=apply)
    assert err.value.status == 422 and "fieldManager" in err.value.body
    co.patch_namespaced_custom_object(*args, "chat", autoscaler(), field_manager="me", _content_type=apply)
    created = co.get_namespaced_custom_object(*args, "chat")
    assert created["metadata"]["generation"] == 1 and created["spec"]["mode"] == "Auto", "created, defaulted"
    co.patch_namespaced_custom_object(*args, "chat", {"apiVersion": "prescaler.dev/v1alpha1",
                                                      "kind": "PredictiveAutoscaler", "metadata": {"name": "chat"},
                                                      "spec": {"maxReplicas": 7}},
                                      field_manager="me", _content_type=apply)
    obj = co.get_namespaced_custom_object(*args, "chat")
    assert obj["spec"]["maxReplicas"] == 7 and obj["spec"]["metrics"] == created["spec"]["metrics"]
    assert obj["metadata"]["generation"] == 2


def test_an_apply_body_may_be_yaml(kube) -> None:
    import urllib.request

    body = yaml.safe_dump(autoscaler()).encode()
    request = urllib.request.Request(
        f"{kube.url}/apis/prescaler.dev/v1alpha1/namespaces/{NS}/predictiveautoscalers/chat?fieldManager=kubectl",
        data=body, method="PATCH", headers={"Content-Type": "application/apply-patch+yaml"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 201
    assert kube.get("prescaler.dev/v1alpha1", "predictiveautoscalers", "chat")["spec"]["maxReplicas"] == 20
