"""The service persists through the model registry and serves the latest good model after a restart."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor

import httpx
import pytest

from forecaster.prometheus.errors import PrometheusDeadlineExceeded
from forecaster.registry import Registry
from forecaster.service.config import parse_config
from forecaster.service.history import TraceReplaySource
from forecaster.service.server import Service, build_service
from tests.service.conftest import TRACE, FakeClock, LiveServer, config_dict, make_config

SIGNALS = {"requests", "output_tokens"}
# One candidate: the tests are about persistence, and each retrain costs half as much (shared machine).
MODEL = {"model": "last_value"}


class RecordingExecutor(Executor):
    """Runs jobs in a thread once `gate` is open, and counts them: a restart that serves from the
    registry submits none; a held gate is a retrain that takes as long as the test likes."""

    def __init__(self):
        self.pool = ThreadPoolExecutor(2)
        self.submitted = 0
        self.gate = threading.Event()
        self.gate.set()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        self.submitted += 1

        def gated():
            if not self.gate.wait(30):
                raise TimeoutError("gate never opened")
            return fn(*args, **kwargs)

        return self.pool.submit(gated)


def run_ticks(service: Service, retrains: int, clock: FakeClock) -> None:
    """Train `retrains` times, 7 hours apart (past the 6 h retrain interval), then refresh."""
    scheduler = service.state.scheduler

    async def scenario():
        for n in range(retrains):
            if n:
                clock.advance(hours=7)
            await scheduler.tick()
            await scheduler.wait_idle()
        await scheduler.tick()

    asyncio.run(scenario())


def restart(config, clock: FakeClock) -> tuple[Service, RecordingExecutor]:
    executor = RecordingExecutor()
    service = build_service(config, clock=clock, executor=executor, run_scheduler=False)
    return service, executor


def flip_a_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def decisions_over_http(service: Service) -> list[dict]:
    server = LiveServer(service.app)
    try:
        return httpx.get(f"{server.url}/v1/workloads/m-small/decisions", timeout=10).json()
    finally:
        server.close()


@pytest.fixture(scope="module")
def trained_twice(tmp_path_factory) -> tuple[Service, FakeClock]:
    """A service that retrained twice, 7 h apart: two versions of every signal in its registry.
    Tests copy its registry (`stored`) rather than train again."""
    tmp = tmp_path_factory.mktemp("template")
    clock = FakeClock()
    service = build_service(make_config(tmp, **MODEL), clock=clock, executor=ThreadPoolExecutor(2),
                            run_scheduler=False)
    run_ticks(service, 2, clock)
    return service, FakeClock(clock.now)


@pytest.fixture()
def stored(trained_twice, tmp_path):
    """(config, clock) of a restarting service whose registry dir is a copy of `trained_twice`'s."""
    template, clock = trained_twice
    config = make_config(tmp_path, **MODEL)
    shutil.copytree(template.config.registry_dir, config.registry_dir)
    return config, FakeClock(clock.now)


def test_every_accepted_model_is_in_the_registry_with_its_card(trained_twice):
    service, _ = trained_twice
    config = service.config
    registry = Registry(config.registry_dir)
    state = service.state.scheduler.workloads["m-small"]
    for signal in SIGNALS:
        versions = registry.versions("m-small", signal)
        assert len(versions) == 2, versions
        # What serves is the newest stored version, card for card.
        assert state.serving[signal].card == registry.verify("m-small", signal, versions[-1])
        second = state.serving[signal].card.selection
        assert second.outcome == "accepted" and second.replaces_version == versions[0]
        assert second.replaces == "last_value" and second.serving_score is not None
    logged = [json.loads(line) for line in (config.registry_dir / "decisions.jsonl").read_text().splitlines()]
    assert [d["version"] for d in logged if d["signal"] == "requests"] == registry.versions("m-small", "requests")


def test_a_restart_serves_the_stored_model_at_once(stored):
    config, clock = stored
    served = {s: Registry(config.registry_dir).versions("m-small", s)[-1] for s in SIGNALS}
    clock.advance(minutes=10)
    service, executor = restart(config, clock)
    scheduler = service.state.scheduler
    state = scheduler.workloads["m-small"]
    assert state.ready and not state.retrain_requested  # before any tick
    asyncio.run(scheduler.tick())
    assert executor.submitted == 0, "a restart with stored models must not retrain at once"
    assert service.state.ready()
    assert {s: v.card.version for s, v in state.serving.items()} == served
    assert service.state.read_metric("m-small", "prescaler-desired-replicas").value >= 1

    decisions = decisions_over_http(service)
    restored = [d for d in decisions if d["outcome"] == "restored"]
    assert {d["signal"] for d in restored} == SIGNALS
    assert all(d["version"] == served[d["signal"]] and "skipped" not in d["reason"] for d in restored)
    # The earlier run's decisions were reloaded from the log, before the restore's.
    assert [d["outcome"] for d in decisions] == ["accepted"] * 4 + ["restored"] * 2

    # The restored models retrain on their own schedule: 6 h after they were stored.
    executor.gate.clear()

    async def later():
        clock.advance(hours=6)
        await scheduler.tick()
        assert executor.submitted == len(SIGNALS) and state.retraining
        executor.gate.set()
        await scheduler.wait_idle()

    asyncio.run(later())


def test_a_corrupt_newest_version_falls_back_to_the_previous_one(stored):
    config, clock = stored
    registry = Registry(config.registry_dir)
    older, newest = registry.versions("m-small", "requests")
    flip_a_byte(registry.path("m-small", "requests", newest) / "artifact.pkl")

    service, executor = restart(config, clock)
    scheduler = service.state.scheduler
    state = scheduler.workloads["m-small"]
    assert state.serving["requests"].card.version == older
    assert state.serving["output_tokens"].card.version == registry.versions("m-small", "output_tokens")[-1]

    # The fallback is older than the retrain interval, so the first tick also starts a retrain; the
    # previous version serves meanwhile.
    executor.gate.clear()

    async def first_tick():
        await scheduler.tick()
        assert service.state.ready() and state.retraining
        assert service.state.cache.get("m-small").models["requests"].endswith(f"@{older}")
        executor.gate.set()
        await scheduler.wait_idle()

    asyncio.run(first_tick())
    assert executor.submitted == len(SIGNALS)
    assert state.serving["requests"].card.selection.replaces_version == older

    restored = {d["signal"]: d for d in decisions_over_http(service) if d["outcome"] == "restored"}
    assert restored["requests"]["version"] == older
    assert f"skipped 1 newer version(s) that do not load: {newest}" in restored["requests"]["reason"]
    assert "checksum mismatch" in restored["requests"]["reason"]
    assert "skipped" not in restored["output_tokens"]["reason"]


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        pytest.param(lambda d: flip_a_byte(d / "artifact.pkl"), "checksum mismatch", id="flipped-artifact"),
        pytest.param(lambda d: (d / "card.json").write_text("{not json"), "card.json is unreadable",
                     id="broken-card"),
        pytest.param(lambda d: (d / "artifact.pkl").unlink(), "artifact is unreadable", id="missing-artifact"),
    ],
)
def test_when_no_version_loads_the_service_retrains(stored, damage, said):
    config, clock = stored
    registry = Registry(config.registry_dir)
    versions = registry.versions("m-small", "requests")
    for version in versions:
        damage(registry.path("m-small", "requests", version))

    service, _ = restart(config, clock)
    scheduler = service.state.scheduler
    state = scheduler.workloads["m-small"]
    assert "requests" not in state.serving and "output_tokens" in state.serving
    failed = [d for d in scheduler.decisions if d.outcome == "failed"]
    assert len(failed) == 1 and failed[0].signal == "requests"
    assert "restore from the registry failed" in failed[0].reason and said in failed[0].reason
    assert all(v in failed[0].reason for v in versions)
    # Not every signal serves, so the first tick retrains rather than waiting for the schedule.
    assert state.retrain_requested and not service.state.ready()


def test_a_stored_model_at_another_bin_is_not_served(stored, tmp_path):
    config, clock = stored
    coarser = make_config(tmp_path, bin="30m", **MODEL)
    assert coarser.registry_dir == config.registry_dir
    service, _ = restart(coarser, clock)
    state = service.state.scheduler.workloads["m-small"]
    assert state.serving == {} and state.retrain_requested
    reasons = [d.reason for d in service.state.scheduler.decisions if d.outcome == "failed"]
    assert len(reasons) == 2 and all("bin 600s but the config says 1800s" in r for r in reasons)


def test_restore_can_be_turned_off(stored):
    config, clock = stored
    service = build_service(config, clock=clock, executor=ThreadPoolExecutor(1), run_scheduler=False,
                            restore=False)
    state = service.state.scheduler.workloads["m-small"]
    assert state.serving == {} and not service.state.scheduler.decisions


def test_old_versions_are_pruned_and_crash_leftovers_removed(stored, tmp_path):
    config, clock = stored
    data = config_dict(tmp_path, **MODEL)
    data["retention"] = {"keep_versions": 1}
    config = parse_config(data, "test")
    parent = Registry(config.registry_dir).path("m-small", "requests")
    stale, fresh = parent / ".tmp-20250118T120300Z-0123456789ab", parent / ".tmp-20250118T120301Z-0123456789ab"
    for leftover in (stale, fresh, parent / ".trash-20250118T120300Z-abcdef-0123456789ab"):
        leftover.mkdir()
    hours_ago = time.time() - 2 * 3600
    os.utime(stale, (hours_ago, hours_ago))

    service, _ = restart(config, clock)
    # A temp dir older than an hour is a crashed save; a fresh one may be a save in progress.
    assert {p.name for p in parent.iterdir() if p.name.startswith(".")} == {fresh.name}
    scheduler = service.state.scheduler
    assert scheduler.request_retrain("m-small")
    clock.advance(minutes=1)
    run_ticks(service, 1, clock)
    registry = Registry(config.registry_dir)
    for signal in SIGNALS:
        serving = scheduler.workloads["m-small"].serving[signal].card.version
        assert registry.versions("m-small", signal) == [serving]


class HistoryDown:
    """The shipped trace as history, or, while `error` is set, that error raised by every fetch;
    while `hold` is clear a fetch waits for it (a Prometheus that takes its time)."""

    def __init__(self):
        self.source = TraceReplaySource(TRACE)
        self.error: Exception | None = None
        self.hold = threading.Event()
        self.hold.set()
        self.fetching = threading.Event()

    def __call__(self, workload, start, end):
        self.fetching.set()
        if not self.hold.wait(30):
            raise TimeoutError("hold never released")
        if self.error is not None:
            raise self.error
        return self.source(workload, start, end)


DEADLINE = PrometheusDeadlineExceeded("http://prometheus:9090", "sum(rate(vllm:request_success_total[600s]))", 120)


def test_restored_models_with_history_down_say_so_and_recover(stored):
    """Prometheus past its deadline after a restart: the models were restored, so the 503 must say
    that and give the fetch's error (it said "first model still training"), /readyz and the
    workload's status carry the error, and a refresh that works again clears it."""
    config, clock = stored
    clock.advance(minutes=10)  # the stored models are fresh: no retrain, only refreshes
    history = HistoryDown()
    history.error = DEADLINE
    executor = RecordingExecutor()
    service = build_service(config, clock=clock, history=history, executor=executor, run_scheduler=False)
    scheduler = service.state.scheduler
    state = scheduler.workloads["m-small"]
    asyncio.run(scheduler.tick())
    assert executor.submitted == 0
    assert "refresh failed" in state.last_error and "within the 120 s deadline" in state.last_error

    server = LiveServer(service.app)
    try:
        forecast = httpx.get(f"{server.url}/v1/workloads/m-small/forecast", timeout=10)
        assert forecast.status_code == 503
        detail = forecast.json()["detail"]
        assert "still training" not in detail
        assert "restored from the registry" in detail and "within the 120 s deadline" in detail
        for signal in SIGNALS:
            assert f"{signal} last_value@{state.serving[signal].card.version}" in detail
        external = httpx.get(f"{server.url}/apis/external.metrics.k8s.io/v1beta1/namespaces/llm/"
                             "prescaler-desired-replicas", timeout=10)
        assert external.status_code == 503 and external.json()["message"] == detail
        ready = httpx.get(f"{server.url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert "within the 120 s deadline" in ready.json()["detail"]["m-small"]["last_error"]
        assert ready.json()["detail"]["m-small"]["reason"] == detail
        summary = httpx.get(f"{server.url}/v1/workloads/m-small", timeout=10).json()
        assert "within the 120 s deadline" in summary["last_error"] and summary["ready"]
        assert summary["not_ready_reason"] == detail

        history.error = None
        clock.advance(minutes=1)
        asyncio.run(scheduler.tick())
        assert state.last_error is None, "the refresh works again: its old error is not current"
        assert httpx.get(f"{server.url}/v1/workloads/m-small/forecast", timeout=10).status_code == 200
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    finally:
        server.close()


def test_a_history_fetch_in_flight_is_what_the_503_says(stored):
    """While the first refresh after a restart waits on a slow Prometheus, the 503 says the models are
    restored and the history fetch is running, not that the first model is training."""
    config, clock = stored
    clock.advance(minutes=10)
    history = HistoryDown()
    history.hold.clear()
    service = build_service(config, clock=clock, history=history, executor=RecordingExecutor(),
                            run_scheduler=False)
    scheduler = service.state.scheduler
    server = LiveServer(service.app)

    async def scenario() -> str:
        tick = asyncio.create_task(scheduler.tick())
        try:
            assert await asyncio.to_thread(history.fetching.wait, 10)
            response = await asyncio.to_thread(
                httpx.get, f"{server.url}/v1/workloads/m-small/forecast", timeout=10)
            assert response.status_code == 503
            return response.json()["detail"]
        finally:
            history.hold.set()
            await tick

    try:
        detail = asyncio.run(scenario())
    finally:
        server.close()
    assert "still training" not in detail and "restored from the registry" in detail
    assert f"history fetch running since {clock.now.isoformat()}" in detail
