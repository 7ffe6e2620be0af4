"""Shutting down within a pod's grace period, with a training in flight (issue 18 item 9)."""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor

from fastapi.testclient import TestClient

from forecaster.service.server import build_service, stop_executor
from tests.service.conftest import FakeClock, make_config


def test_stop_executor_ends_a_worker_in_the_middle_of_a_job() -> None:
    """shutdown(wait=False) left a worker training after the service had gone."""
    executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    job = executor.submit(time.sleep, 120)
    deadline = time.monotonic() + 60
    while not job.running() and time.monotonic() < deadline:  # a spawned worker takes a moment to start
        time.sleep(0.05)  # a real process on the real clock: nothing to inject
    assert job.running(), "the worker never started the job"
    workers = list(executor._processes.values())  # noqa: SLF001 - what stop_executor must end
    started = time.monotonic()
    stop_executor(executor, grace_s=5.0)
    assert time.monotonic() - started < 10
    assert workers and all(_gone(p) for p in workers)


def _gone(process) -> bool:  # noqa: ANN001 - a multiprocessing process
    """The worker's OS process has ended. is_alive() alone can stay True after the end: the pool's
    manager thread may reap the child first, and then this thread's waitpid finds no child."""
    if not process.is_alive():
        return True
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return True
    return False


class NeverFinishes(Executor):
    """A training that outlasts any grace period: its future never completes."""

    def __init__(self) -> None:
        self.submitted = 0

    def submit(self, fn, /, *args, **kwargs) -> Future:  # noqa: ANN001 - Executor's signature
        self.submitted += 1
        return Future()


def test_shutdown_does_not_wait_for_a_training_past_the_grace(tmp_path) -> None:
    """The lifespan waited for every retrain in flight: 'waiting for application shutdown' for as long
    as the training took, past the pod's 30 s."""
    executor = NeverFinishes()
    service = build_service(make_config(tmp_path), clock=FakeClock(), executor=executor, poll_seconds=0.05,
                            restore=False, shutdown_grace_s=0.5)
    with TestClient(service.app):
        deadline = time.monotonic() + 10
        while executor.submitted == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # the scheduler's own loop runs on the real clock inside the app
        assert executor.submitted, "the scheduler never started a retrain"
        started = time.monotonic()
    assert time.monotonic() - started < 5, "the shutdown waited for the training"
