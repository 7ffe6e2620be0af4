"""Assemble the service from a config: history source, worker pool, scheduler, HTTP app, gRPC scaler.

`build_service` wires the parts with injectable edges (history source, workload source, clock,
executor), so tests run the real app; `serve` runs it under uvicorn with the scheduler in the app's
lifespan. The workload source defaults to the config's list; with `discovery.enabled` the composition
root hands in the PredictiveAutoscaler source (prescaler.discovery), which this package cannot import.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TypedDict

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from forecaster.contract import Clock, system_clock
from forecaster.registry import Registry
from forecaster.service.app import _load_token, create_app
from forecaster.service.cache import ForecastCache
from forecaster.service.config import ConfigError, ServiceConfig
from forecaster.service.decisions import DecisionLog
from forecaster.service.history import HistorySource, make_source
from forecaster.service.scheduler import Scheduler
from forecaster.service.state import ServiceState
from forecaster.service.workloads import WorkloadSource

log = logging.getLogger("prescaler.forecaster.service")


class _UvicornTLS(TypedDict, total=False):
    """The TLS keywords of uvicorn.run we set; those left out keep uvicorn's defaults (no TLS)."""

    ssl_certfile: str
    ssl_keyfile: str
    ssl_ca_certs: str
    ssl_cert_reqs: int


@dataclass
class Service:
    config: ServiceConfig
    state: ServiceState
    app: FastAPI
    executor: Executor


# How long a shutdown waits for retrains in flight. A pod has 30 s from SIGTERM to SIGKILL by default;
# waiting for a training of minutes kept the forecaster "waiting for application shutdown" past it.
# An abandoned retrain loses nothing: versions are written atomically and the next start restores
# the last good one (its temporary directory is pruned by the registry's cleanup).
SHUTDOWN_TRAINING_GRACE_S = 10.0


def stop_executor(executor: Executor, grace_s: float = 5.0) -> None:
    """Cancel queued retrains and end the worker processes, even one in the middle of a training.

    `shutdown(wait=False)` alone leaves a running worker training after the service has gone (seen: a
    worker still busy 35 minutes after a clean SIGTERM, outside a container that would have killed it).
    """
    # ProcessPoolExecutor keeps its workers in `_processes` (CPython 3.8-3.13); read before shutdown,
    # which may drop the reference.
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(grace_s)
        if process.is_alive():
            process.kill()
            process.join(grace_s)


def make_executor(workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: the parent runs uvicorn and gRPC threads, and forking a threaded process can
    # copy a held lock into the child (grpc documents fork as unsupported once channels exist).
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def build_service(
    config: ServiceConfig,
    *,
    history: HistorySource | None = None,
    clock: Clock = system_clock,
    executor: Executor | None = None,
    run_scheduler: bool = True,
    poll_seconds: float = 1.0,
    metrics_registry: CollectorRegistry | None = None,
    restore: bool = True,
    workloads: WorkloadSource | None = None,
    shutdown_grace_s: float = SHUTDOWN_TRAINING_GRACE_S,
) -> Service:
    """The service, wired. With `restore` (the default) the registry's latest good model of every
    signal serves from the first tick, and the decisions log's recent entries are reloaded.

    `workloads`: where the set of workloads comes from (default: the config's `workloads:` list). It
    is listed once here, so a start-up restores what it lists; a source that cannot be read now
    is listed again at its next resync, and the service starts with no workload meanwhile.
    """
    if config.discovery.enabled and workloads is None:
        raise ConfigError(
            "discovery.enabled needs the PredictiveAutoscaler source, which `prescaler forecaster serve` "
            "wires (prescaler.discovery.workload_source); hand it in as build_service(workloads=...)"
        )
    history = history or make_source(config)
    executor = executor or make_executor(config.workers)
    cache = ForecastCache()
    scheduler = Scheduler(
        config, history, cache, executor=executor, clock=clock,
        # The system clock, not `clock`: the parent only reads and cleans the registry, and
        # cleanup_temp compares against file mtimes, which are wall-clock time (workers stamp
        # versions with the retrain's start from `clock`).
        registry=Registry(config.registry_dir),
        decisions_log=DecisionLog(config.registry_dir / "decisions.jsonl",
                                  max_lines=config.retention.decisions_max_lines,
                                  max_bytes=config.retention.decisions_max_bytes),
        source=workloads,
    )
    scheduler.sync_workloads()
    state = ServiceState(config, scheduler, clock)
    token = _load_token(config.auth.bearer_token_file)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        stop = asyncio.Event()
        task = asyncio.create_task(scheduler.run(stop, poll_seconds)) if run_scheduler else None
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task
            try:
                await asyncio.wait_for(scheduler.wait_idle(), shutdown_grace_s)
            except (asyncio.TimeoutError, TimeoutError):
                log.warning("shutting down with retrains in flight after %.0f s: abandoned (the last good "
                            "versions serve at the next start)", shutdown_grace_s)

    app = create_app(state, token=token, metrics_registry=metrics_registry, lifespan=lifespan)
    if restore:
        # After create_app, which hooks its metrics into the scheduler's decisions: the `restored`
        # decisions are counted too.
        scheduler.restore()
    return Service(config, state, app, executor)


def serve(config: ServiceConfig, *, log_level: str = "info",
          workloads: WorkloadSource | None = None) -> None:  # pragma: no cover - blocking
    """Run the HTTP API (uvicorn) and the KEDA gRPC scaler until interrupted."""
    import uvicorn

    from forecaster.service.keda import start_grpc_server, stop_grpc_server

    service = build_service(config, workloads=workloads)
    grpc_server = None
    if config.bind.grpc_port is not None:
        grpc_server, port, servicer = start_grpc_server(
            service.state, host=config.bind.host, port=config.bind.grpc_port, tls=config.tls,
            token=_load_token(config.auth.bearer_token_file),
        )
        log.info("KEDA external scaler on %s:%d", config.bind.host, port)
    kwargs: _UvicornTLS = {}
    if config.tls is not None:
        import ssl

        kwargs = {"ssl_certfile": str(config.tls.cert_file), "ssl_keyfile": str(config.tls.key_file)}
        if config.tls.client_ca_file is not None:
            kwargs["ssl_ca_certs"] = str(config.tls.client_ca_file)
            kwargs["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    try:
        uvicorn.run(service.app, host=config.bind.host, port=config.bind.port, log_level=log_level,
                    **kwargs)
    finally:
        if grpc_server is not None:
            stop_grpc_server(grpc_server, servicer)
        stop_executor(service.executor)
