"""What a replay needs from a forecasting engine, declared with the contract's types.

The simulator (controller.sim) replays a trace against prescaler's policy and must forecast as a
live forecaster service would, without peeking: fit on the history up to a time t, then forecast
quantiles from each later bin as it completes, keeping the fitted parameters between refits. It asks
for exactly that through these two protocols and nothing else, so it imports no estimator, no
selection and no statistics library. `forecaster.replay.EstimatorForecasting` implements them with
the forecaster's own estimators and model selection; the composition root (`prescaler/`) hands one
to the replay. Tests and references (the simulator's `hindsight`) implement them too.

Series are pandas Series of rates per second at the forecast bin, indexed by the UTC start of each
bin, NaN where the trace had a gap (never 0): the forecaster's own prepared-series shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from forecaster.contract.forecast import Forecast

if TYPE_CHECKING:  # pandas is only named in the signatures; the contract imports no data library
    import pandas as pd


class FittedForecaster(Protocol):
    """A model fitted on the history up to some time: forecasts from any later history."""

    @property
    def name(self) -> str:
        """The estimator's name (for example `holt_winters`), reported per refit."""
        ...

    def forecast(self, history: pd.Series, *, steps: int, quantiles: Sequence[float], workload: str,
                 generated_at: datetime) -> Forecast:
        """The `steps` bins after the last bin of `history`, with the mean and `quantiles`.

        `history` extends the series the model was fitted on (same bin, same start) up to the last
        bin completed at `generated_at`; only the model's state is brought up to it, not its fit.
        """
        ...


class ReplayForecasting(Protocol):
    """A forecasting engine as a replay drives it: bin the observed rates, fit, forecast."""

    def bin_rates(self, per_minute_rates: pd.Series, bin_seconds: int) -> pd.Series:
        """Per-minute rates (per second) -> rates at the forecast bin, as the forecaster bins them."""
        ...

    def fit(self, signal: str, history: pd.Series) -> FittedForecaster:
        """A model of `signal` fitted on `history` (the binned rates up to now)."""
        ...


__all__ = ["FittedForecaster", "ReplayForecasting"]
