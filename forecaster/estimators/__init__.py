"""Forecasting models behind one interface (see base.Estimator), and the catalogue that names them.

The catalogue maps a name to "module:Class" and imports on demand, so importing it (as the CLI and
the service do) loads no statsmodels, Prophet or scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forecaster.estimators.base import Estimator

ESTIMATORS: dict[str, str] = {
    "last_value": "forecaster.estimators.baselines:LastValue",
    "seasonal_naive_daily": "forecaster.estimators.baselines:SeasonalNaiveDaily",
    "seasonal_naive_weekly": "forecaster.estimators.baselines:SeasonalNaiveWeekly",
    "holt_winters": "forecaster.estimators.statsmodels_models:HoltWinters",
    "mstl": "forecaster.estimators.statsmodels_models:MSTLForecaster",
    "sarimax_fourier": "forecaster.estimators.statsmodels_models:SarimaxFourier",
    "prophet": "forecaster.estimators.prophet_model:ProphetForecaster",
    "gbm": "forecaster.estimators.gbm:GBMForecaster",
    # The quantile average of the backtest's best k models: scored from their forecasts there,
    # selected like any model (forecaster.estimators.ensemble).
    "ensemble": "forecaster.estimators.ensemble:QuantileAverage",
}

BASELINES: tuple[str, ...] = ("last_value", "seasonal_naive_daily", "seasonal_naive_weekly")


def _unknown(name: str) -> KeyError:
    return KeyError(f"unknown model {name!r}; known models: {', '.join(ESTIMATORS)}")


def estimator_class(name: str) -> "type[Estimator]":
    """The class behind a catalogue name (imports its module now)."""
    if name not in ESTIMATORS:
        raise _unknown(name)
    module_name, class_name = ESTIMATORS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def make_estimator(name: str, **params: Any) -> "Estimator":
    """A new, unfitted estimator by catalogue name, with its settings."""
    return estimator_class(name)(**params)


def available(names: str | list[str] = "all") -> list[str]:
    """Validate a model selection: "all", "a,b" or ["a", "b"] -> catalogue names in the given order."""
    if isinstance(names, str):
        if names.strip().lower() == "all":
            return list(ESTIMATORS)
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise ValueError(f"no model named; choose 'all' or some of: {', '.join(ESTIMATORS)}")
    unknown = [n for n in names if n not in ESTIMATORS]
    if unknown:
        raise KeyError(
            f"unknown model{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"known models: {', '.join(ESTIMATORS)}"
        )
    return list(dict.fromkeys(names))
