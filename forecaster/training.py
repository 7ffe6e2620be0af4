"""The training pipeline: backtest the candidates, select one, fit it on all history, store it.

`select_and_fit` stops before the registry (the simulator trains on the history before its replay
window with it); `train` adds the save and returns the model card.
"""

from __future__ import annotations

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
    backtest,
)
from forecaster.errors import ForecasterError, InsufficientHistory
from forecaster.estimators.base import Estimator
from forecaster.selection import DEFAULT_OBJECTIVE, SelectionRecord, parse_objective, select

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
    return {name: (lambda name=name: make_estimator(name)) for name in names}


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
) -> Trained:
    """Backtest `models` on `series`, select on `objective`, fit the selected one on all of `series`.

    `config` overrides `horizons` and `quantiles` when given. If the selected model cannot be fitted
    on the whole series, the best baseline is fitted instead and the record says why.
    """
    factories = resolve_models(models)
    config = config or make_config(horizons, quantiles, objective)
    result = backtest(series, factories, config, native_bin_seconds=native_bin_seconds, progress=progress)
    record = select(result, objective)
    try:
        estimator = factories[record.selected]().fit(series)
    except (InsufficientHistory, ValueError, ArithmeticError) as error:
        fallback = record.best_baseline
        if fallback is None or fallback == record.selected:
            raise
        estimator = factories[fallback]().fit(series)
        record = replace(
            record, selected=fallback,
            reason=f"{record.reason}; but fitting {record.selected} on all history failed "
            f"({type(error).__name__}: {error}), so the best baseline {fallback} is used",
        )
    return Trained(estimator=estimator, backtest=result, selection=record)


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
) -> tuple[Estimator, SelectionRecord]:
    """Backtest, select and fit on all history, without the registry: (fitted estimator, record)."""
    trained = evaluate_and_fit(
        series, models=models, horizons=horizons, quantiles=quantiles, objective=objective,
        config=config, native_bin_seconds=native_bin_seconds, progress=progress,
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
        config=config, native_bin_seconds=native_bin_seconds, progress=progress,
    )
    return registry.save(trained.estimator, card_fields(trained, series, workload=workload, signal=signal))

