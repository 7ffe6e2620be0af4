"""Specs are parsed once per change, not at every sync, and an edit is seen at the next sync."""

from __future__ import annotations

import copy

import pytest

from controller.reconcile import Cycle
from controller.resource import SpecCache, parse_autoscaler

from .conftest import BASE_SPEC, autoscaler, deployment, make_reconciler, sync_pods

PA = ("prescaler.dev/v1alpha1", "predictiveautoscalers")


def _obj(uid: str = "u1", **spec_overrides) -> dict:
    obj = autoscaler(**spec_overrides)
    obj["metadata"]["uid"] = uid
    return obj


@pytest.mark.parametrize(
    ("first", "second", "same_object"),
    [
        pytest.param({}, {}, True, id="unchanged-spec-reuses-the-parse"),
        pytest.param({}, {"maxReplicas": 7}, False, id="edited-spec-is-parsed-again"),
        pytest.param({"leadTime": "five minutes"}, {"leadTime": "five minutes"}, True, id="invalid-spec-error-reused"),
    ],
)
def test_the_cache_reuses_only_an_identical_spec(first, second, same_object) -> None:
    cache = SpecCache()
    a = parse_autoscaler(_obj(**first), cache)
    b = parse_autoscaler(_obj(**second), cache)
    if a.spec is None:
        assert b.spec is None and a.spec_error == b.spec_error and "spec.leadTime" in a.spec_error
    else:
        assert (a.spec is b.spec) is same_object
        assert b.spec == parse_autoscaler(_obj(**second)).spec  # what an uncached parse gives


def test_uids_never_share_an_entry_and_mutating_the_input_afterwards_is_seen() -> None:
    cache = SpecCache()
    one = _obj("u1")
    a = parse_autoscaler(one, cache)
    assert parse_autoscaler(_obj("u2", maxReplicas=9), cache).spec.max_replicas == 9
    one["spec"]["maxReplicas"] = 11  # the caller's dict changes in place: the cache kept a copy
    assert parse_autoscaler(one, cache).spec.max_replicas == 11
    assert a.spec.max_replicas == BASE_SPEC["maxReplicas"]


def test_no_uid_means_no_caching_and_the_cache_is_bounded() -> None:
    cache = SpecCache(maxsize=3)
    parse_autoscaler(_obj(""), cache)
    assert len(cache) == 0
    for i in range(7):
        parse_autoscaler(_obj(f"u{i}"), cache)
        assert len(cache) <= 3
    with pytest.raises(ValueError, match="maxsize"):
        SpecCache(maxsize=0)


def test_an_edit_through_the_api_server_applies_at_the_next_sync(kube, clock, prom) -> None:
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler())
    reconciler = make_reconciler(kube, prom, None)

    def sync():
        pods = sync_pods(kube)
        prom.pod_metrics["vllm:num_requests_running"] = {p: 100.0 for p in pods}  # far above target
        return reconciler.reconcile_one(kube.get(*PA, "chat"), clock.now(), Cycle())

    sync()
    before = kube.get("apps/v1", "deployments", "vllm")["spec"]["replicas"]
    assert before > 2
    obj = kube.get(*PA, "chat")
    obj["spec"] = copy.deepcopy(obj["spec"]) | {"maxReplicas": before}  # cap at what it has now
    kube.update(*PA, obj)
    clock.advance(15)
    outcome = sync()
    assert kube.get("apps/v1", "deployments", "vllm")["spec"]["replicas"] == before, outcome
    limited = {c["type"]: c for c in kube.get(*PA, "chat")["status"]["conditions"]}["ScalingLimited"]
    assert limited["status"] == "True", limited
