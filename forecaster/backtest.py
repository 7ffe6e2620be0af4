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
exactly the same origins at no extra fit (forecaster.backtest_ensemble says how its members are
chosen).

With `workers` > 1 the refit groups run in a process pool (forecaster.backtest_pool), with the same
results as in one process.

Scores per model and horizon (forecaster.metrics): MASE against one scale, the in-sample daily
seasonal-naive MAE of the data before the first origin (the same denominator for every model, so
MASE ranks like MAE), sMAPE, pinball loss per quantile and their mean, coverage of the 0.9
interval [q0.05, q0.95], and the under-forecast rate at the controller's quantile. A model whose
history is too short raises InsufficientHistory and is recorded as skipped with the reason; any
other error records it as failed, so one broken model cannot hide the others' scores.

The backtest refuses a bin finer than the trace's native one: a 1-minute file that repeats each
10-minute average makes a naive forecaster look perfect inside a bin (../shared/traces/README.md).

The parts, one concern each (all their public names are importable from here):
  backtest_config     BacktestConfig: horizons, origins, refits, quantiles, objective
  backtest_results    Horizon, HorizonScore, ModelRun, BacktestResult and the scores table
  backtest_plan       plan_origins: where to forecast from and refit; the scores at those origins
  backtest_run        one model's refit groups, run and checked in this process
  backtest_pool       the process pool of refit groups, and auto_workers
  backtest_ensemble   the ensemble scored from its members' forecasts (rank_members, combine_runs)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import pandas as pd

from forecaster.backtest_config import DEFAULT_HORIZONS, DEFAULT_QUANTILES, INTERVAL, BacktestConfig
from forecaster.backtest_ensemble import combine_runs, ensemble_members, rank_members
from forecaster.backtest_plan import Plan, plan_origins
from forecaster.backtest_pool import MAX_AUTO_WORKERS, auto_workers, run_models
from forecaster.backtest_results import (
    BacktestResult,
    Horizon,
    HorizonScore,
    ModelRun,
    horizon_label,
    make_horizons,
)
from forecaster.backtest_run import ModelFactory, Progress, report_done
from forecaster.estimators.ensemble import QuantileAverage
from forecaster.series import format_duration, step_seconds

__all__ = [
    "DEFAULT_HORIZONS",
    "DEFAULT_QUANTILES",
    "INTERVAL",
    "MAX_AUTO_WORKERS",
    "BacktestConfig",
    "BacktestResult",
    "Horizon",
    "HorizonScore",
    "ModelFactory",
    "ModelRun",
    "Plan",
    "Progress",
    "auto_workers",
    "backtest",
    "combine_runs",
    "horizon_label",
    "make_horizons",
    "plan_origins",
    "rank_members",
]


def _factories(models: Sequence[str] | Mapping[str, ModelFactory]) -> dict[str, ModelFactory]:
    if isinstance(models, Mapping):
        return dict(models)
    from forecaster.estimators import make_estimator

    # functools.partial, not a lambda: a worker process must be able to unpickle the factory.
    return {name: functools.partial(make_estimator, name) for name in models}


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
        except Exception:  # noqa: BLE001 - run_model calls it again and records the failure
            continue
        if isinstance(probe, QuantileAverage):
            probes[name] = probe
    ensembles = {
        name: probe for name, probe in probes.items()
        if probe.members is None or all(m in factories and m not in probes for m in probe.members)
    }
    singles = {n: f for n, f in factories.items() if n not in ensembles}
    runs = run_models(singles, series, plan, config, progress, workers)
    for name, probe in ensembles.items():
        runs[name] = combine_runs(name, ensemble_members(probe, runs, plan, config), runs, series, plan, config)
        report_done(progress, name, len(plan.groups))
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
