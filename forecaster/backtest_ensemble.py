"""The ensemble in a backtest: scored from its members' forecasts at the same origins, no fit of its own.

Without fixed members it takes the best `k` non-baseline models on the config's objective (the one
selection uses). Those members are chosen on the very scores the ensemble is then judged against,
the same optimism the best single model enjoys when selection picks it on these scores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from forecaster.backtest_config import BacktestConfig
from forecaster.backtest_plan import Plan, score_forecasts
from forecaster.backtest_results import Horizon, ModelRun, scores_table
from forecaster.estimators.ensemble import QuantileAverage, quantile_average
from forecaster.objective import objective_scores


def rank_members(runs: Mapping[str, ModelRun], horizons: Sequence[Horizon], objective: str) -> list[str]:
    """Scored non-baseline single models, best first on `objective` (ties: the earlier name)."""
    eligible = {
        name: run for name, run in runs.items()
        if run.status == "ok" and not run.is_baseline and not run.members and run.forecasts is not None
    }
    scores = objective_scores(scores_table(eligible, horizons), objective)
    names = [n for n in eligible if math.isfinite(scores.get(n, math.nan))]
    return sorted(names, key=lambda n: (scores[n], names.index(n)))


def combine_runs(
    name: str, members: Sequence[str], runs: Mapping[str, ModelRun], series: pd.Series, plan: Plan,
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
    member_forecasts = []
    for m in members:
        member_forecast = runs[m].forecasts
        if member_forecast is None:  # every scored run keeps its forecasts (backtest_run.assemble)
            raise ValueError(f"ensemble {name!r}: member {m!r} is scored but kept no forecasts to average")
        member_forecasts.append(member_forecast)
    forecasts = quantile_average(member_forecasts)
    values = series.to_numpy(dtype="float64")
    return ModelRun(
        name, False, "ok", None,
        fit_seconds=sum(runs[m].fit_seconds for m in members),
        predict_seconds=sum(runs[m].predict_seconds for m in members),
        n_fits=0,
        scores=score_forecasts(values, forecasts, plan, config),
        members=tuple(members),
        forecasts=forecasts,
    )


def ensemble_members(probe: QuantileAverage, runs: Mapping[str, ModelRun], plan: Plan,
                     config: BacktestConfig) -> list[str]:
    """The members `probe` names, or else the best `probe.k` models of this backtest."""
    if probe.members is not None:
        return list(probe.members)
    return rank_members(runs, plan.horizons, config.ranking_objective)[: probe.k]
