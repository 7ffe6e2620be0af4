"""Running the backtest's models: in this process, or in a process pool of refit groups.

With `workers` > 1 the refit groups run in a process pool, each (model, group) a task, costliest
model first so the workers end together (spawned, so no fork of a threaded parent; each worker
keeps the OMP_NUM_THREADS it inherits, and gets its share of the cores if unset). Results are the
same as in one process. Factories that cannot be pickled (closures) make the backtest run in this
process instead, and so do the tasks of a pool that broke.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import pandas as pd

from forecaster.backtest_config import BacktestConfig
from forecaster.backtest_plan import Plan
from forecaster.backtest_results import ModelRun
from forecaster.backtest_run import GroupRun, ModelFactory, Progress, assemble, report_done, run_group, run_model

# The name the backtest always logged under, so logging configured for it keeps working.
log = logging.getLogger("forecaster.backtest")

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
_SHARED: tuple[pd.Series, Plan, BacktestConfig] | None = None


def _worker_init(threads: int, shared: tuple[pd.Series, Plan, BacktestConfig]) -> None:
    global _SHARED
    # Respect a caller's OMP_NUM_THREADS (the Makefile exports 1); unset, give each worker its share
    # of the cores, or two workers each running a thread per core oversubscribe the machine. This
    # runs before the worker imports scikit-learn, whose OpenMP runtime reads it once at load.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    _SHARED = shared


def _pool_task(name: str, factory: ModelFactory, index: int) -> GroupRun:
    assert _SHARED is not None, "_pool_task runs in a worker started by run_models"
    series, plan, config = _SHARED
    return run_group(name, factory, series, plan.groups[index], plan.max_bins, config)


def _picklable(value: object) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # noqa: BLE001 - closures, lambdas, locks: whatever pickle refuses
        return False
    return True


def run_models(
    factories: Mapping[str, ModelFactory], series: pd.Series, plan: Plan, config: BacktestConfig,
    progress: Progress | None, workers: int,
) -> dict[str, ModelRun]:
    """Every model's run. In a pool the unit of work is one refit group of one model, not a whole
    model: gbm's ten fits alone outlast all the other models together, so per-model tasks would
    leave one worker idle while the other fits gbm."""
    names = list(factories)
    if workers <= 1 or not _picklable(dict(factories)):
        return {name: run_model(name, factories[name], series, plan, config, progress) for name in names}
    n_groups = len(plan.groups)
    # Costliest model first, its groups in order: the pool's workers then finish close together.
    tasks = [(n, i) for n in sorted(names, key=lambda n: -_COST_HINT.get(n, 1.0)) for i in range(n_groups)]
    size = min(workers, len(tasks))
    parts: dict[str, dict[int, GroupRun]] = {n: {} for n in names}
    stopped: set[str] = set()  # models with a group that did not run: their other groups are moot
    broken: list[tuple[str, int]] = []
    with ProcessPoolExecutor(
        max_workers=size, mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init, initargs=(max(1, _usable_cpus() // size), (series, plan, config)),
    ) as pool:
        pending: dict[Future[GroupRun], tuple[str, int]] = {
            pool.submit(_pool_task, n, factories[n], i): (n, i) for n, i in tasks
        }
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
                    report_done(progress, name, n_groups)
                elif name not in stopped and progress is not None:
                    progress(name, len(parts[name]), n_groups)
    if broken:
        # A worker that could not start (a script that spawns without the `if __name__ ==
        # "__main__"` guard) or was killed: run what it left here rather than lose those models.
        log.warning("backtest: the worker pool broke; running %s in this process",
                    ", ".join(sorted({n for n, _ in broken})))
        for name, index in broken:
            if name not in stopped:
                parts[name][index] = run_group(name, factories[name], series, plan.groups[index], plan.max_bins, config)
    runs = {}
    for name in names:
        ordered = [parts[name][i] for i in sorted(parts[name])]
        failed = [p for p in ordered if p.status != "ok"]
        runs[name] = assemble(name, failed[:1] or ordered, series, plan, config)
    return runs
