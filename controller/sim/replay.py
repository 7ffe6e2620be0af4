"""One replay: a trace, a window, the policies compared on the same arrivals, and the outcome."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from controller.sim.config import DEFAULT_TARGET_UTILIZATION, ReplicaModel, SimConfig
from controller.sim.engine import Scaler, run
from controller.sim.reference import OracleScaler, StaticScaler, needed_per_minute
from controller.sim.results import PolicyOutcome, PolicySeries, series_of, summarise
from controller.sim.tokens import TOKEN_SOURCES
from controller.sim.workload import Workload, build_workload
from forecaster.contract.replay import ReplayForecasting

POLICIES = ("hpa", "prescaler", "oracle", "static", "hindsight")
# What a replay runs unless told: `hindsight` peeks at the future, so it is asked for by name.
DEFAULT_POLICIES = ("hpa", "prescaler", "oracle", "static")


def known_names(value: tuple[str, ...], allowed: tuple[str, ...], singular: str, plural: str, *,
                allow_empty: bool = False) -> tuple[str, ...]:
    """`value` without repeats, or a ValueError naming the unknown ones and what may be chosen."""
    unknown = [v for v in value if v not in allowed]
    if unknown:
        raise ValueError(f"unknown {plural if len(unknown) > 1 else singular} {', '.join(unknown)}; "
                         f"choose from {', '.join(allowed)}")
    if not value and not allow_empty:
        raise ValueError(f"name at least one {singular} of {', '.join(allowed)}")
    return tuple(dict.fromkeys(value))


class ReplaySettings(BaseModel):
    """What `prescaler simulate` and `prescaler demo` take; validated before anything runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policies: tuple[str, ...] = DEFAULT_POLICIES
    lead_seconds: float = Field(300.0, ge=0)
    peak_replicas: float = Field(40.0, gt=0)
    max_replicas: int | None = Field(None, ge=1, description="default: twice the peak replicas")
    replay_from: datetime | None = None
    replay_days: float | None = Field(None, gt=0)
    seed: int = 0
    tokens: str = "trace"
    model: str = Field("auto", description="forecast model: auto or a catalogue name")
    quantile: float = Field(0.9, gt=0, lt=1)
    forecast_bin_seconds: int = Field(600, ge=60)
    forecast_interval_seconds: float = Field(
        60.0, ge=0, description="window after the lead the forecast's maximum is taken over"
    )
    refit_seconds: float = Field(86_400.0, gt=0)
    # prescaler's reactive stage: running + queue_weight x waiting per pod, at reactive_target x its
    # value at the target utilization. The queue weight keeps a queue built during a cold start from
    # multiplying the recommendation (wind-up); both chosen on the frontier of the dev traces
    # (bench/results/frontier.md, configs/capacity.md "The reactive stage and the frontier").
    reactive_target: float = Field(0.8, gt=0)
    queue_weight: float = Field(0.2, ge=0, le=1)
    target_utilization: float = Field(DEFAULT_TARGET_UTILIZATION, gt=0, le=1)
    replica: ReplicaModel | None = None

    @field_validator("policies")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return known_names(value, POLICIES, "policy", "policies")

    @field_validator("tokens")
    @classmethod
    def _tokens(cls, value: str) -> str:
        if value not in TOKEN_SOURCES:
            raise ValueError(f"tokens {value!r} unknown; choose one of {', '.join(TOKEN_SOURCES)}")
        return value

    @model_validator(mode="after")
    def _cross(self) -> "ReplaySettings":
        if self.max_replicas is not None and self.max_replicas < math.ceil(self.peak_replicas):
            raise ValueError(
                f"max_replicas ({self.max_replicas}) must be >= peak_replicas ({self.peak_replicas}): "
                "the scaled peak would not fit"
            )
        if self.forecast_bin_seconds % 60:
            raise ValueError(f"forecast_bin_seconds ({self.forecast_bin_seconds}) must be whole minutes")
        return self

    def sim_config(self) -> SimConfig:
        max_replicas = self.max_replicas or max(2, math.ceil(2 * self.peak_replicas))
        extra = {"replica": self.replica} if self.replica is not None else {}
        return SimConfig(
            lead_seconds=self.lead_seconds, seed=self.seed, max_replicas=max_replicas,
            target_utilization=self.target_utilization, **extra,
        )


class ReplayReport(BaseModel):
    """Everything a replay produced: the comparison, and per-minute series for the plot."""

    model_config = ConfigDict(frozen=True)

    trace: str
    window_start: datetime
    window_end: datetime
    history_days: float
    scale: float = Field(description="requests of the replay per request of the trace")
    settings: ReplaySettings
    outcomes: list[PolicyOutcome]
    load_per_minute: list[float] = Field(description="arrivals per minute (scaled)")
    oracle_needed: list[int] = Field(description="replicas the capacity model needs each minute")
    series: dict[str, PolicySeries]
    details: dict[str, dict] = Field(default_factory=dict, description="per policy: decision reasons, models")
    notes: list[str] = Field(default_factory=list)

    def outcome(self, policy: str) -> PolicyOutcome:
        for item in self.outcomes:
            if item.policy == policy:
                return item
        raise KeyError(f"policy {policy!r} not in this replay (has {', '.join(o.policy for o in self.outcomes)})")


def make_scaler(name: str, workload: Workload, settings: ReplaySettings, config: SimConfig,
                forecasting: ReplayForecasting | None = None) -> Scaler:
    """The scaler for a policy name. hpa and prescaler drive controller.policy.decide().

    prescaler and hindsight need `forecasting` (hindsight only for its binning): the engine the
    composition root hands in, forecaster.replay.EstimatorForecasting in the product.
    """
    if name == "static":
        return StaticScaler()
    if name == "oracle":
        return OracleScaler()
    from controller.sim.policies import hindsight_scaler, hpa_scaler, prescaler_scaler

    if name == "hpa":
        return hpa_scaler(workload, config)
    if forecasting is None:
        raise ValueError(f"policy {name!r} forecasts: the replay needs a forecasting engine "
                         "(forecaster.replay.EstimatorForecasting)")
    if name == "hindsight":
        return hindsight_scaler(workload, config, settings, binning=forecasting)
    return prescaler_scaler(workload, config, settings, forecasting=forecasting)


_JOB: tuple | None = None  # (workload, settings, config, forecasting), inherited by forked workers


def _run_one(name: str):
    if _JOB is None:
        raise RuntimeError("_run_one runs inside replay(), which sets the job")
    workload, settings, config, forecasting = _JOB
    started = time.perf_counter()
    result = run(workload, config, make_scaler(name, workload, settings, config, forecasting=forecasting))
    return name, result, time.perf_counter() - started


def replay(
    frame: pd.DataFrame,
    settings: ReplaySettings,
    *,
    trace_name: str = "trace",
    forecasting: ReplayForecasting | None = None,
    log: Callable[[str], None] | None = None,
    jobs: int = 1,
) -> ReplayReport:
    """Replay the window of `frame` under every policy of `settings` on the same seeded arrivals.

    jobs > 1 runs the policies in that many forked processes (each replay is single-threaded and
    they share nothing but the read-only workload); the outcome is the same as with jobs=1.
    `forecasting` is the engine prescaler and hindsight forecast with (see make_scaler).
    """
    global _JOB
    config = settings.sim_config()
    workload = build_workload(
        frame, config, replay_from=settings.replay_from, replay_days=settings.replay_days,
        peak_replicas=settings.peak_replicas, tokens=settings.tokens,
    )
    results = {}
    walls = {}
    # The slowest (those that forecast) first, so a second worker takes the rest meanwhile.
    order = sorted(settings.policies, key=lambda p: p not in ("prescaler", "hindsight"))
    _JOB = (workload, settings, config, forecasting)
    try:
        if jobs > 1 and len(order) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=min(jobs, len(order)), mp_context=context) as pool:
                done = list(pool.map(_run_one, order))
        else:
            done = [_run_one(name) for name in order]
    finally:
        _JOB = None
    for name, result, wall in done:
        results[name], walls[name] = result, wall
        if log:
            log(f"{name}: replayed {workload.minutes / 1440:.1f} days in {wall:.1f} s")
    oracle_hours = results["oracle"].gpu_seconds / 3600.0 if "oracle" in results else None
    outcomes = [summarise(results[p], walls[p], oracle_hours) for p in settings.policies]
    history_days = len(workload.history) / 1440.0
    notes = []
    if "prescaler" in settings.policies and history_days < 1.0:
        notes.append(f"only {history_days:.2f} days of history before the window: the forecaster starts cold")
    return ReplayReport(
        trace=trace_name,
        window_start=workload.start,
        window_end=workload.end,
        history_days=history_days,
        scale=workload.scale,
        settings=settings,
        outcomes=outcomes,
        load_per_minute=results[settings.policies[0]].series.arrivals,
        oracle_needed=needed_per_minute(workload, config),
        series={p: series_of(results[p]) for p in settings.policies},
        details={p: results[p].detail for p in settings.policies if results[p].detail},
        notes=notes,
    )


def trace_label(path: str | Path) -> str:
    return Path(path).name.removesuffix(".csv").removesuffix("_1min")
