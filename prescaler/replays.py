"""A replay with the real forecaster: the simulator and the forecaster wired together.

controller.sim.replay takes its forecasting engine as an argument (it imports only the contract);
this is the one place the product hands it the forecaster's, so every command, the report, the
notebooks and the benchmarks replay with the same engine.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from controller.sim.replay import ReplayReport, ReplaySettings, replay
from forecaster.contract.replay import ReplayForecasting
from forecaster.replay import EstimatorForecasting


def replay_with_forecaster(frame: pd.DataFrame, settings: ReplaySettings, *, trace_name: str = "trace",
                           log: Callable[[str], None] | None = None, jobs: int = 1,
                           forecasting: ReplayForecasting | None = None) -> ReplayReport:
    """controller.sim.replay.replay with forecaster.replay.EstimatorForecasting(settings.model), or with
    `forecasting` where the caller wraps that engine (the report fits the backtest's own ensemble and
    reuses its fits in the frontier)."""
    return replay(frame, settings, trace_name=trace_name, log=log, jobs=jobs,
                  forecasting=forecasting or EstimatorForecasting(settings.model))
