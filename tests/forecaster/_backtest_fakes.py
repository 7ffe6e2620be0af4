"""Tiny estimators for the backtest, selection, training and CLI tests: exact, instant, and each
with one behaviour to observe (a perfect oracle, a flat forecast, a too-short history, a crash)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecaster.errors import InsufficientHistory
from forecaster.estimators.base import Estimator

STEP = 600
BINS_PER_DAY = 86_400 // STEP
START = "2025-03-03T00:00:00Z"


def daily_series(days: float, *, noise: float = 3.0, seed: int = 0, gaps: int = 0) -> pd.Series:
    """A daily cycle around 100/s at 10-minute bins, with `gaps` missing bins spread over it."""
    index = pd.date_range(START, periods=int(days * BINS_PER_DAY), freq=f"{STEP}s", tz="UTC")
    t = np.arange(index.size) * STEP
    rng = np.random.default_rng(seed)
    y = 100 + 50 * np.sin(2 * np.pi * t / 86_400) + rng.normal(0, noise, index.size)
    if gaps:
        y[np.linspace(10, index.size - 10, gaps).astype(int)] = np.nan
    return pd.Series(y, index=index, name="requests")


def _offsets(quantiles: list[float], spread: float) -> np.ndarray:
    # Symmetric offsets growing with the distance from the median: q0.05 -> -0.9 spread, q0.95 -> +0.9.
    return np.array([(q - 0.5) * 2 * spread for q in quantiles])


class Oracle(Estimator):
    """Knows the whole series: forecasts it exactly (NaN targets as 0, they are masked anyway)."""

    name = "oracle"

    def __init__(self, truth: pd.Series, spread: float = 0.0):
        self.truth = truth
        self.spread = spread

    def _fit(self, series: pd.Series) -> None:
        pass

    def _after(self, end: pd.Timestamp, horizon: int, quantiles: list[float]):
        start = self.truth.index.get_loc(end) + 1
        point = np.nan_to_num(self.truth.to_numpy()[start : start + horizon], nan=0.0)
        point = np.pad(point, (0, horizon - point.size))
        return point, point[:, None] + _offsets(quantiles, self.spread)

    def _predict(self, horizon, quantiles):
        return self._after(self.last_timestamp_, horizon, quantiles)

    def _predict_from(self, history, horizon, quantiles):
        return self._after(history.index[-1], horizon, quantiles)


class Flat(Estimator):
    """The mean of the last `window` observed values, held flat, +- a fixed spread."""

    name = "flat"

    def __init__(self, window: int = 1, spread: float = 10.0):
        self.window = window
        self.spread = spread

    def _fit(self, series: pd.Series) -> None:
        self.values_ = series.to_numpy()

    def _from(self, values: np.ndarray, horizon: int, quantiles: list[float]):
        observed = values[np.isfinite(values)]
        level = float(np.mean(observed[-self.window :]))
        point = np.full(horizon, level)
        return point, point[:, None] + _offsets(quantiles, self.spread)

    def _predict(self, horizon, quantiles):
        return self._from(self.values_, horizon, quantiles)

    def _predict_from(self, history, horizon, quantiles):
        return self._from(history.to_numpy(), horizon, quantiles)


class FlatBaseline(Flat):
    name = "flat_baseline"
    is_baseline = True


class NeedsDays(Flat):
    """Refuses histories shorter than `days`, as a weekly-seasonal model does."""

    name = "needs_days"

    def __init__(self, days: float = 30.0):
        super().__init__()
        self.days = days

    def _fit(self, series: pd.Series) -> None:
        if len(series) * self.step_seconds_ < self.days * 86_400:
            raise InsufficientHistory(f"needs_days needs {self.days} days of history")
        super()._fit(series)


class Broken(Flat):
    """Crashes in fit, as a model with a bug would."""

    name = "broken"

    def _fit(self, series: pd.Series) -> None:
        raise RuntimeError("singular matrix")


class Counting:
    """A factory that counts the estimators it makes and the fits and later-origin predicts they do."""

    def __init__(self, make):
        self.make = make
        self.fits = 0
        self.predicts_from = 0

    def __call__(self):
        estimator = self.make()
        counter = self
        original_fit, original_from = estimator._fit, estimator._predict_from

        def fit(series):
            counter.fits += 1
            return original_fit(series)

        def predict_from(history, horizon, quantiles):
            counter.predicts_from += 1
            return original_from(history, horizon, quantiles)

        estimator._fit, estimator._predict_from = fit, predict_from
        return estimator
