"""The service over a changing set of workloads: the config's `discovery:` section, and the
scheduler's resync against PredictiveAutoscalers on the fake API server (real HTTP both ways: the
kubernetes client to tests/fakekube, httpx to the service under uvicorn).
"""

from __future__ import annotations

import asyncio
import copy
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from forecaster.service.config import ConfigError, parse_config
from forecaster.service.server import Service, build_service
from prescaler.discovery import workload_source
from tests.fakekube import FakeClock
from tests.service.autoscalers import (
    NS,
    PA,
    autoscaler,
    create,
    edit,
    kube_client,
    start_kube,
)
from tests.service.conftest import T0, TRACE, LiveServer, config_dict


@pytest.fixture
def kclock() -> FakeClock:
    """One clock for the API server (creation times) and the service: inside the shipped trace."""
    return FakeClock(T0)


@pytest.fixture
def kube(kclock):
    server = start_kube(kclock)
    yield server
    server.stop()


LIST = r"/predictiveautoscalers$"


class CountingExecutor(Executor):
    """Threads, counting the retrain jobs submitted: a retrain is one job per signal."""

    def __init__(self):
        self.pool = ThreadPoolExecutor(2)
        self.submitted = 0

    def submit(self, fn, /, *args, **kwargs) -> Future:
        self.submitted += 1
        return self.pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def discovery_config(tmp: Path, *, overrides: tuple[str, ...] = ("m-small", "chat")):
    # One day of backtest keeps each retrain short on the shared machine (the objects say the rest).
    return parse_config({
        "history": {"source": "trace", "trace": {"path": str(TRACE)}},
        "registry_dir": str(tmp / "models"),
        "discovery": {"enabled": True, "namespaces": [NS], "resync": "30s"},
        "workloads": [{"name": name, "backtest_window": "1d"} for name in overrides],
    }, "test")


class Running:
    """The service with its source on the fake API server, under uvicorn; ticks driven by hand."""

    def __init__(self, tmp: Path, server, clock):
        self.clock = clock
        self.executor = CountingExecutor()
        config = discovery_config(tmp)
        self.service: Service = build_service(
            config, clock=clock, executor=self.executor, run_scheduler=False,
            workloads=workload_source(config, kube=kube_client(server)),
        )
        self.live = LiveServer(self.service.app)
        self.http = httpx.Client(base_url=self.live.url, timeout=10)

    @property
    def scheduler(self):
        return self.service.state.scheduler

    def resync(self, seconds: float = 30) -> None:
        """Time passes to the next resync; the scheduler lists, retrains what it must, refreshes."""
        self.clock.advance(seconds)

        async def ticks() -> None:
            await self.scheduler.tick()
            await self.scheduler.wait_idle()
            await self.scheduler.tick()

        asyncio.run(ticks())

    def names(self) -> list[str]:
        return [w["name"] for w in self.http.get("/v1/workloads").json()]

    def source(self) -> dict:
        return self.http.get("/v1/workload-source").json()

    def close(self) -> None:
        self.http.close()
        self.live.close()
        self.executor.shutdown()


@pytest.fixture
def running(tmp_path, kube, kclock):
    created = []

    def start() -> Running:
        created.append(Running(tmp_path, kube, kclock))
        return created[-1]

    yield start
    for r in created:
        r.close()


def test_not_ready_before_the_first_listing_then_an_outage_keeps_the_last_set(kube, running):
    create(kube, autoscaler("m-small"))
    kube.fail_next(LIST, status=500)  # the listing at start-up fails
    svc = running()
    assert svc.names() == []
    assert svc.http.get("/readyz").status_code == 503, "nothing listed yet: not ready, even with nothing to serve"
    status = svc.source()
    assert status["synced_at"] is None and "500" in status["error"]
    assert (status["source"], status["resync_seconds"]) == (f"PredictiveAutoscalers in {NS}", 30.0)

    svc.resync()
    assert svc.names() == ["m-small"]
    assert svc.http.get("/readyz").status_code == 200
    assert svc.http.get("/v1/workloads/m-small/forecast").status_code == 200
    status = svc.source()
    assert status["error"] is None and status["synced_at"] is not None

    fault = kube.fail_next(LIST, count=1000, status=503)  # the API server goes away
    svc.resync()
    assert svc.names() == ["m-small"], "the last listed set keeps serving"
    assert svc.http.get("/v1/workloads/m-small/forecast").status_code == 200
    assert svc.http.get("/readyz").status_code == 200
    assert "503" in svc.source()["error"]

    fault.count = 0
    svc.resync()
    assert svc.source()["error"] is None


def test_resync_adds_updates_and_removes_workloads(kube, kclock, running):
    create(kube, autoscaler("m-small"), kclock)
    svc = running()
    svc.resync()
    assert svc.names() == ["m-small"] and svc.executor.submitted == 1  # one signal: one job

    # added: served, and trained, after the next resync
    create(kube, autoscaler("chat"), kclock)
    assert svc.names() == ["m-small"], "not before the resync"
    svc.resync()
    assert svc.names() == ["chat", "m-small"]
    assert svc.executor.submitted == 2
    chat = svc.http.get("/v1/workloads/chat").json()
    assert chat["origin"] == f"PredictiveAutoscaler {NS}/chat with config workloads[chat]"
    assert svc.http.get("/v1/workloads/chat/forecast").status_code == 200

    # capacity: applies at once, no retrain
    before = svc.http.get("/v1/keda/m-small").json()["value"]
    assert before > 1, "the trace's load needs more than one replica"
    edit(kube, "m-small", maxReplicas=1)
    svc.resync()
    assert svc.http.get("/v1/keda/m-small").json()["value"] == 1
    assert svc.executor.submitted == 2, "a capacity change retrains nothing"

    # a field the models depend on (the quantile): retrains at once
    edit(kube, "m-small", forecast={"quantile": 0.95})
    svc.resync()
    assert svc.executor.submitted == 3
    assert svc.http.get("/v1/workloads/m-small").json()["quantile"] == 0.95
    assert svc.http.get("/v1/workloads/m-small/forecast").status_code == 200

    # deleted: no longer served, and said so
    kube.delete(*PA, "chat", NS)
    svc.resync()
    assert svc.names() == ["m-small"]
    assert svc.http.get("/v1/workloads/chat").status_code == 404
    assert svc.http.get("/v1/workloads/chat/forecast").status_code == 404
    assert svc.http.get("/v1/keda/chat").status_code == 404
    skipped = svc.source()["skipped"]
    assert skipped["config workloads[chat]"].startswith("no PredictiveAutoscaler names workload 'chat'")


def test_a_skipped_object_is_reported_and_served_once_fixed(kube, kclock, running):
    create(kube, autoscaler("m-small"), kclock)
    create(kube, autoscaler("chat", forecast={"model": "arima"}), kclock)
    svc = running()
    svc.resync()
    assert svc.names() == ["m-small"]
    reason = svc.source()["skipped"][f"PredictiveAutoscaler {NS}/chat"]
    assert reason.startswith("spec.forecast.model: model 'arima' is neither 'auto' nor")
    edit(kube, "chat", forecast={"model": "last_value"})
    svc.resync()
    assert svc.names() == ["chat", "m-small"]
    assert f"PredictiveAutoscaler {NS}/chat" not in svc.source()["skipped"]


def test_a_workload_listed_after_start_is_restored_not_retrained(kube, kclock, running):
    create(kube, autoscaler("chat"), kclock)
    first = running()
    first.resync()
    assert first.executor.submitted == 1
    first.close()

    kube.delete(*PA, "chat", NS)
    create(kube, autoscaler("m-small"), kclock)
    second = running()  # the same registry: chat's model is there, its object is not
    second.resync()
    assert second.names() == ["m-small"] and second.executor.submitted == 1
    create(kube, autoscaler("chat"), kclock)
    second.resync()
    assert second.names() == ["chat", "m-small"]
    assert second.executor.submitted == 1, "restored from the registry, not trained again"
    restored = [d for d in second.scheduler.decisions if d.workload == "chat" and d.outcome == "restored"]
    assert restored, list(second.scheduler.decisions)
    assert second.http.get("/v1/workloads/chat/forecast").status_code == 200


def test_the_static_config_is_one_listing_at_start(live):
    with httpx.Client(base_url=live.url, timeout=10) as http:
        status = http.get("/v1/workload-source").json()
        names = [w["name"] for w in http.get("/v1/workloads").json()]
    assert (status["source"], status["resync_seconds"], status["error"], status["skipped"]) == \
        ("the config's workloads", None, None, {})
    assert status["synced_at"] is not None and names == ["m-small"]


# --- the config's discovery section --------------------------------------------------------------

def _data(tmp: Path, discovery: dict | None, workloads: list | None) -> dict:
    data = copy.deepcopy(config_dict(tmp))
    if discovery is not None:
        data["discovery"] = discovery
    if workloads is not None:
        data["workloads"] = workloads
    return data


CONFIG_REFUSED = [
    pytest.param(None, [{"name": "a", "model_name": "a", "signals": {"requests": {}}}],
                 "workloads.0.capacity: Field required", id="without-discovery-entries-are-complete"),
    pytest.param({"enabled": False}, [{"name": "a", "quantile": 0.5}],
                 "workloads.0.model_name: Field required", id="without-discovery-no-override"),
    pytest.param(None, [], "workloads must list at least one workload (or set discovery.enabled)",
                 id="without-discovery-something-to-serve"),
    pytest.param({"enabled": True}, [{"name": "a", "quantile": 1.5}],
                 "workloads.0.quantile: quantile 1.5 must be strictly between 0 and 1",
                 id="an-override-is-checked-as-a-workload"),
    pytest.param({"enabled": True}, [{"name": "a", "capacity": {"min_replicas": -1}}],
                 "workloads.0.capacity.min_replicas: Input should be greater than or equal to 0",
                 id="an-override-capacity-is-checked"),
    pytest.param({"enabled": True}, [{"name": "a"}, {"name": "a", "quantile": 0.5}],
                 "workload names must be unique; repeated: ['a']", id="one-override-per-name"),
    pytest.param({"enabled": True, "namespaces": ["llm", "team-b", "llm"]}, [],
                 "discovery.namespaces: namespaces lists ['llm'] more than once", id="namespaces-once"),
    pytest.param({"enabled": True, "namespaces": ["LLM"]}, [],
                 "discovery.namespaces.0: 'LLM' must be a DNS-1123 label", id="namespaces-are-labels"),
    pytest.param({"enabled": True, "resync": "soon"}, [], "discovery.resync", id="resync-a-duration"),
    pytest.param({"enabled": True, "watch": True}, [], "discovery.watch: Extra inputs are not permitted",
                 id="no-unknown-keys"),
]


@pytest.mark.parametrize(("discovery", "workloads", "message"), CONFIG_REFUSED)
def test_the_discovery_config_is_refused_naming_the_field(tmp_path, discovery, workloads, message):
    with pytest.raises(ConfigError) as info:
        parse_config(_data(tmp_path, discovery, workloads), "svc.yaml")
    assert message in str(info.value)


@pytest.mark.parametrize("workloads", [[], [{"name": "m-small", "quantile": 0.95}],
                                       [{"name": "solo", "model_name": "solo", "signals": {"requests": {}},
                                         "capacity": {"per_replica": {"requests": 1}}}]],
                         ids=["nothing", "an-override", "a-complete-entry"])
def test_with_discovery_overrides_and_an_empty_list_are_valid(tmp_path, workloads):
    config = parse_config(_data(tmp_path, {"enabled": True}, workloads), "svc.yaml")
    assert config.discovery.enabled and [w.name for w in config.workloads] == [w["name"] for w in workloads]
    assert config.discovery.namespaces == [] and config.discovery.resync.total_seconds() == 30


def test_the_kubeconfig_path_is_relative_to_the_config_file(tmp_path):
    path = tmp_path / "sub" / "svc.yaml"
    path.parent.mkdir()
    path.write_text(f"history: {{source: trace, trace: {{path: {TRACE}}}}}\n"
                    "discovery: {enabled: true, kubeconfig: kc.yaml}\n")
    from forecaster.service.config import load_config

    assert load_config(path).discovery.kubeconfig == tmp_path / "sub" / "kc.yaml"
