"""One retraining job: backtest the candidates and the serving model on the same recent window,
fit the winner on all history, and store it in the model registry when it may replace the serving one.

`run_job` is a module-level function of picklable arguments so it runs in a ProcessPoolExecutor
worker: statsmodels and GBM fits take seconds to minutes, and the service's event loop must keep
answering the HPA meanwhile. The rule "a new model replaces the serving one only if its backtest is
not worse" is decided here, on one backtest call, so both models are scored on identical origins.
An accepted model is saved by the worker through `Registry.save` (atomic, checksummed), so the parent
receives only its ModelCard and loads the estimator back through the registry, which verifies the
checksum: what serves is exactly what a restart would load.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from forecaster.contract import quantile_key
from forecaster.registry import CardDraft, ModelCard, Registry, TrainingWindow
from forecaster.series import format_duration
from forecaster.service.config import WorkloadSettings

# Used when no candidate can be scored (too little history): a model the service knowingly serves.
FALLBACK_BASELINES = ("seasonal_naive_daily", "last_value")

# accepted/kept/baseline/failed come from a retrain; restored from loading the registry at start-up.
Outcome = Literal["accepted", "kept", "baseline", "failed", "restored"]


class RetrainDecision(BaseModel):
    """The record of one retrain (or start-up restore): which model won, against what, whether it
    now serves, and the registry version it serves as."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    workload: str
    signal: str
    outcome: Outcome
    candidate: str | None
    candidate_score: float | None
    serving: str | None
    serving_score: float | None
    objective: str
    reason: str
    seconds: float
    version: str | None = None  # the registry version now serving, when this decision changed it


@dataclass(frozen=True)
class Job:
    workload: WorkloadSettings
    signal: str
    series: pd.Series
    serving_model: str | None
    started_at: datetime
    registry_dir: Path
    serving_version: str | None = None


@dataclass(frozen=True)
class JobResult:
    decision: RetrainDecision
    card: ModelCard | None  # the stored card when the outcome is accepted or baseline


def objective_name(workload: WorkloadSettings) -> tuple[str, int]:
    """The horizon the controller uses (lead time + one interval) and the pinball loss there."""
    seconds = int((workload.lead_time + workload.interval).total_seconds())
    return f"pinball[{quantile_key(workload.quantile)}]@{format_duration(seconds)}", seconds


def _score(result: Any, model: str, horizon_label: str, key: str) -> float | None:
    run = result.runs.get(model)
    if run is None or run.status != "ok":
        return None
    value = run.scores[horizon_label].pinball.get(key)
    return None if value is None or not math.isfinite(value) else float(value)


def _backtest_record(result: Any, scores: dict[str, float], window_days: float, problem: str | None) -> dict:
    """The card's `backtest`: the backtest's own summary plus the objective score of each model."""
    record: dict[str, Any] = {"window_days": window_days, "objective_scores": scores}
    if result is not None:
        try:
            record.update(result.to_dict())
        except (IndexError, ValueError) as error:  # no origins: nothing but the scores to keep
            record["summary_error"] = f"{type(error).__name__}: {error}"
    if problem is not None:
        record["problem"] = problem
    return record


def _fixed_clock(moment: datetime) -> datetime:
    return moment


def run_job(job: Job) -> JobResult:
    """Backtest, choose, fit, store. Never raises: a failure becomes a `failed` decision."""
    started = time.perf_counter()
    workload = job.workload
    objective, horizon_seconds = objective_name(workload)
    key = quantile_key(workload.quantile)

    def decision(outcome: Outcome, reason: str, **kw: Any) -> RetrainDecision:
        fields = dict(candidate=None, candidate_score=None, serving=job.serving_model, serving_score=None)
        fields.update(kw)
        return RetrainDecision(
            at=job.started_at, workload=workload.name, signal=job.signal, outcome=outcome,
            objective=objective, reason=reason, seconds=time.perf_counter() - started, **fields,
        )

    try:
        from forecaster.backtest import BacktestConfig, backtest
        from forecaster.estimators import BASELINES, make_estimator
        from forecaster.training import estimator_for

        candidates = list(workload.candidates) if workload.model == "auto" else [workload.model]
        if workload.model == "auto":
            candidates += [b for b in BASELINES if b not in candidates]
        models = list(dict.fromkeys([*candidates, *([job.serving_model] if job.serving_model else [])]))
        config = BacktestConfig(
            horizons=(horizon_seconds,),
            eval_days=workload.backtest_window.total_seconds() / 86400,
            origin_every=max(workload.bin_seconds, int(workload.interval.total_seconds())) * 3,
            refits=2,
            quantiles=sorted({0.05, 0.95, workload.quantile}),
            controller_quantile=workload.quantile,
        )
        backtest_result: Any = None
        scores: dict[str, float] = {}
        problem: str | None = None
        try:
            backtest_result = backtest(job.series, models, config)
            label = backtest_result.horizons[0].label
            for name in models:
                value = _score(backtest_result, name, label, key)
                if value is not None:
                    scores[name] = value
        except Exception as error:  # noqa: BLE001 - too short for any backtest: fall back below
            problem = reason_backtest = f"backtest failed: {error}"
        else:
            reason_backtest = "no model could be scored"
        ranked = sorted((scores[m], m) for m in candidates if m in scores)
        serving_score = scores.get(job.serving_model) if job.serving_model else None
        if ranked:
            best_score, best = ranked[0]
            if job.serving_model and serving_score is not None and best_score > serving_score:
                return JobResult(decision(
                    "kept", f"{best} scored {best_score:.6g} > serving {job.serving_model} "
                    f"{serving_score:.6g} on the same window; serving model kept",
                    candidate=best, candidate_score=best_score, serving_score=serving_score,
                ), None)
            outcome: Outcome = "accepted"
            reason = (f"{best} scored {best_score:.6g}" + (
                f" <= serving {job.serving_model} {serving_score:.6g}" if serving_score is not None
                else (" (no serving model)" if job.serving_model is None
                      else f" (serving {job.serving_model} could not be scored)")))
            chosen: str | None = best
        else:
            if job.serving_model is not None:
                return JobResult(decision("kept", f"{reason_backtest}; serving model kept"), None)
            chosen, outcome, best_score = None, "baseline", None
            reason = f"{reason_backtest}; serving a baseline knowingly"
        tried = [chosen] if chosen else list(FALLBACK_BASELINES)
        estimator, last_error = None, None
        for name in tried:
            try:
                if backtest_result is not None and name in backtest_result.runs:
                    # An ensemble is rebuilt from the members the backtest scored, not the defaults.
                    estimator = estimator_for(name, backtest_result).fit(job.series)
                else:
                    estimator = make_estimator(name).fit(job.series)
                chosen = name
                break
            except Exception as error:  # noqa: BLE001 - try the next fallback
                last_error = error
        if estimator is None:
            return JobResult(decision("failed", f"fitting {tried} failed: {last_error}",
                                      candidate=tried[0]), None)
        baselines = sorted((scores[m], m) for m in scores if m in BASELINES)
        # The card carries the whole decision: what was compared, on which objective, and what it replaced.
        selection = {
            "objective": objective,
            "selected": chosen,
            "best_baseline": baselines[0][1] if baselines else None,
            "reason": reason,
            "outcome": outcome,
            "is_baseline": bool(estimator.is_baseline),
            "candidate_score": best_score,
            "scores": scores,
            "replaces": job.serving_model,
            "replaces_version": job.serving_version,
            "serving_score": serving_score,
            "rule": "a new model replaces the serving one only if its backtest score is not worse",
        }
        draft = CardDraft(
            workload=workload.name, signal=job.signal,
            quantiles=tuple(sorted(set(workload.served_quantiles))),
            training_window=TrainingWindow.of(job.series),
            backtest=_backtest_record(backtest_result, scores, config.eval_days, problem),
            selection=selection,
        )
        # The version stamp follows the service's clock (the retrain's start), so versions sort in
        # retrain order even under a test's fake clock.
        registry = Registry(job.registry_dir, clock=functools.partial(_fixed_clock, job.started_at))
        card = registry.save(estimator, draft)
        return JobResult(decision(outcome, reason, candidate=chosen, candidate_score=best_score,
                                  serving_score=serving_score, version=card.version), card)
    except Exception as error:  # noqa: BLE001 - a worker must report, never crash the service
        return JobResult(decision("failed", f"{type(error).__name__}: {error}"), None)
