"""The fake API server behaves like the real one where the controller depends on it.

Driven through the official kubernetes client's generated APIs (not our adapter), so the fake is
checked against what the real client sends and expects.
"""

from __future__ import annotations

import pytest
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
