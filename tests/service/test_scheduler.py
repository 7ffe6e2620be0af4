"""Retraining and refresh: the replacement rule, the schedule on a fake clock, never blocking."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from forecaster.registry import Registry
from forecaster.service.history import TraceReplaySource
from forecaster.service.retrain import Job, run_job
from forecaster.service.scheduler import read_decisions
from forecaster.service.server import build_service, make_executor
from tests.service.conftest import TRACE, FakeClock, make_config


def daily_wave(days: int = 10, noise: float = 0.0) -> pd.Series:
    """A clean daily cycle at 10-minute bins: the daily seasonal naive is nearly exact on it, the
    last value is not, so the backtest ranks them without doubt."""
    index = pd.date_range("2025-01-01", periods=days * 144, freq="600s", tz="UTC")
    phase = np.arange(len(index)) / 144 * 2 * np.pi
    rng = np.random.default_rng(0)
    values = 100 + 80 * np.sin(phase) + noise * rng.standard_normal(len(index))
    return pd.Series(values, index=index, name="requests")


@pytest.mark.parametrize(
    ("model", "serving", "outcome", "serving_after"),
    [
        pytest.param("last_value", "seasonal_naive_daily", "kept", "seasonal_naive_daily",
                     id="worse-candidate-is-refused"),
        pytest.param("seasonal_naive_daily", "last_value", "accepted", "seasonal_naive_daily",
                     id="better-candidate-replaces"),
        pytest.param("seasonal_naive_daily", "seasonal_naive_daily", "accepted", "seasonal_naive_daily",
                     id="same-model-refits"),
        pytest.param("seasonal_naive_daily", None, "accepted", "seasonal_naive_daily", id="first-model"),
    ],
)
def test_replacement_only_when_not_worse(tmp_path, model, serving, outcome, serving_after):
    workload = make_config(tmp_path, model=model).workload("m-small")
    now = datetime(2025, 1, 11, tzinfo=timezone.utc)
    result = run_job(Job(workload, "requests", daily_wave(noise=2.0), serving, now, tmp_path / "models"))
    decision = result.decision
    assert decision.outcome == outcome, decision.reason
    if serving is not None:
        assert decision.serving_score is not None and decision.candidate_score is not None
        # Both scored on the same backtest: the rule is the comparison of these two numbers.
        assert (decision.candidate_score <= decision.serving_score) == (outcome == "accepted")
    registry = Registry(tmp_path / "models")
    if outcome == "kept":
        # Only an accepted model reaches the registry.
        assert result.card is None and decision.version is None and registry.list() == []
    else:
        card = result.card
        assert card.model == serving_after and card.selection.objective == decision.objective
        assert card.selection.outcome == outcome and card.selection.replaces == serving
        assert decision.version == card.version and registry.verify("m-small", "requests", card.version) == card
        assert card.training_window.end == daily_wave().index[-1].to_pydatetime()


def test_too_little_history_serves_a_baseline_knowingly(tmp_path):
    workload = make_config(tmp_path).workload("m-small")
    short = daily_wave(days=10).iloc[:3]  # fewer bins than any backtest needs
    result = run_job(Job(workload, "requests", short, None, datetime(2025, 1, 2, tzinfo=timezone.utc),
                         tmp_path / "models"))
    assert result.decision.outcome == "baseline"
    assert result.card is not None and result.card.selection.is_baseline
    assert "backtest failed" in result.card.backtest["problem"]


class GatedExecutor(Executor):
    """Runs jobs in a thread only after `gate` opens: a training job that takes as long as we like."""

    def __init__(self):
        self.gate = threading.Event()
        self.pool = ThreadPoolExecutor(2)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        def gated():
            if not self.gate.wait(30):
                raise TimeoutError("gate never opened")
            return fn(*args, **kwargs)
        return self.pool.submit(gated)


def test_schedule_and_serving_never_waits_for_training(tmp_path):
    clock = FakeClock()
    executor = GatedExecutor()
    config = make_config(tmp_path, retrain_interval="6h", interval="1m")
    service = build_service(config, clock=clock, executor=executor, run_scheduler=False)
    scheduler = service.state.scheduler
    state = scheduler.workloads["m-small"]

    async def scenario():
        executor.gate.set()
        await scheduler.tick()
        await scheduler.wait_idle()
        await scheduler.tick()
        first = service.state.cache.get("m-small")
        versions = {s: v.card.version for s, v in state.serving.items()}

        # Within the retrain interval: refreshes follow the interval, no retrain starts.
        executor.gate.clear()
        clock.advance(minutes=1)
        await scheduler.tick()
        assert not state.retraining
        assert service.state.cache.get("m-small").generated_at == clock.now
        clock.advance(seconds=30)
        await scheduler.tick()
        assert service.state.cache.get("m-small").generated_at == clock.now - timedelta(seconds=30)

        # Past the retrain interval: a retrain starts, tick returns at once, forecasts keep coming.
        clock.advance(hours=6)
        started = time.perf_counter()
        await scheduler.tick()
        assert time.perf_counter() - started < 5
        assert state.retraining
        assert service.state.read_metric("m-small", "prescaler-desired-replicas").value >= 1
        assert {s: v.card.version for s, v in state.serving.items()} == versions
        executor.gate.set()
        await scheduler.wait_idle()
        assert not state.retraining and state.last_retrain == clock.now
        assert {s: v.card.version for s, v in state.serving.items()} != versions
        await scheduler.tick()
        assert service.state.cache.get("m-small").generated_at == clock.now != first.generated_at

    asyncio.run(scenario())
    log = read_decisions(config.registry_dir / "decisions.jsonl")
    assert [d["signal"] for d in log].count("requests") == 2
    assert all(d["outcome"] == "accepted" for d in log)


def test_retrain_request_is_picked_up_by_the_next_tick(tmp_path):
    clock = FakeClock()
    service = build_service(make_config(tmp_path), clock=clock, executor=ThreadPoolExecutor(1),
                            run_scheduler=False)
    scheduler = service.state.scheduler

    async def scenario():
        await scheduler.tick()
        await scheduler.wait_idle()
        assert scheduler.request_retrain("m-small") is True
        assert scheduler.request_retrain("m-small") is False  # already queued
        clock.advance(minutes=2)
        await scheduler.tick()
        await scheduler.wait_idle()
        assert scheduler.workloads["m-small"].last_retrain == clock.now

    asyncio.run(scenario())


def _breakable_history():
    """The trace as a history source that raises ConnectionError while broken["on"] is True."""
    source = TraceReplaySource(TRACE)
    broken = {"on": False}

    def history(workload, start, end):
        if broken["on"]:
            raise ConnectionError("prometheus: connection refused")
        return source(workload, start, end)

    return history, broken


def test_broken_history_keeps_the_serving_model(tmp_path):
    clock = FakeClock()
    history, broken = _breakable_history()

    service = build_service(make_config(tmp_path), clock=clock, history=history,
                            executor=ThreadPoolExecutor(1), run_scheduler=False)
    scheduler = service.state.scheduler

    async def scenario():
        await scheduler.tick()
        await scheduler.wait_idle()
        await scheduler.tick()
        before = service.state.cache.get("m-small")
        broken["on"] = True
        clock.advance(hours=7)
        await scheduler.tick()
        await scheduler.wait_idle()
        state = scheduler.workloads["m-small"]
        assert "connection refused" in state.last_error
        assert state.ready and service.state.cache.get("m-small") is before

    asyncio.run(scenario())


def test_training_runs_in_a_worker_process(tmp_path):
    clock = FakeClock()
    executor = make_executor(1)
    try:
        service = build_service(make_config(tmp_path), clock=clock, executor=executor, run_scheduler=False)

        async def scenario():
            await service.state.scheduler.tick()
            await service.state.scheduler.wait_idle()
            await service.state.scheduler.tick()

        asyncio.run(scenario())
        assert service.state.ready()
        pids = executor.submit(_pid).result(timeout=60)
        import os

        assert pids != os.getpid()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _pid() -> int:
    import os

    return os.getpid()


def test_trace_replay_shifts_by_whole_weeks(tmp_path):
    workload = make_config(tmp_path).workload("m-small")
    source = TraceReplaySource(TRACE)
    end = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    frame = source(workload, end - timedelta(days=7), end)
    assert frame.index[-1] < pd.Timestamp(end) and len(frame) == 7 * 24 * 60
    original = source.frame
    first = frame.index[0]
    weeks = (first - original.index[0]) // pd.Timedelta(days=7)
    # The first replayed minute is a real minute of the trace moved by whole weeks.
    sources = [first - pd.Timedelta(days=7) * k for k in (weeks, weeks + 1)]
    matches = [t for t in sources if t in original.index]
    assert matches and matches[0].day_of_week == first.day_of_week and matches[0].time() == first.time()
    assert original.loc[matches[0], frame.columns].equals(frame.iloc[0])


def test_not_ready_while_the_cached_forecast_lacks_a_signal(tmp_path):
    """A refresh that ran while the first retrain was still swapping models in caches a forecast of
    only the signals served so far; readiness waits until the cache covers every signal."""
    from forecaster.contract import WorkloadForecast
    from forecaster.service.cache import CachedForecast

    clock = FakeClock()
    service = build_service(make_config(tmp_path), clock=clock, executor=ThreadPoolExecutor(2),
                            run_scheduler=False)

    async def first() -> None:
        await service.state.scheduler.tick()
        await service.state.scheduler.wait_idle()
        await service.state.scheduler.tick()

    asyncio.run(first())
    full = service.state.cache.get("m-small")
    assert service.state.ready() and set(full.forecast.forecasts) == {"requests", "output_tokens"}
    partial = WorkloadForecast(workload="m-small", forecasts={"requests": full.forecast.forecasts["requests"]})
    service.state.cache.put("m-small", CachedForecast(partial, full.generated_at, full.models))
    assert not service.state.ready()
    service.state.cache.put("m-small", full)
    assert service.state.ready()


def test_a_first_training_past_the_prometheus_deadline_is_reported(tmp_path):
    """A Prometheus that accepts and never answers (a real socket): the first retrain fails at the
    deadline, last_error names it, and the 503 says the first training failed, with the error,
    rather than "first model still training"."""
    from forecaster.service.config import parse_config
    from forecaster.service.state import NotReady
    from tests.misbehaving import MisbehavingServer, hang
    from tests.service.conftest import config_dict

    server = MisbehavingServer(hang)
    try:
        data = config_dict(tmp_path)
        data["history"] = {"source": "prometheus", "window": "7d"}
        data["prometheus"] = {"url": server.url, "retries": 0, "timeout_s": 5, "deadline_s": 0.4}
        service = build_service(parse_config(data, "test"), clock=FakeClock(), executor=ThreadPoolExecutor(1),
                                run_scheduler=False)
        scheduler = service.state.scheduler
        state = scheduler.workloads["m-small"]
        with pytest.raises(NotReady, match="first model still training"):  # true before the first tick
            service.state.entry("m-small")

        async def first() -> None:
            await scheduler.tick()
            await scheduler.wait_idle()

        asyncio.run(first())
    finally:
        server.close()
    assert state.last_error is not None and "0.4 s deadline" in state.last_error
    assert state.retrain_failed and not state.retraining
    with pytest.raises(NotReady) as raised:
        service.state.entry("m-small")
    message = str(raised.value)
    assert "still training" not in message
    assert "has no model yet" in message and "0.4 s deadline" in message


def test_a_retrain_whose_jobs_fail_sets_last_error_and_retries_sooner(tmp_path):
    """The jobs themselves fail (here the registry cannot be written: a file where the workload's
    directory goes): run_job reports `failed` decisions instead of raising, and those must count as
    a failed retrain too; last_error stayed null and the next try waited a whole retrain interval."""
    clock = FakeClock()
    config = make_config(tmp_path, interval="1m", retrain_interval="6h")
    config.registry_dir.mkdir(parents=True)
    (config.registry_dir / "m-small").write_text("not a directory")
    service = build_service(config, clock=clock, executor=ThreadPoolExecutor(2), run_scheduler=False)
    scheduler = service.state.scheduler
    state = scheduler.workloads["m-small"]

    async def retrain() -> None:
        await scheduler.tick()
        await scheduler.wait_idle()

    asyncio.run(retrain())
    assert [d.outcome for d in scheduler.decisions] == ["failed", "failed"]
    assert state.last_error is not None and "retrain failed" in state.last_error
    assert "requests" in state.last_error and "output_tokens" in state.last_error
    assert "NotADirectoryError" in state.last_error
    assert state.retrain_failed and not state.ready
    from forecaster.service.state import NotReady

    with pytest.raises(NotReady, match="has no model yet") as raised:
        service.state.entry("m-small")
    assert "NotADirectoryError" in str(raised.value)

    # A failed retrain is retried after a few refresh intervals, not after the retrain interval.
    (config.registry_dir / "m-small").unlink()
    clock.advance(minutes=5)
    asyncio.run(retrain())
    assert state.ready and state.last_error is None and not state.retrain_failed


def test_a_stale_forecast_names_the_failing_refresh(tmp_path):
    """Prometheus down long enough for the cached forecast to run out: the 503 for the window it no
    longer covers says why no newer forecast came (the refresh's error)."""
    from forecaster.service.state import NotReady

    clock = FakeClock()
    history, broken = _breakable_history()

    service = build_service(make_config(tmp_path, retrain_interval="30d"), clock=clock, history=history,
                            executor=ThreadPoolExecutor(1), run_scheduler=False)
    scheduler = service.state.scheduler

    async def scenario():
        await scheduler.tick()
        await scheduler.wait_idle()
        await scheduler.tick()
        broken["on"] = True
        clock.advance(days=3)  # past any horizon of the cached forecast
        await scheduler.tick()

    asyncio.run(scenario())
    with pytest.raises(NotReady, match="does not cover") as raised:
        service.state.read_metric("m-small", "prescaler-desired-replicas")
    assert "refresh failed" in str(raised.value) and "connection refused" in str(raised.value)
