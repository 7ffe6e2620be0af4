"""The forecaster as a replay's forecasting engine (forecaster.contract.replay's protocols).

`EstimatorForecasting(model)` fits the named estimator, or with `auto` selects among AUTO_MODELS by
the forecaster's own rolling-origin backtest (select_and_fit) on the data up to each refit, exactly
as a retrain of the service would. The simulator drives it without knowing any of this; the
composition root (`prescaler/`) hands it in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from forecaster.contract import Forecast, ForecastPoint, quantile_key
from forecaster.errors import InsufficientHistory
from forecaster.series import resample_rate

# What `auto` chooses among in a replay, by the forecaster's own backtest (select_and_fit) at every
# refit on the data up to then: the weekly baseline becomes eligible once 8 days are observed.
# Holt-Winters is the one model that earns its place at a replay's pace (under a second a fit, ~8 ms
# a forecast from new history): on the replay bench's 3-day windows it took NYC taxi from 99.81% SLO
# at 1.13x oracle to 100% at 1.10x (the baselines could only pick last value after the blizzard
# week, so the morning rise came unforeseen) and NASA from 96.2% at 1.50x to 97.5% at 1.43x, for
# -0.17 points on WorldCup. SARIMAX, MSTL, Prophet and gbm cost seconds to a minute a fit each,
# which a week replayed with daily refits cannot afford in the demo's 3 minutes; name one with
# --model to replay it.
AUTO_MODELS = ("last_value", "seasonal_naive_daily", "seasonal_naive_weekly", "holt_winters")
# A named model that cannot fit yet (too little history) falls back to these, in order.
FALLBACKS = ("seasonal_naive_daily", "last_value")


class FittedEstimator:
    """A fitted Estimator as a FittedForecaster: its predict frame as a contract Forecast."""

    def __init__(self, estimator) -> None:
        self.estimator = estimator
        self.name: str = estimator.name

    def forecast(self, history: pd.Series, *, steps: int, quantiles: Sequence[float], workload: str,
                 generated_at: datetime) -> Forecast:
        frame = self.estimator.predict(steps, quantiles, history=history)
        keys = [quantile_key(q) for q in quantiles]
        columns = [frame[k].to_numpy(dtype="float64") for k in keys]
        means = frame["mean"].to_numpy(dtype="float64")
        points = [
            ForecastPoint.model_construct(
                timestamp=stamp.to_pydatetime().astimezone(timezone.utc),
                mean=float(np.nan_to_num(means[i])),
                quantiles={k: float(np.nan_to_num(col[i])) for k, col in zip(keys, columns)},
            )
            for i, stamp in enumerate(frame.index)
        ]
        # model_construct: the estimator already guarantees order and non-negativity (base.predict),
        # and validating ~4,000 forecasts a replay would dominate its run time.
        return Forecast.model_construct(
            workload=workload, signal=history.name, model=self.name, model_version=None,
            generated_at=generated_at.astimezone(timezone.utc), step_seconds=_step(frame.index), points=points,
        )


def _step(index: pd.DatetimeIndex) -> int:
    if len(index) > 1:
        return int((index[1] - index[0]).total_seconds())
    return int(pd.Timedelta(index.freq).total_seconds())


class EstimatorForecasting:
    """ReplayForecasting with the forecaster's estimators; `auto` selects by backtest at each refit."""

    def __init__(self, model: str = "auto", *, auto_models: Sequence[str] = AUTO_MODELS) -> None:
        self.model = model
        self.auto_models = tuple(auto_models)
        self.chosen: dict[str, list[str]] = {}  # signal -> the model fitted at each refit

    def bin_rates(self, per_minute_rates: pd.Series, bin_seconds: int) -> pd.Series:
        return resample_rate(per_minute_rates, bin_seconds)

    def fit(self, signal: str, history: pd.Series) -> FittedEstimator:
        estimator = self._fit_estimator(signal, history)
        self.chosen.setdefault(signal, []).append(estimator.name)
        return FittedEstimator(estimator)

    def _fit_estimator(self, signal: str, history: pd.Series):
        from forecaster.estimators import make_estimator

        if self.model == "auto":
            from forecaster.training import select_and_fit

            estimator, _record = select_and_fit(history, models=list(self.auto_models))
            return estimator
        for name in (self.model, *FALLBACKS):
            try:
                return make_estimator(name).fit(history)
            except InsufficientHistory:
                continue  # e.g. the weekly baseline before 8 days are observed: the next one down
        raise InsufficientHistory(f"no model could be fit on {len(history)} bins of {signal}")


__all__ = ["AUTO_MODELS", "EstimatorForecasting", "FALLBACKS", "FittedEstimator"]
