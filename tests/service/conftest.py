"""Fixtures: the real service on the shipped trace, a fake clock, and real servers on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import uvicorn

from forecaster.service.config import ServiceConfig, parse_config
from forecaster.service.server import Service, build_service

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT / "forecaster" / "data" / "servegen_m-small_1min.csv"
# Inside the shipped trace (2025-01-05 16:00 .. 2025-01-19 15:59): 13 days of history before it.
T0 = datetime(2025, 1, 18, 12, 3, tzinfo=timezone.utc)
TOKEN = "s3cret-token"


class FakeClock:
    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs) -> None:
        self.now += timedelta(**kwargs)


def config_dict(tmp: Path, **workload_overrides) -> dict:
    workload = {
        "name": "m-small", "model_name": "m-small", "namespace": "llm", "labels": {"team": "inference"},
        "signals": {"requests": {},
                    "output_tokens": {
                        "query": 'sum(rate(vllm:generation_tokens_total{model_name="$model_name"}[$step]))'}},
        "candidates": ["seasonal_naive_daily"],
        "backtest_window": "1d",  # keeps each retrain under a second on the shared test machine
        "capacity": {"per_replica": {"requests": 400.0}, "target_utilization": 0.8,
                     "min_replicas": 1, "max_replicas": 20},
    }
    workload.update(workload_overrides)
    return {
        "history": {"source": "trace", "trace": {"path": str(TRACE)}},
        "registry_dir": str(tmp / "models"),
        "workloads": [workload],
        "bind": {"host": "127.0.0.1", "port": 0, "grpc_port": 0},
    }


def make_config(tmp: Path, *, token: bool = False, **overrides) -> ServiceConfig:
    data = config_dict(tmp, **overrides)
    if token:
        path = tmp / "token"
        path.write_text(TOKEN + "\n")
        data["auth"] = {"bearer_token_file": str(path)}
    return parse_config(data, "test")


def trained(config: ServiceConfig, clock: FakeClock) -> Service:
    """A service whose first retrain and refresh have run (threads: fast; the process pool has its
    own test in test_scheduler.py)."""
    service = build_service(config, clock=clock, executor=ThreadPoolExecutor(2), run_scheduler=False)

    async def first() -> None:
        await service.state.scheduler.tick()
        await service.state.scheduler.wait_idle()
        await service.state.scheduler.tick()

    asyncio.run(first())
    assert service.state.ready(), service.state.scheduler.workloads
    return service


class LiveServer:
    """uvicorn on a free loopback port in a thread, stopped by close()."""

    def __init__(self, app, **uvicorn_kwargs):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on", **uvicorn_kwargs)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture(scope="session")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def service(tmp_path_factory, clock) -> Service:
    return trained(make_config(tmp_path_factory.mktemp("svc")), clock)


@pytest.fixture(scope="session")
def live(service):
    server = LiveServer(service.app)
    yield server
    server.close()


@pytest.fixture(scope="session")
def secured_service(tmp_path_factory, clock) -> Service:
    return trained(make_config(tmp_path_factory.mktemp("sec"), token=True), clock)


@pytest.fixture(scope="session")
def secured_live(secured_service):
    server = LiveServer(secured_service.app)
    yield server
    server.close()


@pytest.fixture()
def untrained(tmp_path):
    """A service before its first model: nothing ticked yet."""
    service = build_service(make_config(tmp_path), clock=FakeClock(), executor=ThreadPoolExecutor(1),
                            run_scheduler=False)
    server = LiveServer(service.app)
    yield service, server
    server.close()
