"""One model's backtest in this process: fit at each refit origin, forecast from every origin.

The unit of work is one refit group (the fit at its first origin and the forecasts from each origin
in it), so the process pool (forecaster.backtest_pool) can run the groups of one model in parallel
and assemble them here exactly as a run in one process would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.backtest_config import BacktestConfig
from forecaster.backtest_plan import Plan, score_forecasts
from forecaster.backtest_results import ModelRun
from forecaster.contract import quantile_key
from forecaster.errors import InsufficientHistory
from forecaster.estimators.base import Estimator

# (model, refits done, refits planned): called after every fit so a progress bar can move.
Progress = Callable[[str, int, int], None]
ModelFactory = Callable[[], Estimator]


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


def report_done(progress: Progress | None, name: str, total: int) -> None:
    """A model that stops early still reports all its refits done, so a progress bar completes."""
    if progress is not None:
        progress(name, total, total)


@dataclass(frozen=True)
class GroupRun:
    """One refit group of one model: the fit at its first origin and the forecasts from each origin."""

    is_baseline: bool
    status: str = "ok"  # or "skipped" / "failed", with the reason
    reason: str | None = None
    rows: np.ndarray | None = None  # (origins in the group, lead bins, [mean, *quantiles])
    fit_seconds: float = 0.0
    predict_seconds: float = 0.0


def run_group(
    name: str, factory: ModelFactory, series: pd.Series, group: np.ndarray, max_bins: int, config: BacktestConfig,
) -> GroupRun:
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
        return GroupRun(is_baseline, "skipped", str(error))
    except Exception as error:  # noqa: BLE001 - recorded, shown on the leaderboard, never swallowed silently
        return GroupRun(is_baseline, "failed", f"{type(error).__name__}: {error}")
    return GroupRun(is_baseline, rows=rows, fit_seconds=fit_seconds, predict_seconds=predict_seconds)


def assemble(name: str, parts: Sequence[GroupRun], series: pd.Series, plan: Plan, config: BacktestConfig) -> ModelRun:
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
        scores=score_forecasts(series.to_numpy(dtype="float64"), forecasts, plan, config),
        forecasts=forecasts,
    )


def run_model(
    name: str, factory: ModelFactory, series: pd.Series, plan: Plan, config: BacktestConfig,
    progress: Progress | None,
) -> ModelRun:
    parts = []
    for done, group in enumerate(plan.groups, start=1):
        parts.append(run_group(name, factory, series, group, plan.max_bins, config))
        if parts[-1].status != "ok":
            report_done(progress, name, len(plan.groups))  # a model that stops early still completes its bar
            break
        if progress is not None:
            progress(name, done, len(plan.groups))
    return assemble(name, parts, series, plan, config)
