"""The quantile average of a few models (Vincentization): one forecast made of several.

Forecast combination is the most dependable accuracy gain the forecasting competitions found: in
M4, 12 of the 17 most accurate methods were combinations (Makridakis, Spiliotis and Assimakopoulos,
"The M4 Competition: Results, findings, conclusion and way forward", IJF 2018). We average
*quantiles*, level by level and lead by lead (Vincentization, after Vincent 1912 and Ratcliff 1979;
Lichtendahl, Grushka-Cockayne and Winkler, "Is it better to average probabilities or quantiles?",
Management Science 2013): the combined q-quantile is the mean of the members' q-quantiles, and the
`mean` column is the mean of the members' means. Averaging quantiles keeps the members' typical
spread, where averaging their distributions would widen it by their disagreement; and an average
of columns that are each in order is in order, so the quantiles cannot cross (the base class sorts
them anyway).

Members are catalogue names. Selection builds the ensemble from the best `k` (DEFAULT_K, 2)
non-baseline models of the backtest, scoring it from the forecasts those models already made at
the same origins, so it costs no fit there (forecaster.backtest); the final fit fits each member
on all history (forecaster.training.estimator_for). Named directly (a service workload with
`model: ensemble`, or `make_estimator("ensemble")`), without members, it combines DEFAULT_MEMBERS.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from forecaster.contract import quantile_key
from forecaster.errors import InsufficientHistory
from forecaster.estimators.base import Estimator

# Three model families whose errors differ: exponential smoothing, ARIMA with Fourier seasons and
# boosted trees on lags. Used only when the ensemble is fitted without a backtest choosing members.
DEFAULT_MEMBERS: tuple[str, ...] = ("holt_winters", "sarimax_fourier", "gbm")
# The best two, not three: over the backtests of m-small, NASA July, NYC taxi, Twitter AAPL and the
# 14-day AMZN speed trace, at 5 and 10 refits, the top-2 average scored a lower pinball@0.9 (the
# selection objective) than the top-3 in 9 of 10, and the exception was a 0.3% difference; the third
# model was usually one of clearly lower quality (prophet on m-small and taxi). 2026-11-21.
DEFAULT_K = 2


def quantile_average(forecasts: Sequence[np.ndarray]) -> np.ndarray:
    """The element-wise mean of equally shaped forecast arrays (mean and quantile columns alike).

    With each array's quantile columns in increasing order, the result's are too: a sum of
    non-decreasing sequences is non-decreasing.
    """
    if len(forecasts) == 0:
        raise ValueError("quantile_average needs at least one forecast")
    shapes = {np.shape(f) for f in forecasts}
    if len(shapes) != 1:
        raise ValueError(f"forecasts to average must share one shape, got {sorted(shapes)}")
    return np.mean(np.stack([np.asarray(f, dtype="float64") for f in forecasts]), axis=0)


def _check_members(members: Sequence[str], member_params: Mapping[str, Mapping]) -> tuple[str, ...]:
    if isinstance(members, str):
        raise TypeError(f"ensemble members must be a list of model names, got the string {members!r}")
    names = tuple(members)
    if len(names) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {list(names)}")
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"ensemble member names must be non-empty strings, got {name!r}")
        if name == QuantileAverage.name:
            raise ValueError("an ensemble cannot be a member of itself")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"ensemble members repeat: {repeated} in {list(names)}")
    stray = sorted(set(member_params) - set(names))
    if stray:
        raise ValueError(f"member_params names {stray}, which are not members {list(names)}")
    return names


class QuantileAverage(Estimator):
    """The per-lead, per-level average of its members' forecasts.

    members: model names (the catalogue's, unless built with `of`); None means "the best `k` of a
        backtest" inside forecaster.backtest, and DEFAULT_MEMBERS when fitted directly.
    k: how many of the backtest's best non-baseline models to combine when members is None.
    member_params: settings per member, passed to make_estimator (e.g. {"gbm": {"max_iter": 50}}).
    """

    name = "ensemble"
    is_baseline = False

    def __init__(
        self,
        members: Sequence[str] | None = None,
        k: int = DEFAULT_K,
        member_params: Mapping[str, Mapping[str, Any]] | None = None,
    ):
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ValueError(f"k (how many models to combine) must be an integer >= 2, got {k!r}")
        params = {str(n): dict(p) for n, p in (member_params or {}).items()}
        self.members = None if members is None else _check_members(members, params)
        if members is None and params:
            raise ValueError("member_params needs members to apply to; got members=None")
        self.k = k
        self.member_params = params
        # Unfitted estimators to copy for each member, when the caller supplies its own factories
        # (the backtest's name -> factory mapping); otherwise members come from the catalogue.
        self._prototypes: dict[str, Estimator] | None = None

    @classmethod
    def of(cls, estimators: Mapping[str, Estimator]) -> "QuantileAverage":
        """An ensemble of these unfitted estimators, each named by its key (as the backtest names it)."""
        ensemble = cls(
            members=list(estimators), k=max(2, len(estimators)),
            member_params={name: est.get_params() for name, est in estimators.items()},
        )
        ensemble._prototypes = dict(estimators)
        return ensemble

    def member_names(self) -> tuple[str, ...]:
        return self.members if self.members is not None else DEFAULT_MEMBERS

    def get_params(self) -> dict[str, Any]:
        return {"members": list(self.member_names()), "k": self.k, "member_params": dict(self.member_params)}

    def _new_member(self, name: str) -> Estimator:
        if self._prototypes is not None:
            return copy.deepcopy(self._prototypes[name])
        from forecaster.estimators import make_estimator

        return make_estimator(name, **self.member_params.get(name, {}))

    def _fit(self, series: pd.Series) -> None:
        fitted: dict[str, Estimator] = {}
        for name in self.member_names():
            try:
                fitted[name] = self._new_member(name).fit(series)
            except InsufficientHistory as error:
                # The ensemble needs every member: one that cannot fit makes the whole refuse, and
                # says which (its message says how much history there is).
                raise InsufficientHistory(f"{self.name}: member {name} cannot fit: {error}") from error
            except (ValueError, ArithmeticError) as error:
                raise ValueError(
                    f"{self.name}: member {name} failed to fit: {type(error).__name__}: {error}"
                ) from error
        self.members_ = fitted

    def _average(self, quantiles: list[float], forecast) -> tuple[np.ndarray, np.ndarray]:
        columns = ["mean", *(quantile_key(q) for q in quantiles)]
        combined = quantile_average([forecast(member)[columns].to_numpy() for member in self.members_.values()])
        return combined[:, 0], combined[:, 1:]

    def _predict(self, horizon: int, quantiles: list[float]) -> tuple[np.ndarray, np.ndarray]:
        return self._average(quantiles, lambda member: member.predict(horizon, quantiles))

    def _predict_from(
        self, history: pd.Series, horizon: int, quantiles: list[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        # Each member brings its own state up to `history` with its fitted parameters.
        return self._average(quantiles, lambda member: member.predict(horizon, quantiles, history=history))
