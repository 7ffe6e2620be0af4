"""The one interface every forecasting model implements (the statsforecast / scikit-learn shape).

Settings go in `__init__`; `fit(series)` learns from a prepared series (see forecaster.series: rate
per second, regular UTC index, NaN for gaps) and sets attributes with a trailing `_`;
`predict(horizon, quantiles)` returns a DataFrame indexed by the next `horizon` bins with a `mean`
column and one column per quantile named by `quantile_key` ("0.5", "0.9", "0.95").
"""

from __future__ import annotations

import copy
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from forecaster.contract import DEFAULT_QUANTILES, quantile_key
from forecaster.errors import InsufficientHistory, NotFitted
from forecaster.series import step_seconds


class Estimator(ABC):
    """Base of every estimator. Subclasses implement `_fit` and `_predict`."""

    name: ClassVar[str]
    is_baseline: ClassVar[bool] = False

    def get_params(self) -> dict[str, Any]:
        """The settings given to __init__ (public attributes without a trailing underscore)."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def fit(self, series: pd.Series) -> "Estimator":
        if not isinstance(series.index, pd.DatetimeIndex) or series.index.tz is None:
            raise TypeError("fit() needs a series on a tz-aware DatetimeIndex (see forecaster.series)")
        if series.notna().sum() < 2:
            raise InsufficientHistory(f"{self.name}: fewer than two observed bins")
        started = time.perf_counter()
        self.step_seconds_ = step_seconds(series)
        self.last_timestamp_ = series.index[-1]
        self.train_index_ = series.index
        self._fit(series.astype("float64"))
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def predict(
        self,
        horizon: int,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        history: pd.Series | None = None,
    ) -> pd.DataFrame:
        """Forecast the `horizon` bins after the training data, or after `history` when given.

        `history` is the observed series up to a later origin (it extends the training data): the
        fitted parameters are kept and only the state is brought up to date, so a service or a replay
        can forecast every few minutes and refit only every few hours. Estimators override
        `_predict_from`; the default refits a copy, which is correct but slow.
        """
        if not hasattr(self, "last_timestamp_"):
            raise NotFitted(f"{self.name}: predict() before fit()")
        if horizon < 1:
            raise ValueError(f"horizon must be at least one bin, got {horizon}")
        qs = sorted({float(q) for q in quantiles})
        for q in qs:
            quantile_key(q)  # validates the range
        if history is None:
            origin = self.last_timestamp_
            mean, quant = self._predict(horizon, qs)
        else:
            if step_seconds(history) != self.step_seconds_:
                raise ValueError(
                    f"history bin {step_seconds(history)}s differs from the fitted {self.step_seconds_}s"
                )
            origin = history.index[-1]
            mean, quant = self._predict_from(history.astype("float64"), horizon, qs)
        index = pd.date_range(
            origin + pd.Timedelta(seconds=self.step_seconds_),
            periods=horizon, freq=f"{self.step_seconds_}s",
        )
        frame = pd.DataFrame({"mean": np.asarray(mean, dtype="float64")}, index=index)
        # Rates cannot be negative, and quantiles must not cross: clip, then sort along the level.
        q_matrix = np.clip(np.asarray(quant, dtype="float64").reshape(horizon, len(qs)), 0.0, None)
        q_matrix = np.sort(q_matrix, axis=1)
        frame["mean"] = frame["mean"].clip(lower=0.0)
        for i, q in enumerate(qs):
            frame[quantile_key(q)] = q_matrix[:, i]
        return frame

    @abstractmethod
    def _fit(self, series: pd.Series) -> None: ...

    @abstractmethod
    def _predict(self, horizon: int, quantiles: list[float]) -> tuple[np.ndarray, np.ndarray]:
        """Return (mean of shape (horizon,), quantiles of shape (horizon, len(quantiles)))."""

    def _predict_from(
        self, history: pd.Series, horizon: int, quantiles: list[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Forecast after `history` with the fitted parameters. Default: refit a copy (slow, exact)."""
        clone = copy.deepcopy(self)
        clone.fit(history)
        return clone._predict(horizon, quantiles)
