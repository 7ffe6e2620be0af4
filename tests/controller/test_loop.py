"""The loop driver: per-resource sync periods on the injected clock, the watch cache, the probes."""

from __future__ import annotations

import time
import urllib.request

import pytest

from controller.loop import AutoscalerCache, Controller
from controller.server import ControllerMetrics, Health, serve

from .conftest import autoscaler, deployment, kube_client, make_reconciler, sync_pods

PA = ("prescaler.dev/v1alpha1", "predictiveautoscalers")


def _wait(predicate, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)  # only waits for the watch thread's HTTP round trip
    return False


def test_each_resource_syncs_on_its_own_period(kube, clock, prom) -> None:
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler("fast", forecast=None, capacity=None))
    kube.create(*PA, autoscaler("slow", forecast=None, capacity=None, syncPeriod="1m"))
    sync_pods(kube)
    controller = Controller(make_reconciler(kube, prom, None), kube_client(kube), clock)
    assert sorted(o.key for o in controller.step()) == ["default/fast", "default/slow"]
    clock.advance(15)
    assert [o.key for o in controller.step()] == ["default/fast"]
    clock.advance(5)
    assert controller.step() == [], "nothing is due 5 s later"
    clock.advance(40)
    assert sorted(o.key for o in controller.step()) == ["default/fast", "default/slow"]


def test_watch_cache_sees_new_resources_and_spec_changes(kube, clock, prom) -> None:
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    cache = AutoscalerCache(kube_client(kube), None, watch_timeout_seconds=2)
    cache.start()
    try:
        assert _wait(cache.synced.is_set)
        controller = Controller(make_reconciler(kube, prom, None), kube_client(kube), clock, cache=cache)
        assert controller.step() == []
        kube.create(*PA, autoscaler(forecast=None, capacity=None))
        assert _wait(lambda: len(cache.items()) == 1)
        assert [o.key for o in controller.step()] == ["default/chat"]
        assert controller.step() == [], "not due again within the sync period"
        pa = kube.get(*PA, "chat")
        pa["spec"]["maxReplicas"] = 7
        kube.update(*PA, pa)
        assert _wait(lambda: "default/chat" in cache.changed)
        assert [o.key for o in controller.step()] == ["default/chat"], "a spec change syncs at once"
        kube.delete(*PA, "chat")
        assert _wait(lambda: cache.items() == [])
    finally:
        cache.stop()


def test_probes_and_metrics_endpoint(kube, clock, prom) -> None:
    metrics = ControllerMetrics()
    ticks = iter([0.0, 1.0, 500.0, 500.0])
    health = Health(lambda: next(ticks), stall_seconds=120)
    server = serve(metrics, health, host="127.0.0.1", port=0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        def get(path):
            try:
                with urllib.request.urlopen(base + path, timeout=2) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as err:
                return err.code, err.read().decode()
        assert get("/readyz")[0] == 503
        assert get("/healthz")[0] == 200, "alive before the first tick"
        health.tick(ready=True)  # at 0.0
        assert get("/readyz")[0] == 200
        assert get("/healthz")[0] == 200  # read at 1.0
        assert get("/healthz")[0] == 503  # read at 500.0: the loop stalled
        metrics.desired.labels("default", "chat").set(3)
        metrics.record_reason("default", "chat", "ScaleUpPredictive")
        metrics.record_reason("default", "chat", "NoChange")
        status, text = get("/metrics")
        assert status == 200
        assert 'prescaler_desired_replicas{name="chat",namespace="default"} 3.0' in text
        assert 'prescaler_decision_reason{name="chat",namespace="default",reason="ScaleUpPredictive"} 0.0' in text
        assert 'prescaler_decision_reason{name="chat",namespace="default",reason="NoChange"} 1.0' in text
        assert get("/nope")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_watch_from_a_compacted_version_reports_an_error_event_for_relisting(kube) -> None:
    kube.store.log = type(kube.store.log)(maxlen=2)
    for i in range(4):
        kube.create(*PA, autoscaler(f"pa{i}"))
    events = list(kube_client(kube).watch_autoscalers(None, "1", timeout_seconds=1))
    assert events[0][0] == "ERROR" and events[0][1]["code"] == 410


def test_cache_relists_after_an_error(kube, prom) -> None:
    kube.create(*PA, autoscaler("a"))
    client = kube_client(kube)
    cache = AutoscalerCache(client, None, watch_timeout_seconds=1)
    kube.fail_next(r"/predictiveautoscalers$", 1, status=500, method="GET")  # the first list fails
    cache.start()
    try:
        assert _wait(cache.synced.is_set, seconds=5), "the cache relists after the failed first list"
        assert [o["metadata"]["name"] for o in cache.items()] == ["a"]
    finally:
        cache.stop()


@pytest.mark.parametrize(
    "overrides, period",
    [
        pytest.param({}, 15, id="default-15s"),
        pytest.param({"syncPeriod": "1m"}, 60, id="one-minute"),
        pytest.param({"syncPeriod": "2m30s"}, 150, id="compound"),
        pytest.param({"syncPeriod": "0.25h"}, 900, id="fractional"),
        # A spec that does not parse syncs at the default period, and each sync reports it (SpecValid).
        pytest.param({"syncPeriod": "1m", "minReplicas": 30}, 15, id="invalid-spec-keeps-the-default"),
    ],
)
def test_the_sync_period_is_the_parsed_specs(kube, clock, prom, overrides, period) -> None:
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler(forecast=None, capacity=None, **overrides))
    sync_pods(kube)
    controller = Controller(make_reconciler(kube, prom, None), kube_client(kube), clock)
    first = controller.step()
    assert [o.key for o in first] == ["default/chat"]
    assert (first[0].reason == "InvalidSpec") is ("minReplicas" in overrides)
    clock.advance(period - 1)
    assert controller.step() == [], f"not due {period - 1} s after the last sync"
    clock.advance(1)
    assert [o.key for o in controller.step()] == ["default/chat"], f"due {period} s after the last sync"


def test_the_loop_and_the_sync_validate_an_unchanged_spec_once(kube, clock, prom, monkeypatch) -> None:
    """The loop reads syncPeriod from the spec the sync parses (one SpecCache), not from the raw object."""
    import controller.resource as resource

    parses = []
    real_parse = resource._parse_spec
    monkeypatch.setattr(resource, "_parse_spec", lambda raw: parses.append(raw) or real_parse(raw))
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler(forecast=None, capacity=None, syncPeriod="30s"))
    sync_pods(kube)
    controller = Controller(make_reconciler(kube, prom, None), kube_client(kube), clock)
    synced = []
    for _ in range(6):  # ticks at 0, 10, ..., 50 s: syncs at 0 and 30 s
        synced.append(len(controller.step()))
        clock.advance(10)
    assert synced == [1, 0, 0, 1, 0, 0]
    assert len(parses) == 1, "validated once, though the loop asked for syncPeriod at every tick"
