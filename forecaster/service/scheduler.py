"""Retraining on a schedule and forecast refresh, driven by an injected clock.

The event loop never fits or backtests: `tick()` reads the clock, submits due retrains to a process
pool and awaits their futures, and only swaps references when a result comes back. Forecast
refreshes (one cheap `predict(history=...)` per signal) run in a thread. Tests drive `tick()` with
a fake clock; `run()` calls it on a real timer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from forecaster.contract import Clock, system_clock
from forecaster.errors import RegistryError
from forecaster.registry import ModelCard, Registry
from forecaster.series import to_rate
from forecaster.service.cache import CachedForecast, ForecastCache, frame_to_forecast
from forecaster.service.config import ServiceConfig, WorkloadSettings
from forecaster.service.decisions import DecisionLog, read_decisions
from forecaster.service.history import HistorySource, floor_time
from forecaster.service.retrain import Job, JobResult, Outcome, RetrainDecision, objective_name, run_job

__all__ = ["Scheduler", "Serving", "WorkloadState", "read_decisions"]

log = logging.getLogger("prescaler.forecaster.service")

@dataclass
class Serving:
    estimator: Any
    card: ModelCard


@dataclass
class WorkloadState:
    settings: WorkloadSettings
    serving: dict[str, Serving] = field(default_factory=dict)  # signal -> model
    last_retrain: datetime | None = None
    last_refresh: datetime | None = None
    retrain_requested: bool = True  # the first tick trains
    retraining: bool = False
    retrain_failed: bool = False
    last_error: str | None = None

    @property
    def ready(self) -> bool:
        """Every signal has a model (a knowingly served baseline counts)."""
        return all(s in self.serving for s in self.settings.signals)


class Scheduler:
    def __init__(
        self,
        config: ServiceConfig,
        history: HistorySource,
        cache: ForecastCache,
        *,
        executor: Executor,
        clock: Clock = system_clock,
        on_decision: Callable[[RetrainDecision], None] | None = None,
        registry: Registry | None = None,
        decisions_log: DecisionLog | Path | None = None,
        max_decisions: int = 1000,
    ):
        self.config = config
        self.registry = registry if registry is not None else Registry(config.registry_dir)
        self.history = history
        self.cache = cache
        self.executor = executor
        self.clock = clock
        self.on_decision = on_decision
        self.decisions_log = DecisionLog(decisions_log) if isinstance(decisions_log, Path) else decisions_log
        self.decisions: deque[RetrainDecision] = deque(maxlen=max_decisions)
        self.workloads = {w.name: WorkloadState(w) for w in config.workloads}
        self._tasks: set[asyncio.Task] = set()

    # --- requests from the API -------------------------------------------------------------
    def request_retrain(self, name: str) -> bool:
        """Queue a retrain for the next tick; False if one is already running."""
        state = self.workloads[name]
        already = state.retraining or state.retrain_requested
        state.retrain_requested = True
        return not already

    # --- start-up -------------------------------------------------------------------------------
    def restore(self) -> None:
        """Serve the registry's latest good model of every signal at once, instead of waiting for a
        first retrain; reload the recent decisions so /decisions survives a restart.

        A version that does not verify or load (flipped byte, truncated pickle) is skipped for the
        previous one by `Registry.load_latest_good`; the `restored` decision names what was skipped.
        A workload whose every signal was restored retrains when its oldest model comes due.
        """
        if self.decisions_log is not None:
            for entry in self.decisions_log.read(limit=self.decisions.maxlen):
                try:
                    self.decisions.append(RetrainDecision.model_validate(entry))
                except ValidationError as error:
                    log.warning("%s: skipped a decision that does not validate: %s",
                                self.decisions_log.path, error.errors()[0]["msg"])
        try:
            removed = self.registry.cleanup_temp()  # what saves and prunes cut short by a crash left
        except OSError as error:
            log.warning("cleaning %s failed: %s", self.registry.root, error)
        else:
            if removed:
                log.info("removed %d leftover temp dir(s) from %s", len(removed), self.registry.root)
        now = self.clock()
        for state in self.workloads.values():
            w = state.settings
            restored: list[ModelCard] = []
            for signal in w.signals:
                card = self._restore_signal(state, signal, now)
                if card is not None:
                    restored.append(card)
            if restored and state.ready:
                state.retrain_requested = False
                state.last_retrain = min(min(c.created_at for c in restored), now)

    def _restore_signal(self, state: WorkloadState, signal: str, now: datetime) -> ModelCard | None:
        w = state.settings
        objective = objective_name(w)[0]

        def record(outcome: Outcome, reason: str, card: ModelCard | None = None) -> None:
            self._record(RetrainDecision(
                at=now, workload=w.name, signal=signal, outcome=outcome,
                candidate=card.model if card else None, candidate_score=None, serving=None,
                serving_score=None, objective=objective, reason=reason, seconds=0.0,
                version=card.version if card else None,
            ))

        if not self.registry.versions(w.name, signal):
            return None  # a first start: nothing stored, the first tick trains
        try:
            estimator, card, skipped = self.registry.load_latest_good(w.name, signal)
        except RegistryError as error:
            record("failed", f"restore from the registry failed, retraining: {error}")
            return None
        if card.bin_seconds != w.bin_seconds:
            record("failed", f"registry version {card.version} has bin {card.bin_seconds}s but the config "
                             f"says {w.bin_seconds}s; not served, retraining")
            return None
        state.serving[signal] = Serving(estimator, card)
        reason = f"restored {card.model}@{card.version} from {self.registry.root}"
        if skipped:
            reason += f"; skipped {len(skipped)} newer version(s) that do not load: " + "; ".join(skipped)
        log.info("%s/%s: %s", w.name, signal, reason)
        record("restored", reason, card)
        return card

    # --- the loop --------------------------------------------------------------------------
    async def tick(self) -> None:
        """Start due retrains (in the background) and run due refreshes (awaited)."""
        now = self.clock()
        for state in self.workloads.values():
            w = state.settings
            # After a failed retrain (source down) retry sooner than a whole retrain interval, but not
            # every tick: a few refresh intervals, so a broken Prometheus is not hammered.
            wait = min(w.retrain_interval, 5 * w.interval) if state.retrain_failed else w.retrain_interval
            due = state.last_retrain is None or now - state.last_retrain >= wait
            if (due or state.retrain_requested) and not state.retraining:
                state.retraining, state.retrain_requested = True, False
                task = asyncio.create_task(self._retrain(state, now), name=f"retrain-{w.name}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        for state in self.workloads.values():
            if state.serving and (
                state.last_refresh is None or now - state.last_refresh >= state.settings.interval
            ):
                await self.refresh(state, now)

    async def wait_idle(self) -> None:
        """Wait for the retrains in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def run(self, stop: asyncio.Event, poll_seconds: float = 1.0) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:  # noqa: BLE001 - the loop must outlive one bad tick
                log.exception("scheduler tick failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=poll_seconds)
            except TimeoutError:
                pass

    # --- work ------------------------------------------------------------------------------
    async def _load_series(self, w: WorkloadSettings, now: datetime) -> dict[str, Any]:
        end = floor_time(now, w.bin_seconds)  # complete bins only: the current one is still filling
        start = end - self.config.history.window
        frame = await asyncio.to_thread(self.history, w, start, end)
        if frame is None or len(frame) < 2:
            raise ValueError(f"history for {w.name} in [{start}, {end}) has {0 if frame is None else len(frame)} rows")
        return {s: to_rate(frame, s, w.bin) for s in w.signals}

    async def _retrain(self, state: WorkloadState, now: datetime) -> None:
        w = state.settings
        try:
            series = await self._load_series(w, now)
            loop = asyncio.get_running_loop()
            jobs = [
                loop.run_in_executor(self.executor, run_job, Job(
                    workload=w, signal=signal, series=s,
                    serving_model=state.serving[signal].card.model if signal in state.serving else None,
                    serving_version=state.serving[signal].card.version if signal in state.serving else None,
                    started_at=now, registry_dir=self.registry.root,
                ))
                for signal, s in series.items()
            ]
            results: list[JobResult] = await asyncio.gather(*jobs)
            for result in results:
                await self._apply(state, result)
            state.last_error = None
            state.retrain_failed = False
            state.last_retrain = now
            state.last_refresh = None  # a new model: refresh on the next tick
        except Exception as error:  # noqa: BLE001 - recorded; the serving models stay
            state.last_error = f"retrain failed: {type(error).__name__}: {error}"
            state.last_retrain = now
            state.retrain_failed = True
            log.warning("%s: %s", w.name, state.last_error)
        finally:
            state.retraining = False

    async def _apply(self, state: WorkloadState, result: JobResult) -> None:
        decision = result.decision
        if result.card is not None:
            card = result.card
            try:
                # Through the registry, which checks the sha256: serve exactly what was stored.
                estimator, card = await asyncio.to_thread(
                    self.registry.load, card.workload, card.signal, card.version)
            except RegistryError as error:
                decision = decision.model_copy(update={
                    "outcome": "failed", "version": None,
                    "reason": f"{decision.reason}; but stored version {card.version} does not load: {error}",
                })
            else:
                state.serving[decision.signal] = Serving(estimator, card)  # the swap
                await self._prune(card.workload, card.signal)
        self._record(decision)

    async def _prune(self, workload: str, signal: str) -> None:
        """Keep `retention.keep_versions` versions; the registry never removes the newest good one,
        which is the one just swapped in."""
        keep = self.config.retention.keep_versions
        try:
            removed = await asyncio.to_thread(self.registry.prune, workload, signal, keep)
        except (OSError, RegistryError) as error:  # disk trouble: serving goes on, retry next time
            log.warning("%s/%s: pruning the registry failed: %s", workload, signal, error)
        else:
            if removed:
                log.info("%s/%s: pruned %d old version(s), keeping %d", workload, signal, len(removed), keep)

    def _record(self, decision: RetrainDecision) -> None:
        self.decisions.append(decision)
        if self.on_decision is not None:
            self.on_decision(decision)
        if self.decisions_log is not None:
            try:
                self.decisions_log.append(decision.model_dump_json())
            except OSError as error:  # a full disk must not stop serving; the decision stays in memory
                log.error("cannot append to %s: %s", self.decisions_log.path, error)

    async def refresh(self, state: WorkloadState, now: datetime) -> None:
        w = state.settings
        try:
            series = await self._load_series(w, now)
            entry = await asyncio.to_thread(self._forecast, state, series, now)
            self.cache.put(w.name, entry)
            state.last_refresh = now
        except Exception as error:  # noqa: BLE001 - keep serving the previous forecast
            state.last_error = f"refresh failed: {type(error).__name__}: {error}"
            state.last_refresh = now
            log.warning("%s: %s", w.name, state.last_error)

    def _forecast(self, state: WorkloadState, series: dict[str, Any], now: datetime) -> CachedForecast:
        from forecaster.contract import WorkloadForecast

        w = state.settings
        forecasts, models = {}, {}
        for signal, serving in list(state.serving.items()):
            frame = serving.estimator.predict(
                w.horizon_bins, w.served_quantiles, history=series[signal],
            )
            forecasts[signal] = frame_to_forecast(
                frame, workload=w.name, signal=signal, model=serving.card.model,
                version=serving.card.version, generated_at=now, step_seconds=w.bin_seconds,
            )
            models[signal] = f"{serving.card.model}@{serving.card.version}"
        return CachedForecast(WorkloadForecast(workload=w.name, forecasts=forecasts), now, models)

