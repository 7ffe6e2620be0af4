"""Shared fakes for the simulator tests: synthetic traces and a scripted scaler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from controller.sim.config import SimConfig
from controller.sim.engine import MetricsSample
from controller.sim.workload import Workload


def daily_frame(days: float = 3.0, *, mean_rpm: float = 6000.0, amplitude: float = 0.6,
                prompt: float = 400.0, output: float = 100.0, noise: float = 0.0, seed: int = 1,
                start: str = "2025-01-01T00:00Z") -> pd.DataFrame:
    """A per-minute trace frame with a smooth daily cycle (peak at 14:00 UTC)."""
    minutes = int(days * 1440)
    index = pd.date_range(start, periods=minutes, freq="60s", tz="UTC").as_unit("ns")
    phase = 2 * np.pi * (np.arange(minutes) / 1440.0 - 14 / 24)
    requests = mean_rpm * (1 + amplitude * np.cos(phase))
    if noise:
        requests *= np.random.default_rng(seed).lognormal(0, noise, minutes)
    frame = pd.DataFrame({"requests": requests, "prompt_tokens": requests * prompt,
                          "output_tokens": requests * output}, index=index)
    frame.index.name = "timestamp"
    frame.index.freq = "60s"
    return frame


def flat_workload(minutes: int, per_minute: float, config: SimConfig, *, prompt: float = 400.0,
                  output: float = 100.0, history_days: float = 0.0) -> Workload:
    """A constant load with deterministic arrivals (the same count every tick)."""
    tpm = config.ticks_per_minute
    per_tick = per_minute / tpm
    index = pd.date_range("2025-01-02T00:00Z", periods=minutes, freq="60s", tz="UTC").as_unit("ns")
    hist_index = pd.date_range(end=index[0] - pd.Timedelta(minutes=1), periods=int(history_days * 1440),
                               freq="60s", tz="UTC").as_unit("ns")
    frame = pd.DataFrame({"requests": per_minute, "prompt_tokens": per_minute * prompt,
                          "output_tokens": per_minute * output}, index=index)
    return Workload(
        start=index[0].to_pydatetime(), tick_seconds=config.tick_seconds, minutes=minutes,
        arrivals=[int(round(per_tick))] * (minutes * tpm), prompt_mean=[prompt] * minutes,
        output_mean=[output] * minutes, prompt_shape=(1.0,), scale=1.0,
        rate_per_minute=np.full(minutes, per_minute), history=frame.reindex(hist_index),
        observed=frame, tokens="trace",
    )


class ScriptedScaler:
    """Starts with `initial` replicas and asks for `plan[tick]` from that tick on; records what it saw."""

    name = "scripted"

    def __init__(self, initial: int, plan: dict[int, int] | None = None) -> None:
        self.start = initial
        self.plan = dict(plan or {})
        self.want = initial
        self.seen: list[tuple[int, MetricsSample | None, int]] = []

    def initial(self, workload, config) -> int:
        return self.start

    def desired(self, tick: int, sample: MetricsSample | None, current: int, ready: int) -> int:
        self.seen.append((tick, sample, current))
        for at in sorted(self.plan):
            if at <= tick:
                self.want = self.plan[at]
        return self.want


@pytest.fixture
def config() -> SimConfig:
    return SimConfig(lead_seconds=300, max_replicas=50)
