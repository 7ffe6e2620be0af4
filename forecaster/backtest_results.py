"""What a backtest returns: each model's run and scores per horizon, and their tables and JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecaster import metrics
from forecaster.backtest_config import BacktestConfig
from forecaster.contract import quantile_key


@dataclass(frozen=True)
class Horizon:
    label: str  # as asked: "15m"
    seconds: int  # as asked
    bins: int  # rounded up to whole bins

    def effective_seconds(self, step: int) -> int:
        return self.bins * step


@dataclass(frozen=True)
class HorizonScore:
    mase: float
    smape: float
    pinball: dict[str, float]  # quantile key -> loss, plus "mean" over the quantiles
    coverage90: float
    under_rate: float
    n_points: int


@dataclass(frozen=True)
class ModelRun:
    model: str
    is_baseline: bool
    status: str  # "ok", "skipped" (InsufficientHistory) or "failed" (any other error)
    reason: str | None = None
    fit_seconds: float = 0.0  # mean seconds per fit
    predict_seconds: float = 0.0  # mean seconds per predict call
    n_fits: int = 0
    scores: dict[str, HorizonScore] = field(default_factory=dict)  # horizon label -> scores
    members: tuple[str, ...] = ()  # an ensemble's members; () for a single model
    # (origin, lead bin, [mean, *quantiles in config order]) forecasts; what an ensemble averages.
    forecasts: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class BacktestResult:
    bin_seconds: int
    horizons: tuple[Horizon, ...]
    origins: tuple[pd.Timestamp, ...]
    refit_origins: tuple[pd.Timestamp, ...]
    scale: metrics.Scale
    config: BacktestConfig
    runs: dict[str, ModelRun]

    @property
    def scored(self) -> list[str]:
        return [name for name, run in self.runs.items() if run.status == "ok"]

    def scores_table(self) -> dict[str, dict[str, dict]]:
        """{horizon label: {model: {mase, smape, pinball, coverage90, under_rate, fit_seconds,
        predict_seconds, n_points}}} for the models that were scored."""
        return scores_table(self.runs, self.horizons)

    def forecast_frame(self, model: str, origin: int | pd.Timestamp) -> pd.DataFrame:
        """What `model` forecast at one origin (its position in `origins`, or its timestamp): the
        frame its estimator returned, one row per bin up to the longest horizon."""
        run = self.runs[model]
        if run.forecasts is None:
            raise ValueError(f"{model} has no forecasts to show: it was {run.status} ({run.reason})")
        if isinstance(origin, pd.Timestamp):
            if origin not in self.origins:
                raise KeyError(f"{origin.isoformat()} is not a backtest origin")
            origin = self.origins.index(origin)
        start = self.origins[origin]
        step = pd.Timedelta(seconds=self.bin_seconds)
        index = pd.date_range(start + step, periods=run.forecasts.shape[1], freq=step)
        columns = ["mean", *(quantile_key(q) for q in self.config.quantiles)]
        return pd.DataFrame(run.forecasts[origin], index=index, columns=columns)

    def to_dict(self) -> dict:
        return {
            "bin_seconds": self.bin_seconds,
            "horizons": [
                {"label": h.label, "seconds": h.seconds, "bins": h.bins,
                 "effective_seconds": h.effective_seconds(self.bin_seconds)}
                for h in self.horizons
            ],
            "origins": {
                "count": len(self.origins),
                "first": self.origins[0].isoformat(),
                "last": self.origins[-1].isoformat(),
                "every_seconds": self.config.origin_every,
                "refits": [t.isoformat() for t in self.refit_origins],
            },
            "quantiles": list(self.config.quantiles),
            "controller_quantile": self.config.controller_quantile,
            "mase_scale": self.scale.to_dict(),
            "scores": self.scores_table(),
            "models": {
                name: {
                    "status": run.status,
                    "is_baseline": run.is_baseline,
                    "reason": run.reason,
                    "fit_seconds": run.fit_seconds,
                    "predict_seconds": run.predict_seconds,
                    "n_fits": run.n_fits,
                    **({"members": list(run.members)} if run.members else {}),
                }
                for name, run in self.runs.items()
            },
        }


def scores_table(runs: Mapping[str, ModelRun], horizons: Sequence[Horizon]) -> dict[str, dict[str, dict]]:
    """The scored runs' scores by horizon, then model (runs that were not scored are left out)."""
    table: dict[str, dict[str, dict]] = {}
    for horizon in horizons:
        row = {}
        for name, run in runs.items():
            if run.status != "ok":
                continue
            score = run.scores[horizon.label]
            row[name] = {
                "mase": score.mase,
                "smape": score.smape,
                "pinball": dict(score.pinball),
                "coverage90": score.coverage90,
                "under_rate": score.under_rate,
                "fit_seconds": run.fit_seconds,
                "predict_seconds": run.predict_seconds,
                "n_points": score.n_points,
            }
        table[horizon.label] = row
    return table


def horizon_label(seconds: int) -> str:
    """'15m', '60m', '120m' (minutes, as the controller's lead times are written), else '90s'."""
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def make_horizons(seconds: Sequence[int], step: int) -> tuple[Horizon, ...]:
    return tuple(Horizon(horizon_label(s), int(s), max(1, math.ceil(s / step))) for s in seconds)
