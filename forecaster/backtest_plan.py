"""Where a backtest forecasts from, where it refits, and how the forecasts made there are scored.

Both are fixed by the series length and the config alone, so every model (and the ensemble, which
is scored from its members' forecasts) is judged on the same origins against the same MASE scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster import metrics
from forecaster.backtest_config import INTERVAL, BacktestConfig
from forecaster.backtest_results import Horizon, HorizonScore, make_horizons
from forecaster.contract import quantile_key
from forecaster.errors import InsufficientHistory
from forecaster.series import format_duration, step_seconds


@dataclass(frozen=True)
class Plan:
    origins: np.ndarray  # positions of the last bin each forecast may see
    groups: list[np.ndarray]  # origins sharing one fit; the fit is at the group's first origin
    horizons: tuple[Horizon, ...]
    scale: metrics.Scale

    @property
    def max_bins(self) -> int:
        """Bins each forecast covers: up to the longest horizon."""
        return max(h.bins for h in self.horizons)


def plan_origins(series: pd.Series, config: BacktestConfig) -> Plan:
    """Where to forecast from and where to refit, fixed by the series length and the config alone."""
    step = step_seconds(series)
    n = len(series)
    horizons = make_horizons(config.horizons, step)
    max_bins = max(h.bins for h in horizons)
    every = max(1, round(config.origin_every / step))
    # The evaluation window is the last eval_days, but never more than half the series: the models
    # need at least as much history before the first origin as the span they are judged on.
    window = min(int(config.eval_days * metrics.DAY_SECONDS / step), n // 2)
    last = n - 1 - max_bins
    first = n - window
    if last < first or first < 2:
        raise InsufficientHistory(
            f"series of {n} bins at {step} s is too short to backtest a {format_duration(max_bins * step)} "
            f"horizon (needs at least {2 * (max_bins + 2)} bins)"
        )
    # Anchored at the end so the most recent data is always judged, then spaced back from there.
    origins = np.arange(last, first - 1, -every)[::-1]
    groups = [g for g in np.array_split(origins, min(config.refits, origins.size)) if g.size]
    scale = metrics.naive_scale(series.to_numpy(dtype="float64")[: origins[0] + 1], step)
    return Plan(origins=origins, groups=groups, horizons=horizons, scale=scale)


def _score(actual: np.ndarray, forecast: np.ndarray, keys: list[str], config: BacktestConfig,
           scale: metrics.Scale) -> HorizonScore:
    mean = forecast[:, 0]
    column = {k: forecast[:, 1 + i] for i, k in enumerate(keys)}
    losses = {k: metrics.pinball(actual, column[k], q) for k, q in zip(keys, config.quantiles)}
    losses["mean"] = float(np.mean(list(losses.values())))
    return HorizonScore(
        mase=metrics.mase(actual, mean, scale),
        smape=metrics.smape(actual, mean),
        pinball=losses,
        coverage90=metrics.coverage(
            actual, column[quantile_key(INTERVAL[0])], column[quantile_key(INTERVAL[1])]
        ),
        under_rate=metrics.under_rate(actual, column[quantile_key(config.controller_quantile)]),
        n_points=metrics.n_observed(actual),
    )


def score_forecasts(values: np.ndarray, forecasts: np.ndarray, plan: Plan,
                    config: BacktestConfig) -> dict[str, HorizonScore]:
    """Scores per horizon label of `forecasts` (origin, lead bin, [mean, *quantiles]) against `values`."""
    keys = [quantile_key(q) for q in config.quantiles]
    scores = {}
    for horizon in plan.horizons:
        actual = values[plan.origins + horizon.bins]
        scores[horizon.label] = _score(actual, forecasts[:, horizon.bins - 1, :], keys, config, plan.scale)
    return scores
