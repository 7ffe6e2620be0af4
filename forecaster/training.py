"""The training pipeline: backtest the candidates, select one, fit it on all history, store it.

`select_and_fit` stops before the registry (the simulator trains on the history before its replay
window with it); `train` adds the save and returns the model card.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pandas as pd

from forecaster.backtest import (
    DEFAULT_HORIZONS,
    DEFAULT_QUANTILES,
    BacktestConfig,
    BacktestResult,
    ModelFactory,
    Progress,
    auto_workers,
    backtest,
)
from forecaster.errors import ForecasterError, InsufficientHistory
from forecaster.estimators.base import Estimator
from forecaster.objective import DEFAULT_OBJECTIVE, parse_objective
from forecaster.selection import SelectionRecord, select

if TYPE_CHECKING:
    from forecaster.registry import ModelCard, Registry

Models = str | Sequence[str] | Mapping[str, ModelFactory]


@dataclass(frozen=True)
class Trained:
    """A fitted estimator and the evidence for it."""

    estimator: Estimator
    backtest: BacktestResult
    selection: SelectionRecord


def resolve_models(models: Models) -> dict[str, ModelFactory]:
    """'all', 'a,b', ['a', 'b'] (catalogue names, validated) or {name: factory} -> {name: factory}."""
    if isinstance(models, Mapping):
        if not models:
            raise ValueError("no model given")
        return dict(models)
    from forecaster.estimators import available, make_estimator

    names = available(models if isinstance(models, str) else list(models))
    # functools.partial, not a lambda: the backtest's worker processes unpickle the factories.
    return {name: functools.partial(make_estimator, name) for name in names}


def make_config(
    horizons: Sequence[str | int] = DEFAULT_HORIZONS,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    objective: str = DEFAULT_OBJECTIVE,
    **overrides,
) -> BacktestConfig:
    """A backtest config for these horizons and quantiles; a pinball@Q objective adds Q to them."""
    metric, key = parse_objective(objective)
    qs = {float(q) for q in quantiles}
    if metric == "pinball" and key not in (None, "mean"):
        qs.add(float(key))
    overrides.setdefault("objective", objective)  # the ensemble's members are ranked on it too
    return BacktestConfig(horizons=tuple(horizons), quantiles=tuple(sorted(qs)), **overrides)


def evaluate_and_fit(
    series: pd.Series,
    *,
    models: Models = "all",
    horizons: Sequence[str | int] = DEFAULT_HORIZONS,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    objective: str = DEFAULT_OBJECTIVE,
    config: BacktestConfig | None = None,
    native_bin_seconds: int | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> Trained:
    """Backtest `models` on `series`, select on `objective`, fit the selected one on all of `series`.

    `config` overrides `horizons` and `quantiles` when given. `workers` is the backtest's process
    pool (None: forecaster.backtest.auto_workers). If the selected model cannot be fitted on the
    whole series, the next best candidate that beat the best baseline is fitted instead (for an
    ensemble, usually one of its members), then the best baseline, and the record says why.
    """
    factories = resolve_models(models)
    config = config or make_config(horizons, quantiles, objective)
    if workers is None:
        workers = auto_workers(list(factories))
    result = backtest(
        series, factories, config, native_bin_seconds=native_bin_seconds, progress=progress, workers=workers,
    )
    record = select(result, objective)
    errors: list[str] = []
    for name in _fit_order(record):
        try:
            estimator = estimator_for(name, result, factories).fit(series)
        except (InsufficientHistory, ValueError, ArithmeticError) as error:
            errors.append(f"fitting {name} on all history failed ({type(error).__name__}: {error})")
            continue
        if name != record.selected:
            record = replace(
                record, selected=name, reason=f"{record.reason}; but {'; '.join(errors)}, so {name} is used",
            )
        return Trained(estimator=estimator, backtest=result, selection=record)
    raise ForecasterError(f"no candidate could be fitted on all history: {'; '.join(errors)}")


def _fit_order(record: SelectionRecord) -> list[str]:
    """The selected model, then (if it was not a baseline) the other models that beat the best
    baseline, best first, then the best baseline."""
    order = [record.selected]
    if record.best_baseline is not None and record.selected != record.best_baseline:
        bar = record.scores[record.best_baseline]
        better = sorted(
            (s, n) for n, s in record.scores.items()
            if math.isfinite(s) and s < bar and n != record.selected
        )
        order += [n for _, n in better] + [record.best_baseline]
    return order


def estimator_for(
    name: str, result: BacktestResult, factories: Mapping[str, ModelFactory] | None = None,
) -> Estimator:
    """A fresh, unfitted estimator of the backtested model `name`, for the final fit.

    An ensemble scored from its members' backtest forecasts is rebuilt from exactly those members
    (made by `factories`, default the catalogue), so what is fitted is what the backtest judged;
    `make_estimator("ensemble")` alone would combine the default members instead.
    """
    if factories is None:
        factories = resolve_models([name, *result.runs[name].members])
    members = result.runs[name].members
    if not members:
        return factories[name]()
    from forecaster.estimators.ensemble import QuantileAverage

    return QuantileAverage.of({member: factories[member]() for member in members})


def select_and_fit(
    series: pd.Series,
    *,
    models: Models = "all",
    horizons: Sequence[str | int] = DEFAULT_HORIZONS,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    objective: str = DEFAULT_OBJECTIVE,
    config: BacktestConfig | None = None,
    native_bin_seconds: int | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> tuple[Estimator, SelectionRecord]:
    """Backtest, select and fit on all history, without the registry: (fitted estimator, record)."""
    trained = evaluate_and_fit(
        series, models=models, horizons=horizons, quantiles=quantiles, objective=objective,
        config=config, native_bin_seconds=native_bin_seconds, progress=progress, workers=workers,
    )
    return trained.estimator, trained.selection


def card_fields(trained: Trained, series: pd.Series, *, workload: str, signal: str) -> dict:
    """The model card fields a training run supplies (the registry adds version, sha256, dates)."""
    from forecaster.registry import TrainingWindow

    return {
        "workload": workload,
        "signal": signal,
        "model": trained.estimator.name,
        "quantiles": tuple(trained.backtest.config.quantiles),
        "training_window": TrainingWindow.of(series),
        "backtest": trained.backtest.to_dict(),
        "selection": trained.selection.to_dict(),
        "bin_seconds": int(trained.estimator.step_seconds_),
    }


def train(
    series: pd.Series,
    *,
    workload: str,
    signal: str,
    registry: "Registry",
    models: Models = "all",
    horizons: Sequence[str | int] = DEFAULT_HORIZONS,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    objective: str = DEFAULT_OBJECTIVE,
    config: BacktestConfig | None = None,
    native_bin_seconds: int | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> "ModelCard":
    """Backtest, select, fit on all history and save to `registry`; returns the stored card."""
    from forecaster.registry import validate_signal, validate_workload

    # Names first: a bad workload should fail in a millisecond, not after a minute of backtesting.
    validate_workload(workload)
    validate_signal(signal)
    if series.name is not None and series.name != signal:
        raise ForecasterError(f"series is {series.name!r} but the signal to train is {signal!r}")
    trained = evaluate_and_fit(
        series, models=models, horizons=horizons, quantiles=quantiles, objective=objective,
        config=config, native_bin_seconds=native_bin_seconds, progress=progress, workers=workers,
    )
    return registry.save(trained.estimator, card_fields(trained, series, workload=workload, signal=signal))

