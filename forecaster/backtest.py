"""Rolling-origin backtest: how well each model would have forecast the last days of a series.

Origins are spread every `origin_every` over the final `eval_days` (default: hourly over 3 days,
72 origins). At each origin a model sees only the data up to and including that bin, and is scored
on the bin `h` bins later for each horizon: the bin that ends at origin + horizon, where the origin
is the end of its bin and a horizon shorter than a bin (or not a multiple of it) rounds up to whole
bins. Refitting statsmodels or Prophet at all 72 origins is too slow for the 60 s budget, so each
model is fitted at `refits` origins (the first of each of that many consecutive groups) and, between
refits, forecasts from the later origin with its fitted parameters (Estimator.predict(history=...)),
which is how the service runs it too: refit every few hours, forecast every few minutes.

The `ensemble` (forecaster.estimators.ensemble) is not fitted here: its forecast at each origin is
the quantile average of the forecasts its members already made at that origin, so it is scored on
exactly the same origins at no extra fit. Without fixed members it takes the best `k` non-baseline
models on the config's objective (the one selection uses). Those members are chosen on the very
scores the ensemble is then judged against, the same optimism the best single model enjoys when
selection picks it on these scores.

With `workers` > 1 the refit groups run in a process pool, each (model, group) a task, costliest
model first so the workers end together (spawned, so no fork of a threaded parent; each worker
keeps the OMP_NUM_THREADS it inherits, and gets its share of the cores if unset). Results are the
same as in one process. Factories that cannot be pickled (closures) make the backtest run in this
process instead, and so do the tasks of a pool that broke.

Scores per model and horizon (forecaster.metrics): MASE against one scale, the in-sample daily
seasonal-naive MAE of the data before the first origin (the same denominator for every model, so
MASE ranks like MAE), sMAPE, pinball loss per quantile and their mean, coverage of the 0.9
interval [q0.05, q0.95], and the under-forecast rate at the controller's quantile. A model whose
history is too short raises InsufficientHistory and is recorded as skipped with the reason; any
other error records it as failed, so one broken model cannot hide the others' scores.

The backtest refuses a bin finer than the trace's native one: a 1-minute file that repeats each
10-minute average makes a naive forecaster look perfect inside a bin (../shared/traces/README.md).
"""

from __future__ import annotations

import functools
import logging
import math
import multiprocessing
import os
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from forecaster import metrics
from forecaster.contract import quantile_key
from forecaster.errors import InsufficientHistory
from forecaster.estimators.base import Estimator
from forecaster.estimators.ensemble import QuantileAverage, quantile_average
from forecaster.selection import objective_scores, parse_objective
from forecaster.series import format_duration, parse_duration, step_seconds

log = logging.getLogger(__name__)

# The 0.9 interval is the central one between these quantiles (issue 2: "coverage of the 0.9 interval").
INTERVAL = (0.05, 0.95)
DEFAULT_QUANTILES = (0.05, 0.5, 0.9, 0.95)
DEFAULT_HORIZONS = ("15m", "60m")

# (model, refits done, refits planned): called after every fit so a progress bar can move.
Progress = Callable[[str, int, int], None]
ModelFactory = Callable[[], Estimator]


class BacktestConfig(BaseModel):
    """Settings of one backtest; durations accept '15m', '1h' or seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    horizons: tuple[int, ...] = Field(default=(900, 3600), description="horizons in seconds")
    eval_days: float = Field(default=3.0, gt=0, description="span of the origins at the series' end")
    origin_every: int = Field(default=3600, gt=0, description="seconds between origins")
    refits: int = Field(default=10, ge=1, description="fits per model; origins between reuse the fit")
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    controller_quantile: float = Field(default=0.9, gt=0, lt=1)
    objective: str | None = Field(
        default=None,
        description="what ranks the ensemble's members (forecaster.selection); None: pinball at "
        "controller_quantile, the selection default",
    )

    @field_validator("horizons", mode="before")
    @classmethod
    def _parse_horizons(cls, value):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        return tuple(int(parse_duration(v).total_seconds()) for v in value)

    @field_validator("origin_every", mode="before")
    @classmethod
    def _parse_every(cls, value):
        return int(parse_duration(value).total_seconds())

    @field_validator("objective")
    @classmethod
    def _check_objective(cls, value):
        if value is not None:
            parse_objective(value)  # raises, naming the objectives it knows
        return value

    @field_validator("quantiles", mode="before")
    @classmethod
    def _sort_quantiles(cls, value):
        qs = sorted({float(q) for q in value})
        for q in qs:
            quantile_key(q)  # raises on a level outside (0, 1)
        return tuple(qs)

    @model_validator(mode="after")
    def _consistent(self) -> "BacktestConfig":
        if not self.horizons:
            raise ValueError("horizons must name at least one horizon")
        if len(set(self.horizons)) != len(self.horizons):
            raise ValueError(f"horizons repeat: {[format_duration(h) for h in self.horizons]}")
        needed = {*INTERVAL, self.controller_quantile}
        missing = sorted(q for q in needed if q not in self.quantiles)
        if missing:
            raise ValueError(
                f"quantiles {list(self.quantiles)} must include {missing}: the 0.9 interval needs "
                f"{INTERVAL[0]} and {INTERVAL[1]}, and under_rate the controller_quantile "
                f"({self.controller_quantile})"
            )
        metric, key = parse_objective(self.ranking_objective)
        if metric == "pinball" and key != "mean" and key not in {quantile_key(q) for q in self.quantiles}:
            raise ValueError(
                f"objective {self.ranking_objective} needs quantile {key} in quantiles {list(self.quantiles)}"
            )
        return self

    @property
    def ranking_objective(self) -> str:
        return self.objective or f"pinball@{quantile_key(self.controller_quantile)}"


@dataclass(frozen=True)
class Horizon:
    label: str  # as asked: "15m"
    seconds: int  # as asked
    bins: int  # rounded up to whole bins

    def effective_seconds(self, step: int) -> int:
        return self.bins * step


@dataclass(frozen=True)
class HorizonScore:
    mase: float
    smape: float
    pinball: dict[str, float]  # quantile key -> loss, plus "mean" over the quantiles
    coverage90: float
    under_rate: float
    n_points: int


@dataclass(frozen=True)
class ModelRun:
    model: str
    is_baseline: bool
    status: str  # "ok", "skipped" (InsufficientHistory) or "failed" (any other error)
    reason: str | None = None
    fit_seconds: float = 0.0  # mean seconds per fit
    predict_seconds: float = 0.0  # mean seconds per predict call
    n_fits: int = 0
    scores: dict[str, HorizonScore] = field(default_factory=dict)  # horizon label -> scores
    members: tuple[str, ...] = ()  # an ensemble's members; () for a single model
    # (origin, lead bin, [mean, *quantiles in config order]) forecasts; what an ensemble averages.
    forecasts: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class BacktestResult:
    bin_seconds: int
    horizons: tuple[Horizon, ...]
    origins: tuple[pd.Timestamp, ...]
    refit_origins: tuple[pd.Timestamp, ...]
    scale: metrics.Scale
    config: BacktestConfig
    runs: dict[str, ModelRun]

    @property
    def scored(self) -> list[str]:
        return [name for name, run in self.runs.items() if run.status == "ok"]

    def scores_table(self) -> dict[str, dict[str, dict]]:
        """{horizon label: {model: {mase, smape, pinball, coverage90, under_rate, fit_seconds,
        predict_seconds, n_points}}} for the models that were scored."""
        return _scores_table(self.runs, self.horizons)

    def forecast_frame(self, model: str, origin: int | pd.Timestamp) -> pd.DataFrame:
        """What `model` forecast at one origin (its position in `origins`, or its timestamp): the
        frame its estimator returned, one row per bin up to the longest horizon."""
        run = self.runs[model]
        if run.forecasts is None:
            raise ValueError(f"{model} has no forecasts to show: it was {run.status} ({run.reason})")
        if isinstance(origin, pd.Timestamp):
            if origin not in self.origins:
                raise KeyError(f"{origin.isoformat()} is not a backtest origin")
            origin = self.origins.index(origin)
        start = self.origins[origin]
        step = pd.Timedelta(seconds=self.bin_seconds)
        index = pd.date_range(start + step, periods=run.forecasts.shape[1], freq=step)
        columns = ["mean", *(quantile_key(q) for q in self.config.quantiles)]
        return pd.DataFrame(run.forecasts[origin], index=index, columns=columns)

    def to_dict(self) -> dict:
        return {
            "bin_seconds": self.bin_seconds,
            "horizons": [
                {"label": h.label, "seconds": h.seconds, "bins": h.bins,
                 "effective_seconds": h.effective_seconds(self.bin_seconds)}
                for h in self.horizons
            ],
            "origins": {
                "count": len(self.origins),
                "first": self.origins[0].isoformat(),
                "last": self.origins[-1].isoformat(),
                "every_seconds": self.config.origin_every,
                "refits": [t.isoformat() for t in self.refit_origins],
            },
            "quantiles": list(self.config.quantiles),
            "controller_quantile": self.config.controller_quantile,
            "mase_scale": self.scale.to_dict(),
            "scores": self.scores_table(),
            "models": {
                name: {
                    "status": run.status,
                    "is_baseline": run.is_baseline,
                    "reason": run.reason,
                    "fit_seconds": run.fit_seconds,
                    "predict_seconds": run.predict_seconds,
                    "n_fits": run.n_fits,
                    **({"members": list(run.members)} if run.members else {}),
                }
                for name, run in self.runs.items()
            },
        }


@dataclass(frozen=True)
class _Plan:
    origins: np.ndarray  # positions of the last bin each forecast may see
    groups: list[np.ndarray]  # origins sharing one fit; the fit is at the group's first origin
    horizons: tuple[Horizon, ...]
    scale: metrics.Scale


def _scores_table(runs: Mapping[str, ModelRun], horizons: Sequence[Horizon]) -> dict[str, dict[str, dict]]:
    table: dict[str, dict[str, dict]] = {}
    for horizon in horizons:
        row = {}
        for name, run in runs.items():
            if run.status != "ok":
                continue
            score = run.scores[horizon.label]
            row[name] = {
                "mase": score.mase,
                "smape": score.smape,
                "pinball": dict(score.pinball),
                "coverage90": score.coverage90,
                "under_rate": score.under_rate,
                "fit_seconds": run.fit_seconds,
                "predict_seconds": run.predict_seconds,
                "n_points": score.n_points,
            }
        table[horizon.label] = row
    return table


def horizon_label(seconds: int) -> str:
    """'15m', '60m', '120m' (minutes, as the controller's lead times are written), else '90s'."""
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def make_horizons(seconds: Sequence[int], step: int) -> tuple[Horizon, ...]:
    return tuple(Horizon(horizon_label(s), int(s), max(1, math.ceil(s / step))) for s in seconds)


def plan_origins(series: pd.Series, config: BacktestConfig) -> _Plan:
    """Where to forecast from and where to refit, fixed by the series length and the config alone."""
    step = step_seconds(series)
    n = len(series)
    horizons = make_horizons(config.horizons, step)
    max_bins = max(h.bins for h in horizons)
    every = max(1, round(config.origin_every / step))
    # The evaluation window is the last eval_days, but never more than half the series: the models
    # need at least as much history before the first origin as the span they are judged on.
    window = min(int(config.eval_days * metrics.DAY_SECONDS / step), n // 2)
    last = n - 1 - max_bins
    first = n - window
    if last < first or first < 2:
        raise InsufficientHistory(
            f"series of {n} bins at {step} s is too short to backtest a {format_duration(max_bins * step)} "
            f"horizon (needs at least {2 * (max_bins + 2)} bins)"
        )
    # Anchored at the end so the most recent data is always judged, then spaced back from there.
    origins = np.arange(last, first - 1, -every)[::-1]
    groups = [g for g in np.array_split(origins, min(config.refits, origins.size)) if g.size]
    scale = metrics.naive_scale(series.to_numpy(dtype="float64")[: origins[0] + 1], step)
    return _Plan(origins=origins, groups=groups, horizons=horizons, scale=scale)


def _factories(models: Sequence[str] | Mapping[str, ModelFactory]) -> dict[str, ModelFactory]:
    if isinstance(models, Mapping):
        return dict(models)
    from forecaster.estimators import make_estimator

    # functools.partial, not a lambda: a worker process must be able to unpickle the factory.
    return {name: functools.partial(make_estimator, name) for name in models}


def _check_frame(frame: pd.DataFrame, model: str, horizon: int, keys: list[str]) -> np.ndarray:
    """The (horizon, 1 + len(keys)) matrix [mean, quantiles...], after checking what came back."""
    missing = [k for k in ["mean", *keys] if k not in frame.columns]
    if missing:
        raise ValueError(f"{model}: forecast lacks columns {missing} (has {list(frame.columns)})")
    if len(frame) != horizon:
        raise ValueError(f"{model}: forecast has {len(frame)} rows, asked for {horizon}")
    columns = ["mean", *keys]
    # The estimators return exactly these columns in this order; selecting them costs more than it saves.
    frame = frame if list(frame.columns) == columns else frame[columns]
    values = frame.to_numpy(dtype="float64")
    if not np.isfinite(values).all():
        raise ValueError(f"{model}: forecast holds NaN or infinite values")
    quant = values[:, 1:]
    if np.any(np.diff(quant, axis=1) < -1e-9 * np.maximum(1.0, np.abs(quant[:, :-1]))):
        raise ValueError(f"{model}: quantiles decrease with the level (columns {keys})")
    return values


def _score(actual: np.ndarray, forecast: np.ndarray, keys: list[str], config: BacktestConfig,
           scale: metrics.Scale) -> HorizonScore:
    mean = forecast[:, 0]
    column = {k: forecast[:, 1 + i] for i, k in enumerate(keys)}
    losses = {k: metrics.pinball(actual, column[k], q) for k, q in zip(keys, config.quantiles)}
    losses["mean"] = float(np.mean(list(losses.values())))
    return HorizonScore(
        mase=metrics.mase(actual, mean, scale),
        smape=metrics.smape(actual, mean),
        pinball=losses,
        coverage90=metrics.coverage(
            actual, column[quantile_key(INTERVAL[0])], column[quantile_key(INTERVAL[1])]
        ),
        under_rate=metrics.under_rate(actual, column[quantile_key(config.controller_quantile)]),
        n_points=metrics.n_observed(actual),
    )


def _finish(progress: Progress | None, name: str, total: int) -> None:
    """A model that stops early still reports all its refits done, so a progress bar completes."""
    if progress is not None:
        progress(name, total, total)


@dataclass(frozen=True)
class _GroupRun:
    """One refit group of one model: the fit at its first origin and the forecasts from each origin."""

    is_baseline: bool
    status: str = "ok"  # or "skipped" / "failed", with the reason
    reason: str | None = None
    rows: np.ndarray | None = None  # (origins in the group, lead bins, [mean, *quantiles])
    fit_seconds: float = 0.0
    predict_seconds: float = 0.0


def _run_group(
    name: str, factory: ModelFactory, series: pd.Series, group: np.ndarray, max_bins: int, config: BacktestConfig,
) -> _GroupRun:
    keys = [quantile_key(q) for q in config.quantiles]
    is_baseline = False
    try:
        estimator = factory()
        is_baseline = bool(getattr(estimator, "is_baseline", False))
        started = time.perf_counter()
        estimator.fit(series.iloc[: int(group[0]) + 1])
        fit_seconds = time.perf_counter() - started
        rows = np.empty((group.size, max_bins, 1 + len(keys)))
        predict_seconds = 0.0
        for i, origin in enumerate(group.tolist()):
            started = time.perf_counter()
            if i == 0:
                frame = estimator.predict(max_bins, config.quantiles)
            else:
                frame = estimator.predict(max_bins, config.quantiles, history=series.iloc[: origin + 1])
            predict_seconds += time.perf_counter() - started
            rows[i] = _check_frame(frame, name, max_bins, keys)
    except InsufficientHistory as error:
        return _GroupRun(is_baseline, "skipped", str(error))
    except Exception as error:  # noqa: BLE001 - recorded, shown on the leaderboard, never swallowed silently
        return _GroupRun(is_baseline, "failed", f"{type(error).__name__}: {error}")
    return _GroupRun(is_baseline, rows=rows, fit_seconds=fit_seconds, predict_seconds=predict_seconds)


def _assemble(name: str, parts: Sequence[_GroupRun], series: pd.Series, plan: _Plan, config: BacktestConfig) -> ModelRun:
    """A model's run from its groups' runs (in plan order); the first group that did not run decides."""
    is_baseline = any(p.is_baseline for p in parts)
    for part in parts:
        if part.status != "ok":
            return ModelRun(name, is_baseline, part.status, part.reason)
    forecasts = np.concatenate([p.rows for p in parts])
    return ModelRun(
        name, is_baseline, "ok", None,
        fit_seconds=sum(p.fit_seconds for p in parts) / len(parts),
        predict_seconds=sum(p.predict_seconds for p in parts) / max(1, plan.origins.size),
        n_fits=len(parts),
        scores=_scores(series.to_numpy(dtype="float64"), forecasts, plan, config),
        forecasts=forecasts,
    )


def _run_model(
    name: str, factory: ModelFactory, series: pd.Series, plan: _Plan, config: BacktestConfig,
    progress: Progress | None,
) -> ModelRun:
    max_bins = max(h.bins for h in plan.horizons)
    parts = []
    for done, group in enumerate(plan.groups, start=1):
        parts.append(_run_group(name, factory, series, group, max_bins, config))
        if parts[-1].status != "ok":
            _finish(progress, name, len(plan.groups))  # a model that stops early still completes its bar
            break
        if progress is not None:
            progress(name, done, len(plan.groups))
    return _assemble(name, parts, series, plan, config)


def _scores(values: np.ndarray, forecasts: np.ndarray, plan: _Plan, config: BacktestConfig) -> dict[str, HorizonScore]:
    keys = [quantile_key(q) for q in config.quantiles]
    scores = {}
    for horizon in plan.horizons:
        actual = values[plan.origins + horizon.bins]
        scores[horizon.label] = _score(actual, forecasts[:, horizon.bins - 1, :], keys, config, plan.scale)
    return scores


# ---- the ensemble: scored from its members' forecasts ----------------------------------------------


def rank_members(runs: Mapping[str, ModelRun], horizons: Sequence[Horizon], objective: str) -> list[str]:
    """Scored non-baseline single models, best first on `objective` (ties: the earlier name)."""
    eligible = {
        name: run for name, run in runs.items()
        if run.status == "ok" and not run.is_baseline and not run.members and run.forecasts is not None
    }
    scores = objective_scores(_scores_table(eligible, horizons), objective)
    names = [n for n in eligible if math.isfinite(scores.get(n, math.nan))]
    return sorted(names, key=lambda n: (scores[n], names.index(n)))


def combine_runs(
    name: str, members: Sequence[str], runs: Mapping[str, ModelRun], series: pd.Series, plan: _Plan,
    config: BacktestConfig,
) -> ModelRun:
    """The ensemble of `members` scored from their backtest forecasts (no fit of its own).

    Its fit and predict seconds are its members' summed: what fitting and running it costs.
    """
    if len(members) < 2:
        return ModelRun(name, False, "skipped", f"an ensemble needs 2 scored models, got {list(members)}")
    unscored = [f"{m} ({runs[m].status}: {runs[m].reason})" for m in members if runs[m].status != "ok"]
    if unscored:
        return ModelRun(name, False, "skipped", f"members not scored: {', '.join(unscored)}", members=tuple(members))
    forecasts = quantile_average([runs[m].forecasts for m in members])
    values = series.to_numpy(dtype="float64")
    return ModelRun(
        name, False, "ok", None,
        fit_seconds=sum(runs[m].fit_seconds for m in members),
        predict_seconds=sum(runs[m].predict_seconds for m in members),
        n_fits=0,
        scores=_scores(values, forecasts, plan, config),
        members=tuple(members),
        forecasts=forecasts,
    )


def _ensemble_members(probe: QuantileAverage, runs: Mapping[str, ModelRun], plan: _Plan,
                      config: BacktestConfig) -> list[str]:
    if probe.members is not None:
        return list(probe.members)
    return rank_members(runs, plan.horizons, config.ranking_objective)[: probe.k]


# ---- running the models: here, or in a process pool -------------------------------------------------

# Relative backtest cost: seconds for the 10 fits of each model in the speed scenario (14 days at 5 min,
# bench/results/forecast_accuracy.md). The pool starts the costliest first so its workers finish
# together. Unknown names count as 1.
_COST_HINT = {"gbm": 25.0, "mstl": 14.0, "sarimax_fourier": 8.0, "prophet": 5.0, "holt_winters": 1.0,
              "last_value": 0.1, "seasonal_naive_daily": 0.1, "seasonal_naive_weekly": 0.1}


# The speed target is "on 2 cores": more workers than that only queue on a shared machine.
MAX_AUTO_WORKERS = 2


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def auto_workers(models: Sequence[str]) -> int:
    """How many processes to backtest `models` in: a pool of up to MAX_AUTO_WORKERS (and the cores
    there are) when two or more of them are catalogue models whose fits take seconds; else 1.

    Starting a spawned worker costs a few seconds of imports, which baselines alone (the simulator's
    `auto`, refitted every simulated day) would pay again and again for nothing.
    """
    costly = sum(1 for name in models if _COST_HINT.get(name, 0.0) >= 1.0)
    return max(1, min(MAX_AUTO_WORKERS, _usable_cpus())) if costly >= 2 else 1


# What every task of one pool shares, sent once per worker rather than with each task.
_SHARED: tuple[pd.Series, _Plan, BacktestConfig] | None = None


def _worker_init(threads: int, shared: tuple[pd.Series, _Plan, BacktestConfig]) -> None:
    global _SHARED
    # Respect a caller's OMP_NUM_THREADS (the Makefile exports 1); unset, give each worker its share
    # of the cores, or two workers each running a thread per core oversubscribe the machine. This
    # runs before the worker imports scikit-learn, whose OpenMP runtime reads it once at load.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    _SHARED = shared


def _pool_task(name: str, factory: ModelFactory, index: int) -> _GroupRun:
    assert _SHARED is not None, "_pool_task runs in a worker started by _run_models"
    series, plan, config = _SHARED
    return _run_group(name, factory, series, plan.groups[index], max(h.bins for h in plan.horizons), config)


def _picklable(value) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # noqa: BLE001 - closures, lambdas, locks: whatever pickle refuses
        return False
    return True


def _run_models(
    factories: Mapping[str, ModelFactory], series: pd.Series, plan: _Plan, config: BacktestConfig,
    progress: Progress | None, workers: int,
) -> dict[str, ModelRun]:
    """Every model's run. In a pool the unit of work is one refit group of one model, not a whole
    model: gbm's ten fits alone outlast all the other models together, so per-model tasks would
    leave one worker idle while the other fits gbm."""
    names = list(factories)
    if workers <= 1 or not _picklable(dict(factories)):
        return {name: _run_model(name, factories[name], series, plan, config, progress) for name in names}
    n_groups = len(plan.groups)
    # Costliest model first, its groups in order: the pool's workers then finish close together.
    tasks = [(n, i) for n in sorted(names, key=lambda n: -_COST_HINT.get(n, 1.0)) for i in range(n_groups)]
    size = min(workers, len(tasks))
    parts: dict[str, dict[int, _GroupRun]] = {n: {} for n in names}
    stopped: set[str] = set()  # models with a group that did not run: their other groups are moot
    broken: list[tuple[str, int]] = []
    with ProcessPoolExecutor(
        max_workers=size, mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init, initargs=(max(1, _usable_cpus() // size), (series, plan, config)),
    ) as pool:
        pending = {pool.submit(_pool_task, n, factories[n], i): (n, i) for n, i in tasks}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                name, index = pending.pop(future)
                if future.cancelled():
                    continue
                try:
                    part = future.result()
                except BrokenProcessPool:
                    broken.append((name, index))
                    continue
                parts[name][index] = part
                if part.status != "ok" and name not in stopped:
                    stopped.add(name)
                    for other, (n, _i) in pending.items():
                        if n == name:
                            other.cancel()
                    _finish(progress, name, n_groups)
                elif name not in stopped and progress is not None:
                    progress(name, len(parts[name]), n_groups)
    if broken:
        # A worker that could not start (a script that spawns without the `if __name__ ==
        # "__main__"` guard) or was killed: run what it left here rather than lose those models.
        log.warning("backtest: the worker pool broke; running %s in this process",
                    ", ".join(sorted({n for n, _ in broken})))
        max_bins = max(h.bins for h in plan.horizons)
        for name, index in broken:
            if name not in stopped:
                parts[name][index] = _run_group(name, factories[name], series, plan.groups[index], max_bins, config)
    runs = {}
    for name in names:
        ordered = [parts[name][i] for i in sorted(parts[name])]
        failed = [p for p in ordered if p.status != "ok"]
        runs[name] = _assemble(name, failed[:1] or ordered, series, plan, config)
    return runs


def backtest(
    series: pd.Series,
    models: Sequence[str] | Mapping[str, ModelFactory],
    config: BacktestConfig | None = None,
    *,
    native_bin_seconds: int | None = None,
    progress: Progress | None = None,
    workers: int = 1,
) -> BacktestResult:
    """Backtest each model (catalogue names, or name -> factory of a fresh estimator) on `series`.

    `series` is a prepared rate series (forecaster.series). `native_bin_seconds` is the source's own
    bin when known; a series binned finer than it is refused. `workers` > 1 runs the models in a
    process pool of that size. An ensemble (QuantileAverage) among the models is scored from its
    members' forecasts after the others ran.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    config = config or BacktestConfig()
    if not isinstance(series.index, pd.DatetimeIndex) or series.index.tz is None:
        raise TypeError("backtest() needs a series on a tz-aware DatetimeIndex (see forecaster.series)")
    step = step_seconds(series)
    if native_bin_seconds is not None and step < native_bin_seconds:
        raise ValueError(
            f"bin {format_duration(step)} is finer than the trace's native bin "
            f"{format_duration(native_bin_seconds)}: values inside a native bin repeat, so a naive "
            f"forecaster would look perfect; backtest at {format_duration(native_bin_seconds)} or coarser"
        )
    factories = _factories(models)
    if not factories:
        raise ValueError("no model to backtest")
    plan = plan_origins(series, config)
    # An ensemble is derived from the others' forecasts when they are all in this backtest; one whose
    # fixed members are not all here is fitted like any model.
    probes: dict[str, QuantileAverage] = {}
    for name, factory in factories.items():
        try:
            probe = factory()
        except Exception:  # noqa: BLE001 - _run_model calls it again and records the failure
            continue
        if isinstance(probe, QuantileAverage):
            probes[name] = probe
    ensembles = {
        name: probe for name, probe in probes.items()
        if probe.members is None or all(m in factories and m not in probes for m in probe.members)
    }
    singles = {n: f for n, f in factories.items() if n not in ensembles}
    runs = _run_models(singles, series, plan, config, progress, workers)
    for name, probe in ensembles.items():
        runs[name] = combine_runs(name, _ensemble_members(probe, runs, plan, config), runs, series, plan, config)
        _finish(progress, name, len(plan.groups))
    runs = {name: runs[name] for name in factories}  # the caller's order: selection breaks ties by it
    index = series.index
    return BacktestResult(
        bin_seconds=step,
        horizons=plan.horizons,
        origins=tuple(index[plan.origins]),
        refit_origins=tuple(index[[int(g[0]) for g in plan.groups]]),
        scale=plan.scale,
        config=config,
        runs=runs,
    )
