"""The objective that ranks models: its grammar, and its value from a backtest's scores table.

Both the backtest (which ranks an ensemble's members) and selection (which picks the model) rank on
it, so it lives here, importing neither of them: the scores table it reads is plain mappings,
{horizon label: {model: {"mase": .., "smape": .., "pinball": {quantile key or "mean": ..}}}}.

Objectives, all lower-is-better and averaged over the horizons:
  mase, smape            the point forecast's error
  pinball                the pinball loss averaged over every backtested quantile
  pinball@Q              the pinball loss at quantile Q (for example pinball@0.9)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from forecaster.contract import quantile_key

# The controller scales on its 0.9 quantile, and the pinball loss is the proper score for a quantile.
DEFAULT_OBJECTIVE = "pinball@0.9"
_PINBALL_AT = re.compile(r"^pinball@(0?\.\d+)$")

# {horizon label: {model: score}}, as BacktestResult.scores_table() returns it.
ScoresTable = Mapping[str, Mapping[str, Mapping]]


def parse_objective(objective: str) -> tuple[str, str | None]:
    """'mase' -> ('mase', None); 'pinball@0.9' -> ('pinball', '0.9'); 'pinball' -> ('pinball', 'mean')."""
    text = objective.strip().lower()
    if text in ("mase", "smape"):
        return text, None
    if text == "pinball":
        return "pinball", "mean"
    match = _PINBALL_AT.match(text)
    if match:
        return "pinball", quantile_key(float(match.group(1)))
    raise ValueError(f"objective {objective!r} is not one of mase, smape, pinball, pinball@Q (e.g. pinball@0.9)")


def _value(score: Mapping, metric: str, key: str | None, model: str, horizon: str) -> float:
    if key is None:
        return float(score[metric])
    losses = score[metric]
    if key not in losses:
        raise ValueError(
            f"objective needs pinball at quantile {key}, but {model} at {horizon} was scored at "
            f"{sorted(k for k in losses if k != 'mean')}"
        )
    return float(losses[key])


def objective_scores(table: ScoresTable, objective: str) -> dict[str, float]:
    """{model: objective averaged over the horizons} from a scores table ({horizon: {model: score}}).

    A model missing at any horizon, or with a non-finite value there, gets NaN (never selected).
    """
    metric, key = parse_objective(objective)
    models = list(dict.fromkeys(m for row in table.values() for m in row))
    out: dict[str, float] = {}
    for model in models:
        values = []
        for horizon, row in table.items():
            values.append(_value(row[model], metric, key, model, horizon) if model in row else math.nan)
        finite = all(math.isfinite(v) for v in values) and values
        out[model] = sum(values) / len(values) if finite else math.nan
    return out
