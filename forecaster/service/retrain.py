"""One retraining job: backtest the candidates and the serving model on the same recent window,
fit the winner on all history, and say whether it may replace the serving model.

`run_job` is a module-level function of picklable arguments so it runs in a ProcessPoolExecutor
worker: statsmodels and GBM fits take seconds to minutes, and the service's event loop must keep
answering the HPA meanwhile. The rule "a new model replaces the serving one only if its backtest is
not worse" is decided here, on one backtest call, so both models are scored on identical origins.
"""

from __future__ import annotations

import hashlib
import math
import pickle
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from forecaster.contract import quantile_key
from forecaster.series import format_duration
from forecaster.service.config import WorkloadSettings

# Used when no candidate can be scored (too little history): a model the service knowingly serves.
FALLBACK_BASELINES = ("seasonal_naive_daily", "last_value")

Outcome = Literal["accepted", "kept", "baseline", "failed"]


class ServiceModelCard(BaseModel):
    """What the service serves for one signal of one workload, and why."""

    model_config = ConfigDict(frozen=True)

    workload: str
    signal: str
    model: str
    version: str
    params: dict[str, Any]
    is_baseline: bool
    trained_at: datetime
    training_start: datetime
    training_end: datetime
    training_bins: int
    objective: str
    objective_value: float | None
    backtest: dict[str, Any]
    sha256: str
    libraries: dict[str, str]


class RetrainDecision(BaseModel):
    """The record of one retrain: which model won, against what, and whether it now serves."""

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


@dataclass(frozen=True)
class Job:
    workload: WorkloadSettings
    signal: str
    series: pd.Series
    serving_model: str | None
    started_at: datetime


@dataclass(frozen=True)
class JobResult:
    decision: RetrainDecision
    card: ServiceModelCard | None
    artifact: bytes | None  # the pickled estimator when outcome is accepted or baseline


def objective_name(workload: WorkloadSettings) -> tuple[str, int]:
    """The horizon the controller uses (lead time + one interval) and the pinball loss there."""
    seconds = int((workload.lead_time + workload.interval).total_seconds())
    return f"pinball[{quantile_key(workload.quantile)}]@{format_duration(seconds)}", seconds


def _libraries() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("numpy", "pandas", "statsmodels", "scikit-learn", "prophet"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def _score(result: Any, model: str, horizon_label: str, key: str) -> float | None:
    run = result.runs.get(model)
    if run is None or run.status != "ok":
        return None
    value = run.scores[horizon_label].pinball.get(key)
    return None if value is None or not math.isfinite(value) else float(value)


def run_job(job: Job) -> JobResult:
    """Backtest, choose, fit. Never raises: a failure becomes a `failed` decision."""
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
        try:
            backtest_result = backtest(job.series, models, config)
            label = backtest_result.horizons[0].label
            for name in models:
                value = _score(backtest_result, name, label, key)
                if value is not None:
                    scores[name] = value
        except Exception as error:  # noqa: BLE001 - too short for any backtest: fall back below
            reason_backtest = f"backtest failed: {error}"
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
                ), None, None)
            outcome: Outcome = "accepted"
            reason = (f"{best} scored {best_score:.6g}" + (
                f" <= serving {job.serving_model} {serving_score:.6g}" if serving_score is not None
                else (" (no serving model)" if job.serving_model is None
                      else f" (serving {job.serving_model} could not be scored)")))
            chosen = best
        else:
            if job.serving_model is not None:
                return JobResult(decision("kept", f"{reason_backtest}; serving model kept"), None, None)
            chosen, outcome, best_score = None, "baseline", None
            reason = f"{reason_backtest}; serving a baseline knowingly"
        tried = [chosen] if chosen else list(FALLBACK_BASELINES)
        estimator, last_error = None, None
        for name in tried:
            try:
                estimator = make_estimator(name).fit(job.series)
                chosen = name
                break
            except Exception as error:  # noqa: BLE001 - try the next fallback
                last_error = error
        if estimator is None:
            return JobResult(decision("failed", f"fitting {tried} failed: {last_error}",
                                      candidate=tried[0]), None, None)
        artifact = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
        digest = hashlib.sha256(artifact).hexdigest()
        index = job.series.index
        card = ServiceModelCard(
            workload=workload.name, signal=job.signal, model=chosen,
            version=f"{job.started_at.strftime('%Y%m%dT%H%M%SZ')}-{digest[:8]}",
            params=_jsonable(estimator.get_params()), is_baseline=estimator.is_baseline,
            trained_at=job.started_at, training_start=index[0].to_pydatetime(),
            training_end=index[-1].to_pydatetime(), training_bins=len(index),
            objective=objective, objective_value=best_score,
            backtest={"scores": scores, "window_days": config.eval_days,
                      "origins": len(backtest_result.origins) if backtest_result else 0},
            sha256=digest, libraries=_libraries(),
        )
        return JobResult(decision(outcome, reason, candidate=chosen, candidate_score=best_score,
                                  serving_score=serving_score), card, artifact)
    except Exception as error:  # noqa: BLE001 - a worker must report, never crash the service
        return JobResult(decision("failed", f"{type(error).__name__}: {error}"), None, None)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        out[k] = v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else repr(v)
    return out


def load_artifact(artifact: bytes, card: ServiceModelCard) -> Any:
    """Unpickle an estimator after checking it is the one the card describes."""
    digest = hashlib.sha256(artifact).hexdigest()
    if digest != card.sha256:
        from forecaster.errors import ArtifactCorrupt

        raise ArtifactCorrupt(f"{card.workload}/{card.signal} {card.version}: sha256 {digest} "
                              f"does not match the card's {card.sha256}")
    return pickle.loads(artifact)  # noqa: S301 - produced by our own worker in this process tree


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
