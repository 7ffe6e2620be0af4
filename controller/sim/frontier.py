"""The cost-SLO frontier: every policy family's knobs swept on the same replay, every point kept.

A comparison counts only against the best the alternative can do, so each reactive autoscaler is
configured the way its users tune it (its own metric, target, scale-down window), not at one default:

- `hpa-inflight`: the HPA on running + waiting requests per pod (today's `hpa`; its default point,
  target 1.0x the Little's-law value with Kubernetes's default behavior, is what `make demo` shows);
- `hpa-running`: the HPA on `vllm:num_requests_running` per pod (no queue term);
- `hpa-kv`: the HPA on `vllm:kv_cache_usage_perc` per pod (the simulator's KV model, configs/capacity.md);
- `keda-waiting`: a KEDA ScaledObject on `sum(vllm:num_requests_waiting)`, AverageValue per replica:
  the HPA that KEDA builds behind it, with KEDA's polling (controller/sim/keda.py);
- `kpa`: Knative's KPA (AIBrix mirrors it) on in-flight requests per pod, with Knative's own metric
  timing (1 s scrapes, a decision every 2 s: controller/sim/kpa.py);
- `static`: a fixed fleet at a fraction of the window's peak need;
- `prescaler`: the product, swept over its forecast quantile, capacity headroom, scale-down window
  and reactive stage.
References that peek are points too, named as such: `oracle` (knows the future; the GPU-hours
denominator) and `hindsight` (prescaler fed the true future at its bin).

Targets are multiples of each metric's value at the capacity model's target utilization
(controller.sim.policies.base_target), so one grid means the same on every trace.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from controller.sim.config import SimConfig
from controller.sim.engine import RunResult, Scaler, run
from controller.sim.forecasting import (
    ForecastTape,
    HindsightForecasting,
    PeakProvisioning,
)
from controller.sim.keda import PolledMetrics
from controller.sim.kpa import KpaScaler, KpaSettings, knative_timing
from controller.sim.policies import (
    DecideScaler,
    ReactiveMetric,
    hpa_scaler,
    in_flight_target,
    prescaler_spec,
    rolling_forecaster,
)
from controller.sim.reference import OracleScaler, StaticScaler, needed_per_minute
from controller.sim.replay import ReplaySettings, known_names
from controller.sim.results import summarise
from controller.sim.workload import Workload, build_workload
from forecaster.contract.replay import ReplayForecasting

REACTIVE_FAMILIES = ("hpa-inflight", "hpa-running", "hpa-kv", "keda-waiting", "kpa", "static")
FAMILIES = (*REACTIVE_FAMILIES, "prescaler")
# hindsight: prescaler fed the true future bin means; hindsight-peak: fed each bin's true busiest
# minute as its quantiles (the perfect forecast of what the replicas must serve).
REFERENCES = ("oracle", "hindsight", "hindsight-peak")
DEFAULT_REFERENCES = REFERENCES


# The HPA-style families and the reactive metric each scales on (controller.sim.policies).
FAMILY_METRICS: dict[str, ReactiveMetric] = {
    "hpa-inflight": "inflight", "hpa-running": "running", "hpa-kv": "kv", "keda-waiting": "waiting_total",
}


class _Knobs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HpaKnobs(_Knobs):
    target: float = Field(gt=0, description="x the metric's value at the target utilization")
    # None: no `behavior` at all, the HPA's older default path (5-minute scale-down stabilization,
    # scale-up capped at max(2x, 4)): what an HPA without a behavior stanza does, and `make demo`'s hpa.
    # A number writes behavior.scaleDown.stabilizationWindowSeconds, which also brings in the v2
    # default policies (up: 4 pods or 100 % per 15 s).
    scale_down_window_seconds: float | None = Field(None, ge=0, le=3600,
                                                    description="behavior.scaleDown.stabilizationWindowSeconds")


class KedaKnobs(HpaKnobs):
    use_cached_metrics: bool = Field(False, description="the trigger's useCachedMetrics: hold each 30 s poll")


class KpaKnobs(_Knobs):
    target: float = Field(gt=0, description="containerConcurrency, x a replica's in-flight requests at 100 %")
    scale_down_delay_seconds: float = Field(0.0, ge=0, le=3600, description="scale-down-delay")


class StaticKnobs(_Knobs):
    fraction: float = Field(gt=0, le=2, description="of the window's peak need (the capacity model's)")


class PrescalerKnobs(_Knobs):
    quantile: float = Field(0.9, gt=0, lt=1)
    target_utilization: float = Field(0.8, gt=0, le=1)
    scale_down_window_seconds: float | None = Field(None, ge=0, le=3600, description="None: no behavior (HpaKnobs)")
    # drain: replicas for the arrival rate plus a drain budget for the queue (controller/sim/backlog.py);
    # its reactive_target is the utilization it aims at.
    reactive_metric: Literal["inflight", "running", "kv", "drain"] = "inflight"
    # The defaults are ReplaySettings' (prescaler's default reactive stage, chosen on this frontier).
    reactive_target: float = Field(0.8, gt=0)
    queue_weight: float = Field(0.2, ge=0, le=1, description="inflight = running + this x waiting")
    drain_seconds: float = Field(60.0, gt=0, le=3600,
                                 description="drain: the queue left at a new replica's ready time drains in this")
    peak_quantile: float | None = Field(
        None, gt=0, lt=1, description="provision for this quantile of the bins' busiest-minute ratio "
        "(controller.sim.forecasting.PeakProvisioning); None: the bin forecast as it is")
    capacity_error: float = Field(0.0, gt=-1, le=10,
                                  description="the capacity model's per-replica rates are (1 + e) x the replica's")


KNOBS: dict[str, type[_Knobs]] = {
    "hpa-inflight": HpaKnobs, "hpa-running": HpaKnobs, "hpa-kv": HpaKnobs, "keda-waiting": KedaKnobs,
    "kpa": KpaKnobs, "static": StaticKnobs, "prescaler": PrescalerKnobs,
}

# The grids a platform engineer would try (issue 16): each family's target around its metric's value
# at the target utilization, the default and a long scale-down window.
WINDOWS = (300.0, 900.0)
DEFAULT_GRIDS: dict[str, dict[str, Sequence[Any]]] = {
    "hpa-inflight": {"target": (0.5, 0.7, 1.0, 1.5), "scale_down_window_seconds": WINDOWS},
    "hpa-running": {"target": (0.5, 0.7, 0.8, 1.0, 1.5), "scale_down_window_seconds": WINDOWS},
    "hpa-kv": {"target": (0.5, 0.7, 1.0, 1.5), "scale_down_window_seconds": WINDOWS},
    "keda-waiting": {"target": (0.1, 0.25, 0.5, 1.0), "scale_down_window_seconds": WINDOWS},
    "kpa": {"target": (0.7, 1.0, 1.4), "scale_down_delay_seconds": (0.0, 300.0)},
    "static": {"fraction": (0.5, 0.75, 1.0)},
    "prescaler": {"quantile": (0.5, 0.8, 0.9, 0.95), "target_utilization": (0.7, 0.8, 0.9)},
}
# Points outside the product of a grid: prescaler with the reactive families' knobs.
EXTRA_POINTS: dict[str, tuple[dict[str, Any], ...]] = {
    "prescaler": (
        {"scale_down_window_seconds": 900.0},
        {"reactive_metric": "running"},
        {"reactive_metric": "running", "scale_down_window_seconds": 900.0},
        {"reactive_target": 0.7},
        {"reactive_metric": "kv", "reactive_target": 0.7},
        # The reactive stage that winds up: a waiting request weighs as much as a running one, so a
        # queue built during a cold start multiplies the recommendation (the default until the
        # frontier showed it; the default's 0.2 adds replicas in proportion to the queue).
        {"queue_weight": 1.0, "reactive_target": 1.0},
        {"queue_weight": 0.2, "reactive_target": 1.0},
        # A reactive stage that cannot wind up (controller/sim/backlog.py) at 70 % of what the arrivals
        # need, with the default and a long scale-down window (configs/capacity.md: measured, not kept).
        {"reactive_metric": "drain", "reactive_target": 0.7},
        {"reactive_metric": "drain", "reactive_target": 0.7, "scale_down_window_seconds": 900.0},
        # Provisioning for the busiest minute of each bin (what hindsight-peak knows exactly).
        {"peak_quantile": 0.5},
        {"peak_quantile": 0.9},
    ),
}
# The default point of each family: what its users get without tuning (hpa-inflight's is `hpa`).
DEFAULTS: dict[str, dict[str, Any]] = {
    "hpa-inflight": {"target": 1.0, "scale_down_window_seconds": None},
    "prescaler": {},
}


class FrontierError(ValueError):
    """A sweep specification that cannot run; the message names the family and the knob."""


class SweepSpec(BaseModel):
    """Which families to sweep and, per family, the knob grids (a family's default grid if absent)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    families: tuple[str, ...] = FAMILIES
    grids: dict[str, dict[str, tuple[Any, ...]]] = Field(default_factory=dict)
    references: tuple[str, ...] = DEFAULT_REFERENCES

    @field_validator("families")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return known_names(value, FAMILIES, "family", "families")

    @field_validator("references")
    @classmethod
    def _known_references(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return known_names(value, REFERENCES, "reference", "references", allow_empty=True)

    def points(self) -> list[tuple[str, _Knobs, bool]]:
        """(family, knobs, is the family's default) for every point, each knob set validated."""
        out: list[tuple[str, _Knobs, bool]] = []
        for family in self.families:
            grid = {**DEFAULT_GRIDS[family], **self.grids.get(family, {})}
            combos: list[dict[str, Any]] = [{}]
            for knob, values in grid.items():
                if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
                    raise FrontierError(f"{family}.{knob}: expected a non-empty list of values, got {values!r}")
                combos = [{**c, knob: v} for c in combos for v in values]
            extras = [] if family in self.grids else list(EXTRA_POINTS.get(family, ()))
            default = DEFAULTS.get(family)
            candidates = combos + extras + ([default] if default is not None else [])
            seen: set[tuple] = set()
            for combo in candidates:
                try:
                    knobs = KNOBS[family](**combo)
                except ValidationError as exc:
                    problems = "; ".join(f"{family}.{'.'.join(map(str, e['loc']))}: "
                                         f"{e['msg'].removeprefix('Value error, ')} (got {e.get('input')!r})"
                                         for e in exc.errors())
                    raise FrontierError(problems) from exc
                key = tuple(sorted(knobs.model_dump().items()))
                if key in seen:
                    continue
                seen.add(key)
                is_default = default is not None and knobs == KNOBS[family](**default)
                out.append((family, knobs, is_default))
        for family in self.grids:
            if family not in FAMILIES:
                raise FrontierError(f"grids: unknown family {family!r}; choose from {', '.join(FAMILIES)}")
        return out


def parse_sweep(data: Mapping[str, Any]) -> SweepSpec:
    """A sweep spec from a mapping (YAML/JSON), with errors naming the family and the knob."""
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'sweep'}: {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
        raise FrontierError(problems) from exc
    spec.points()  # every knob set checked now, not in the middle of a sweep
    return spec


class FrontierPoint(BaseModel):
    """One configuration's outcome (the JSON the benchmark and CI read)."""

    model_config = ConfigDict(frozen=True)

    family: str
    config: dict[str, Any]
    default: bool
    reference: bool = Field(False, description="peeks at the future (oracle, hindsight): not a contender")
    gpu_hours: float
    gpu_hours_vs_oracle: float | None
    slo_attainment: float
    slo_misses: float
    rejected: float = 0.0
    abandoned: float = 0.0
    scale_events: int
    wall_seconds: float


class FrontierResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    trace: str
    oracle_gpu_hours: float
    replay_days: float
    scaling: str
    realism: dict[str, Any]
    points: list[FrontierPoint]
    wall_seconds: float

    def family(self, name: str) -> list[FrontierPoint]:
        return [p for p in self.points if p.family == name]

    def default(self, family: str) -> FrontierPoint:
        for p in self.points:
            if p.family == family and p.default:
                return p
        raise KeyError(f"no default point for {family}")


# The median is recorded with the swept quantiles, as a replay's RollingForecaster makes it.
MEDIAN = 0.5


def _tape(workload: Workload, settings: ReplaySettings, config: SimConfig, forecasting: ReplayForecasting,
          quantiles: Sequence[float]) -> ForecastTape:
    source = rolling_forecaster(workload, config, settings, forecasting, quantiles)
    syncs = workload.ticks // round(config.sync_seconds / config.tick_seconds) + 1
    return ForecastTape(source, start=workload.start, syncs=syncs, sync_seconds=config.sync_seconds)


def make_point_scaler(family: str, knobs: _Knobs, workload: Workload, settings: ReplaySettings,
                      config: SimConfig,
                      tapes: Mapping[tuple[str, float | None], ForecastTape]) -> tuple[Scaler, SimConfig]:
    """The scaler (and the config it runs under) for one point of the sweep."""
    if family in FAMILY_METRICS:
        assert isinstance(knobs, HpaKnobs)
        metric = FAMILY_METRICS[family]
        scaler: Scaler = hpa_scaler(workload, config, metric=metric, target_factor=knobs.target,
                                    scale_down_window_seconds=knobs.scale_down_window_seconds, name=family)
        if isinstance(knobs, KedaKnobs):
            scaler = PolledMetrics(scaler, use_cached_metrics=knobs.use_cached_metrics, name=family)
        return scaler, config
    if family == "kpa":
        assert isinstance(knobs, KpaKnobs)
        # containerConcurrency as a user sets it: a replica's in-flight requests at 100 % utilization,
        # x the knob; Knative then aims at 70 % of it (container-concurrency-target-percentage).
        at_capacity = in_flight_target(workload, config) / config.target_utilization
        kpa = KpaSettings(metric="concurrency", target=knobs.target * at_capacity,
                          scale_down_delay_seconds=knobs.scale_down_delay_seconds, max_scale=config.max_replicas)
        return KpaScaler(kpa, name=family), knative_timing(config)
    if family == "static":
        assert isinstance(knobs, StaticKnobs)
        return FractionStatic(knobs.fraction), config
    if family in ("prescaler", "hindsight", "hindsight-peak"):
        assert isinstance(knobs, PrescalerKnobs)
        spec = prescaler_spec(
            workload, config, quantile=knobs.quantile, bin_seconds=settings.forecast_bin_seconds,
            model=settings.model, interval_seconds=settings.forecast_interval_seconds,
            target_utilization=knobs.target_utilization, metric=knobs.reactive_metric,
            target_factor=knobs.reactive_target, scale_down_window_seconds=knobs.scale_down_window_seconds,
            capacity_error=knobs.capacity_error)
        tape = tapes[(family, knobs.peak_quantile if family == "prescaler" else None)]
        return DecideScaler(family, spec, workload, config, tape, metric=knobs.reactive_metric,
                            queue_weight=knobs.queue_weight, drain_seconds=knobs.drain_seconds), config
    if family == "oracle":
        return OracleScaler(), config
    raise FrontierError(f"unknown family {family!r}")


class FractionStatic(StaticScaler):
    """A fixed fleet at `fraction` of the window's peak need (at least one replica)."""

    def __init__(self, fraction: float) -> None:
        super().__init__()
        self.fraction = fraction

    def initial(self, workload: Workload, config: SimConfig) -> int:
        self.replicas_ = max(1, math.ceil(self.fraction * max(needed_per_minute(workload, config)) - 1e-9))
        return self.replicas_


_JOB: tuple | None = None  # (workload, settings, config, tapes), inherited by forked workers


def _run_point(task: tuple[str, _Knobs, bool, bool]) -> tuple[str, _Knobs, bool, bool, RunResult, float]:
    family, knobs, is_default, reference = task
    assert _JOB is not None
    workload, settings, config, tapes = _JOB
    started = time.perf_counter()
    scaler, point_config = make_point_scaler(family, knobs, workload, settings, config, tapes)
    result = run(workload, point_config, scaler, keep_series=False)
    return family, knobs, is_default, reference, result, time.perf_counter() - started


def _log_point(log: Callable[[str], None] | None, item: tuple, n: int, total: int) -> None:
    if log is None:
        return
    family, knobs, _, _, result, wall = item
    # only the knobs a point sets (the defaults of its knob model are left out)
    default = type(knobs).model_fields
    changed = {k: v for k, v in knobs.model_dump().items() if default[k].is_required() or v != default[k].default}
    config = "" if family == "oracle" else " " + " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                                         for k, v in changed.items())
    log(f"[{n}/{total}] {family}{config}: {wall:.1f} s")


def frontier(
    frame: pd.DataFrame,
    settings: ReplaySettings,
    *,
    forecasting: ReplayForecasting,
    sweep: SweepSpec | None = None,
    trace_name: str = "trace",
    scaling: str = "counts",
    config: SimConfig | None = None,
    jobs: int = 1,
    log: Callable[[str], None] | None = None,
) -> FrontierResult:
    """Replay `frame`'s window once per point of `sweep`, on the same seeded arrivals.

    `config` overrides the simulated cluster (realism knobs: timeouts, admission limit, cold-start
    draws); by default the replay settings' own. prescaler's forecasts are made once (a ForecastTape
    with every swept quantile) and shared by its points.
    """
    global _JOB
    started = time.perf_counter()
    sweep = sweep or SweepSpec()
    config = config or settings.sim_config()
    workload = build_workload(frame, config, replay_from=settings.replay_from, replay_days=settings.replay_days,
                              peak_replicas=settings.peak_replicas, tokens=settings.tokens, scaling=scaling)
    points = sweep.points()
    tasks: list[tuple[str, _Knobs, bool, bool]] = [(f, k, d, False) for f, k, d in points]
    tapes: dict[tuple[str, float | None], ForecastTape] = {}
    if "prescaler" in sweep.families:
        knob_sets = [k for f, k, _ in points if isinstance(k, PrescalerKnobs)]
        quantiles = sorted({MEDIAN, *(k.quantile for k in knob_sets)})
        for peak in dict.fromkeys(k.peak_quantile for k in knob_sets):
            engine = forecasting if peak is None else PeakProvisioning(forecasting, peak)
            tapes[("prescaler", peak)] = _tape(workload, settings, config, engine, quantiles)
            if log:
                tape = tapes[("prescaler", peak)]
                log(f"forecasts recorded{'' if peak is None else f' (peak quantile {peak:g})'} in "
                    f"{time.perf_counter() - started:.0f} s ({tape.fits} fits, {tape.predictions} forecasts)")
        # prescaler's default knobs, with whatever capacity error the sweep gives its points
        default = next((k for f, k, d in points if f == "prescaler" and d), PrescalerKnobs(**DEFAULTS["prescaler"]))
        counts = pd.concat([workload.history, workload.observed])
        for name, peaks in (("hindsight", False), ("hindsight-peak", True)):
            if name in sweep.references:
                truth = HindsightForecasting(counts, settings.forecast_bin_seconds, forecasting, peaks=peaks)
                tapes[(name, None)] = _tape(workload, settings, config, truth, quantiles)
                tasks.append((name, default.model_copy(update={"peak_quantile": None}), True, True))
    tasks.append(("oracle", StaticKnobs(fraction=1.0), True, True))
    # The slowest first (Knative's 1 s scrapes, then prescaler's), so the pool ends together.
    tasks.sort(key=lambda t: (t[0] != "kpa", t[0] not in ("prescaler", "hindsight", "hindsight-peak")))
    _JOB = (workload, settings, config, tapes)
    try:
        if jobs > 1:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
                done = []
                for item in pool.map(_run_point, tasks):  # in order; each logged as it is collected
                    done.append(item)
                    _log_point(log, item, len(done), len(tasks))
        else:
            done = []
            for task in tasks:
                done.append(_run_point(task))
                _log_point(log, done[-1], len(done), len(tasks))
    finally:
        _JOB = None
    oracle = next(r for f, _, _, _, r, _ in done if f == "oracle")
    oracle_hours = oracle.gpu_seconds / 3600.0
    out = []
    for family, knobs, is_default, reference, result, wall in done:
        summary = summarise(result, wall, oracle_hours)
        config_dump = {} if family == "oracle" else knobs.model_dump()
        out.append(FrontierPoint(
            family=family, config=config_dump, default=is_default, reference=reference,
            gpu_hours=summary.gpu_hours, gpu_hours_vs_oracle=summary.gpu_hours_vs_oracle,
            slo_attainment=summary.slo_attainment, slo_misses=summary.slo_misses,
            rejected=summary.rejected, abandoned=summary.abandoned,
            scale_events=summary.scale_events, wall_seconds=wall,
        ))
    out.sort(key=lambda p: (FAMILIES.index(p.family) if p.family in FAMILIES else 99, p.gpu_hours))
    realism = {k: v for k, v in config.model_dump().items()
               if k in ("request_timeout_seconds", "max_waiting_per_replica", "cold_start") and v is not None}
    return FrontierResult(
        trace=trace_name, oracle_gpu_hours=oracle_hours, replay_days=workload.minutes / 1440.0, scaling=scaling,
        realism=realism, points=out, wall_seconds=time.perf_counter() - started,
    )


# ---------------------------------------------------------------------------------------------------
# Dominance: the targets of issue 16, computed from the points.
# ---------------------------------------------------------------------------------------------------


class Dominance(BaseModel):
    """How prescaler's default point stands against the reactive points (none of them peek)."""

    model_config = ConfigDict(frozen=True)

    prescaler: FrontierPoint
    # The reactive point with the fewest misses among those using <= prescaler's GPU-hours.
    best_at_equal_cost: FrontierPoint | None
    miss_ratio: float | None = Field(description="its misses / prescaler's (target >= 5)")
    # The cheapest reactive point whose SLO attainment >= prescaler's.
    cheapest_at_equal_slo: FrontierPoint | None
    cost_ratio: float | None = Field(description="its GPU-hours / prescaler's (target >= 1.25; None: none reaches it)")

    @property
    def miss_target_met(self) -> bool:
        return self.miss_ratio is None or self.miss_ratio >= 5.0

    @property
    def cost_target_met(self) -> bool:
        return self.cost_ratio is None or self.cost_ratio >= 1.25


def dominance(result: FrontierResult, *, reactive: Sequence[str] = REACTIVE_FAMILIES) -> Dominance:
    pre = result.default("prescaler")
    rivals = [p for p in result.points if p.family in reactive and not p.reference]
    cheaper = [p for p in rivals if p.gpu_hours <= pre.gpu_hours]
    best = min(cheaper, key=lambda p: (p.slo_misses, p.gpu_hours)) if cheaper else None
    if best is None:
        miss_ratio = None
    elif pre.slo_misses > 0:
        miss_ratio = best.slo_misses / pre.slo_misses
    else:
        miss_ratio = math.inf if best.slo_misses > 0 else 1.0
    reaching = [p for p in rivals if p.slo_attainment >= pre.slo_attainment]
    cheapest = min(reaching, key=lambda p: p.gpu_hours) if reaching else None
    cost_ratio = cheapest.gpu_hours / pre.gpu_hours if cheapest is not None else None
    return Dominance(prescaler=pre, best_at_equal_cost=best, miss_ratio=miss_ratio,
                     cheapest_at_equal_slo=cheapest, cost_ratio=cost_ratio)


def pareto(points: Sequence[FrontierPoint]) -> list[FrontierPoint]:
    """The points no other point beats on both GPU-hours and SLO misses (the frontier itself)."""
    ordered = sorted(points, key=lambda p: (p.gpu_hours, p.slo_misses))
    out: list[FrontierPoint] = []
    best = math.inf
    for p in ordered:
        if p.slo_misses < best:
            out.append(p)
            best = p.slo_misses
    return out


__all__ = ["DEFAULT_GRIDS", "FAMILIES", "Dominance", "FrontierError", "FrontierPoint", "FrontierResult",
           "SweepSpec", "dominance", "frontier", "make_point_scaler", "pareto", "parse_sweep"]
