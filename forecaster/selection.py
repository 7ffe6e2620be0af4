"""Model selection per workload and signal: the best model, but only if it beats the baselines.

A model earns its complexity only by beating the simple rules (last value, seasonal naive) on the
objective the controller cares about; otherwise the best baseline is selected. The default
objective is the pinball loss at the controller's quantile (0.9), averaged over the backtest's
horizons: the controller scales on that quantile, and pinball loss is the proper score for it.
MASE (the point forecast's error) is the alternative.

The objectives (mase, smape, pinball, pinball@Q) and their scoring are forecaster.objective's, which
the backtest shares to rank an ensemble's members.

The ensemble (the quantile average of the best k models, forecaster.estimators.ensemble) is one more
non-baseline candidate: it is selected only when it scores better than every single model and
beats the best baseline, and its members are recorded either way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from forecaster.errors import ForecasterError
from forecaster.objective import DEFAULT_OBJECTIVE, objective_scores

if TYPE_CHECKING:
    from forecaster.backtest_results import BacktestResult


class NoModelScored(ForecasterError):
    """No model could be scored by the backtest, so there is nothing to select."""


@dataclass(frozen=True)
class SelectionRecord:
    objective: str
    selected: str
    best_baseline: str | None
    best_model: str | None  # the best model that is not a baseline
    scores: dict[str, float]  # model -> objective, averaged over the horizons
    reason: str
    # The ensemble candidate's members, best first, when one was scored (selected or not).
    ensemble_members: tuple[str, ...] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _best(scores: Mapping[str, float], names: list[str]) -> str | None:
    # Ties go to the earlier name (catalogue order), so the choice is deterministic.
    candidates = [n for n in names if math.isfinite(scores.get(n, math.nan))]
    return min(candidates, key=lambda n: (scores[n], names.index(n))) if candidates else None


def select_from_scores(
    table: Mapping[str, Mapping[str, Mapping]],
    baselines: set[str] | frozenset[str],
    objective: str = DEFAULT_OBJECTIVE,
    *,
    min_improvement: float = 0.0,
    unscored: Mapping[str, str] | None = None,
    ensembles: Mapping[str, tuple[str, ...]] | None = None,
) -> SelectionRecord:
    """Select from a scores table. `min_improvement` is the fraction by which a model must beat
    the best baseline (0.0: any strict improvement). `unscored` maps skipped models to why.
    `ensembles` maps an ensemble candidate's name to its members, for the record and the reason."""
    if not 0.0 <= min_improvement < 1.0:
        raise ValueError(f"min_improvement must be in [0, 1), got {min_improvement}")
    scores = objective_scores(table, objective)
    names = list(scores)
    baseline = _best(scores, [n for n in names if n in baselines])
    model = _best(scores, [n for n in names if n not in baselines])
    if baseline is None:
        if model is None:
            why = "; ".join(f"{n}: {r}" for n, r in (unscored or {}).items()) or "no model was backtested"
            raise NoModelScored(f"no model could be scored on {objective} ({why})")
        selected, reason = model, f"no baseline could be scored; {model} is the best model on {objective}"
    elif model is None:
        selected, reason = baseline, f"only baselines were scored; {baseline} is the best on {objective}"
    else:
        b, m = scores[baseline], scores[model]
        gain = (b - m) / b if b > 0 else (math.inf if m < b else 0.0)
        if m < b and gain > min_improvement:
            selected = model
            what = f"{model} ({' + '.join(ensembles[model])})" if ensembles and model in ensembles else model
            reason = (
                f"{what} beats the best baseline {baseline} on {objective}: "
                f"{m:.4g} vs {b:.4g} ({gain:.1%} lower)"
            )
        else:
            selected = baseline
            needed = f" by more than {min_improvement:.0%}" if min_improvement else ""
            reason = (
                f"the best model {model} ({m:.4g}) does not beat the best baseline {baseline} "
                f"({b:.4g}) on {objective}{needed}: keeping the baseline"
            )
    members = None
    if ensembles:
        # The selected ensemble's members; otherwise the first scored ensemble's, for the record.
        chosen = selected if selected in ensembles else next(
            (n for n in ensembles if math.isfinite(scores.get(n, math.nan))), None)
        members = tuple(ensembles[chosen]) if chosen is not None else None
    return SelectionRecord(
        objective=objective, selected=selected, best_baseline=baseline, best_model=model,
        scores=scores, reason=reason, ensemble_members=members,
    )


def select(
    result: "BacktestResult", objective: str = DEFAULT_OBJECTIVE, *, min_improvement: float = 0.0
) -> SelectionRecord:
    """Select from a backtest: baselines are the models whose estimator says `is_baseline`."""
    baselines = {name for name, run in result.runs.items() if run.is_baseline}
    unscored = {name: run.reason or run.status for name, run in result.runs.items() if run.status != "ok"}
    ensembles = {name: run.members for name, run in result.runs.items() if run.members and run.status == "ok"}
    return select_from_scores(
        result.scores_table(), baselines, objective, min_improvement=min_improvement, unscored=unscored,
        ensembles=ensembles,
    )
