"""Retraining on a schedule and forecast refresh, driven by an injected clock.

The event loop never fits or backtests: `tick()` reads the clock, submits due retrains to a process
pool and awaits their futures, and only swaps references when a result comes back. Forecast
refreshes (one cheap `predict(history=...)` per signal) run in a thread. Tests drive `tick()` with
a fake clock; `run()` calls it on a real timer.

The set of workloads comes from a WorkloadSource (forecaster.service.workloads) and may change at
each resync: a new workload is restored from the registry or trained, a changed one retrains when a
field its models depend on changed (`RETRAIN_FIELDS`), a removed one stops being served. The
`workloads` mapping is replaced whole, never changed in place, so the gRPC threads that read it
never see it change size under them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
from forecaster.service.workloads import StaticWorkloads, WorkloadListing, WorkloadSource, WorkloadSourceError

__all__ = ["Scheduler", "Serving", "SourceStatus", "WorkloadState", "read_decisions"]

log = logging.getLogger("prescaler.forecaster.service")

# What a serving model depends on: a change of any retrains at once (the models serve meanwhile).
# The others apply at the next refresh or read (capacity, lead time, interval: external metrics and
# KEDA compute with the settings of the moment) or at the next scheduled retrain (retrain_interval).
RETRAIN_FIELDS = ("signals", "model", "candidates", "bin", "model_name", "backtest_window", "quantile")
# What the cached forecast was computed for: a change drops it, so nothing answers from a forecast of
# other signals, another grid or without the quantile now asked for (503 until the next refresh).
FORECAST_FIELDS = ("signals", "bin", "model_name", "quantile", "quantiles")


@dataclass
class Serving:
    estimator: Any
    card: ModelCard
    restored: bool = False  # loaded from the registry at start-up, not trained by this process


@dataclass
class SourceStatus:
    """The workload source's last reading, for /v1/workload-source and readiness."""

    description: str
    resync_seconds: float | None
    synced_at: datetime | None = None  # the last successful listing; None: never listed yet
    attempted_at: datetime | None = None
    error: str | None = None  # the last listing's error: the set listed before keeps serving
    skipped: dict[str, str] = field(default_factory=dict)  # origin -> reason


@dataclass
class WorkloadState:
    settings: WorkloadSettings
    origin: str | None = None  # where the settings came from ("PredictiveAutoscaler llm/m-small")
    serving: dict[str, Serving] = field(default_factory=dict)  # signal -> model
    last_retrain: datetime | None = None
    last_refresh: datetime | None = None
    retrain_requested: bool = True  # the first tick trains
    retraining: bool = False
    retrain_failed: bool = False
    # Each kind of failure is kept apart and cleared by the next success of its kind, so what the
    # API reports is current: a refresh that works again no longer shows the outage it came out of.
    retrain_error: str | None = None  # the last retrain's failure (raised, or a job's `failed` decision)
    refresh_error: str | None = None  # the last refresh's failure (history fetch, deadline, predict)
    refresh_started: datetime | None = None  # a refresh in flight (its history fetch) since then

    @property
    def ready(self) -> bool:
        """Every signal has a model (a knowingly served baseline counts)."""
        return all(s in self.serving for s in self.settings.signals)

    @property
    def last_error(self) -> str | None:
        """The failures still current: the last retrain's and the last refresh's; None when the
        latest of each succeeded."""
        return "; ".join(e for e in (self.refresh_error, self.retrain_error) if e) or None

    @property
    def retrain_wait(self) -> timedelta:
        """How long after the last retrain the next one is due. After a failed retrain (source down)
        retry sooner than a whole retrain interval, but not every tick: a few refresh intervals, so a
        broken Prometheus is not hammered."""
        w = self.settings
        return min(w.retrain_interval, 5 * w.interval) if self.retrain_failed else w.retrain_interval


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
        source: WorkloadSource | None = None,
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
        self.source: WorkloadSource = source if source is not None else StaticWorkloads(config)
        resync = self.source.resync
        self.source_status = SourceStatus(self.source.description,
                                          resync.total_seconds() if resync is not None else None)
        # Filled by sync_workloads() (start-up) and resync() (each tick when due); replaced whole.
        self.workloads: dict[str, WorkloadState] = {}
        self._restore_added = False  # after restore(): a workload that appears later is restored too
        self._tasks: set[asyncio.Task] = set()

    # --- requests from the API -------------------------------------------------------------
    def request_retrain(self, name: str) -> bool:
        """Queue a retrain for the next tick; False if one is already running (KeyError: unknown)."""
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
            for decision in self._restore_state(state, now):
                self._record(decision)
        self._restore_added = True

    def _restore_state(self, state: WorkloadState, now: datetime) -> list[RetrainDecision]:
        """Serve the registry's latest good model of each signal of `state` (file reads: the caller
        runs it before the state is published, so nothing reads it meanwhile). The decisions are
        returned, for the caller to record on the event loop."""
        decisions: list[RetrainDecision] = []
        restored: list[ModelCard] = []
        for signal in state.settings.signals:
            card = self._restore_signal(state, signal, now, decisions)
            if card is not None:
                restored.append(card)
        if restored and state.ready:
            state.retrain_requested = False
            state.last_retrain = min(min(c.created_at for c in restored), now)
        return decisions

    def _restore_signal(self, state: WorkloadState, signal: str, now: datetime,
                        decisions: list[RetrainDecision]) -> ModelCard | None:
        w = state.settings
        objective = objective_name(w)[0]

        def record(outcome: Outcome, reason: str, card: ModelCard | None = None) -> None:
            decisions.append(RetrainDecision(
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
        state.serving[signal] = Serving(estimator, card, restored=True)
        reason = f"restored {card.model}@{card.version} from {self.registry.root}"
        if skipped:
            reason += f"; skipped {len(skipped)} newer version(s) that do not load: " + "; ".join(skipped)
        log.info("%s/%s: %s", w.name, signal, reason)
        record("restored", reason, card)
        return card

    # --- the set of workloads ---------------------------------------------------------------------
    def sync_workloads(self) -> None:
        """List the source and apply it, blocking: at start-up, before the event loop runs."""
        now = self.clock()
        try:
            listing = self._load(now)
        except WorkloadSourceError:
            return
        added = [self._new_state(name, listing, now) for name in self._added(listing)]
        self._commit(listing, added, now)

    async def resync(self, now: datetime) -> None:
        """List the source (in a thread) and apply it; on an error the current set keeps serving."""
        try:
            listing = await asyncio.to_thread(self._load, now)
        except WorkloadSourceError:
            return
        names = self._added(listing)
        added = await asyncio.to_thread(lambda: [self._new_state(n, listing, now) for n in names])
        self._commit(listing, added, now)

    def resync_due(self, now: datetime) -> bool:
        resync, attempted = self.source.resync, self.source_status.attempted_at
        return resync is not None and (attempted is None or now - attempted >= resync)

    def _load(self, now: datetime) -> WorkloadListing:
        status = self.source_status
        status.attempted_at = now
        try:
            listing = self.source.load()
        except WorkloadSourceError as error:
            if str(error) != status.error:  # once per distinct error, not at every resync
                log.warning("listing %s failed, serving the %d workload(s) listed before: %s",
                            self.source.description, len(self.workloads), error)
            status.error = str(error)
            raise
        if status.error is not None:
            log.info("listing %s works again", self.source.description)
        status.error = None
        return listing

    def _added(self, listing: WorkloadListing) -> list[str]:
        return [name for name in listing.workloads if name not in self.workloads]

    def _new_state(self, name: str, listing: WorkloadListing, now: datetime,
                   ) -> tuple[WorkloadState, list[RetrainDecision]]:
        state = WorkloadState(listing.workloads[name], origin=listing.origins.get(name))
        decisions = self._restore_state(state, now) if self._restore_added else []
        return state, decisions

    def _commit(self, listing: WorkloadListing, added: list[tuple[WorkloadState, list[RetrainDecision]]],
                now: datetime) -> None:
        """Apply a listing on the event loop's thread: one new mapping, swapped in at the end."""
        workloads = dict(self.workloads)
        for name in [n for n in workloads if n not in listing.workloads]:
            del workloads[name]
            self.cache.remove(name)
            log.info("%s: no longer listed by %s; not served any more", name, self.source.description)
        for name, settings in listing.workloads.items():
            state = workloads.get(name)
            if state is not None and state.settings != settings:
                self._update(state, settings)
            if state is not None:
                state.origin = listing.origins.get(name, state.origin)
        for state, decisions in added:
            name = state.settings.name
            workloads[name] = state
            for decision in decisions:
                self._record(decision)
            log.info("%s: serving, from %s%s", name, state.origin or self.source.description,
                     "" if state.ready else "; training its first models")
        self.workloads = workloads
        self._report_skipped(listing.skipped)
        self.source_status.synced_at = now

    def _update(self, state: WorkloadState, new: WorkloadSettings) -> None:
        old = state.settings
        changed = [f for f in type(new).model_fields if getattr(old, f) != getattr(new, f)]
        state.settings = new
        if "bin" in changed:
            state.serving = {}  # models of another bin do not fit the new grid: retrain before serving
        else:
            state.serving = {s: v for s, v in state.serving.items() if s in new.signals}
        if any(f in RETRAIN_FIELDS for f in changed):
            state.retrain_requested = True
        if any(f in FORECAST_FIELDS for f in changed):
            self.cache.remove(new.name)
        state.last_refresh = None  # the next tick refreshes with the new settings
        log.info("%s: settings changed (%s)%s", new.name, ", ".join(changed),
                 "; retraining" if state.retrain_requested else "")

    def _report_skipped(self, skipped: Mapping[str, str]) -> None:
        before = self.source_status.skipped
        for origin, reason in skipped.items():
            if before.get(origin) != reason:  # logged when it appears or changes, not at every resync
                log.warning("%s: not served: %s", origin, reason)
        for origin in before.keys() - skipped.keys():
            log.info("%s: no longer skipped", origin)
        self.source_status.skipped = dict(skipped)

    # --- the loop --------------------------------------------------------------------------
    async def tick(self) -> None:
        """Start due retrains (in the background) and run due refreshes (awaited)."""
        now = self.clock()
        if self.resync_due(now):
            await self.resync(now)
        for state in self.workloads.values():
            w = state.settings
            due = state.last_retrain is None or now - state.last_retrain >= state.retrain_wait
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
            # A job reports its failure as a `failed` decision rather than raising (a worker never
            # crashes the service): that is a failed retrain as much as a history fetch that raised.
            failed = [d for d in [await self._apply(state, r) for r in results] if d.outcome == "failed"]
            state.retrain_error = ("retrain failed for " + "; ".join(f"{d.signal}: {d.reason}" for d in failed)
                                   if failed else None)
            state.retrain_failed = bool(failed)
            state.last_retrain = now
            state.last_refresh = None  # a new model: refresh on the next tick
            if failed:
                log.warning("%s: %s", w.name, state.retrain_error)
        except Exception as error:  # noqa: BLE001 - recorded; the serving models stay
            state.retrain_error = f"retrain failed: {type(error).__name__}: {error}"
            state.last_retrain = now
            state.retrain_failed = True
            log.warning("%s: %s", w.name, state.retrain_error)
        finally:
            state.retraining = False

    async def _apply(self, state: WorkloadState, result: JobResult) -> RetrainDecision:
        """Serve the result's model if it still fits, record its decision, and return that."""
        decision = result.decision
        stale = self._stale(state, result)
        if result.card is not None and stale is not None:
            # Stored (a restart may restore it if it fits then), but not served: the set moved on.
            decision = decision.model_copy(update={"reason": f"{decision.reason}; not served: {stale}"})
        elif result.card is not None:
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
        return decision

    def _stale(self, state: WorkloadState, result: JobResult) -> str | None:
        """Why a retrain's result no longer fits its workload (changed or removed meanwhile), or None."""
        w = state.settings
        if self.workloads.get(w.name) is not state:
            return "the workload is no longer listed"
        if result.decision.signal not in w.signals:
            return f"signal {result.decision.signal} is no longer configured"
        if result.card is not None and result.card.bin_seconds != w.bin_seconds:
            return f"the bin changed to {w.bin_seconds}s during the retrain"
        return None

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
        # Seen by the API while the fetch runs: a slow Prometheus takes up to prometheus.deadline_s a
        # call, and a 503 meanwhile says the fetch is running rather than that a model is training.
        state.refresh_started = now
        try:
            series = await self._load_series(w, now)
            entry = await asyncio.to_thread(self._forecast, state, series, now)
            self.cache.put(w.name, entry)
            state.last_refresh = now
            state.refresh_error = None
        except Exception as error:  # noqa: BLE001 - keep serving the previous forecast
            state.refresh_error = f"refresh failed: {type(error).__name__}: {error}"
            state.last_refresh = now
            log.warning("%s: %s", w.name, state.refresh_error)
        finally:
            state.refresh_started = None

    def _forecast(self, state: WorkloadState, series: dict[str, Any], now: datetime) -> CachedForecast:
        from forecaster.contract import WorkloadForecast

        w = state.settings
        forecasts, models = {}, {}
        for signal, serving in list(state.serving.items()):
            if signal not in series:
                continue  # dropped from the settings since: its model no longer serves
            frame = serving.estimator.predict(
                w.horizon_bins, w.served_quantiles, history=series[signal],
            )
            forecasts[signal] = frame_to_forecast(
                frame, workload=w.name, signal=signal, model=serving.card.model,
                version=serving.card.version, generated_at=now, step_seconds=w.bin_seconds,
            )
            models[signal] = f"{serving.card.model}@{serving.card.version}"
        return CachedForecast(WorkloadForecast(workload=w.name, forecasts=forecasts), now, models)

