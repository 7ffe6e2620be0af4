"""Where the service reads history from: an injected callable returning a trace frame.

A history source is `source(workload, start, end) -> trace frame` (forecaster.series conventions:
counts per bin on a regular UTC index, NaN for gaps), holding complete bins in [start, end). The
scheduler only sees this interface, so tests run the real scheduler on the shipped trace and
production reads Prometheus through forecaster.prometheus.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

import pandas as pd

from forecaster.errors import TraceFormatError
from forecaster.service.config import ConfigError, ServiceConfig, WorkloadSettings
from forecaster.sources import read_trace

WEEK = timedelta(days=7)


class HistorySource(Protocol):
    def __call__(self, workload: WorkloadSettings, start: datetime, end: datetime) -> pd.DataFrame: ...


class TraceReplaySource:
    """Replays a trace file as live history: the trace is shifted by whole weeks so that it ends at
    or after `end`, keeping weekday and time of day (the seasonalities the models learn).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.frame = read_trace(self.path)  # validated; missing rows become NaN bins on the grid

    def __call__(self, workload: WorkloadSettings, start: datetime, end: datetime) -> pd.DataFrame:
        last = self.frame.index[-1]
        behind = pd.Timestamp(end) - last
        weeks = max(0, math.ceil(behind / pd.Timedelta(WEEK)))
        shifted = self.frame.copy()
        shifted.index = shifted.index + pd.Timedelta(WEEK) * weeks
        columns = [s for s in workload.signals if s in shifted.columns]
        missing = sorted(set(workload.signals) - set(columns))
        if missing:
            raise TraceFormatError(str(self.path), f"workload {workload.name}: no column for {missing}")
        window = shifted.loc[(shifted.index >= pd.Timestamp(start)) & (shifted.index < pd.Timestamp(end))]
        return window[columns]


class PrometheusSource:
    """History from Prometheus through forecaster.prometheus.load_history: each signal's configured
    query, or vLLM's counter (either spelling) when none is given."""

    def __init__(self, config: ServiceConfig):
        if config.prometheus is None:
            raise ConfigError("history.source is 'prometheus' but no prometheus section is given")
        self.settings = config.prometheus

    def __call__(self, workload: WorkloadSettings, start: datetime, end: datetime) -> pd.DataFrame:
        from forecaster.prometheus import load_history

        queries = {s: v.query for s, v in workload.signals.items() if v.query is not None}
        return load_history(
            self.settings, model_name=workload.model_name, start=start, end=end,
            step=workload.bin, signals=list(workload.signals), queries=queries or None,
        )


def make_source(config: ServiceConfig) -> HistorySource:
    if config.history.source == "trace":
        assert config.history.trace is not None  # checked by HistorySettings
        return TraceReplaySource(config.history.trace.path)
    return PrometheusSource(config)


def floor_time(moment: datetime, seconds: int) -> datetime:
    """The start of the bin of `seconds` (aligned to the epoch) that holds `moment`."""
    ts = moment.astimezone(timezone.utc).timestamp()
    return datetime.fromtimestamp(ts - ts % seconds, tz=timezone.utc)
