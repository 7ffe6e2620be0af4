"""The replayed load: a trace's per-minute counts, scaled to a GPU fleet, as seeded per-tick arrivals.

`--peak-replicas N` scales the trace so that its busiest minute of the replay window needs N replicas
at the capacity model's target utilisation: a trace of 50 requests a minute and one of 200,000 both
become a realistic fleet, and the policies are compared at the same scale. Token lengths per request
are not scaled: the scale multiplies the number of requests.

Arrivals are Poisson inside each minute (the minute's count spread evenly over its ticks, drawn with
a seeded numpy Generator), drawn once per replay so every policy sees exactly the same requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from controller.sim.config import SimConfig
from controller.sim.tokens import LengthDistribution, length_distribution

TOKEN_COLUMNS = ("prompt_tokens", "output_tokens")


def read_trace_csv(path: str | Path) -> pd.DataFrame:
    """A trace file as a per-minute trace frame, through the forecaster's validated reader.

    The replay draws arrivals minute by minute, so it also insists on one-minute rows (the
    `*_1min.csv` files); every other check (file, line and column of the first bad cell, gaps kept
    as NaN) is forecaster.sources.read_trace's.
    """
    from forecaster.errors import TraceFormatError
    from forecaster.series import native_bin_seconds
    from forecaster.sources import read_trace

    frame = read_trace(path)
    step = native_bin_seconds(frame.index)
    if step != 60:
        raise TraceFormatError(path, f"the replay needs one-minute rows; this trace has {step} s rows")
    return frame


@dataclass(frozen=True)
class Workload:
    """A replay window as ticks, plus the history before it (scaled the same way) for the forecaster."""

    start: datetime
    tick_seconds: float
    minutes: int
    arrivals: list[int]  # per tick
    prompt_mean: list[float]  # per minute, tokens per request
    output_mean: list[float]
    prompt_shape: tuple[float, ...]
    scale: float
    rate_per_minute: np.ndarray  # scaled expected requests per minute (gaps filled), for the oracle
    history: pd.DataFrame  # scaled trace frame (counts per minute) before `start`, NaN gaps kept
    observed: pd.DataFrame  # scaled realised counts per minute inside the window (NaN where the trace had gaps)
    tokens: str

    @property
    def ticks(self) -> int:
        return len(self.arrivals)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.minutes)

    def time_of(self, tick: int) -> datetime:
        return self.start + timedelta(seconds=tick * self.tick_seconds)


def _fill_gaps(values: np.ndarray) -> np.ndarray:
    """Linear interpolation over gaps (the replay needs some load there; the history keeps NaN)."""
    series = pd.Series(values)
    filled = series.interpolate(limit_direction="both").to_numpy()
    if not np.isfinite(filled).any():
        raise ValueError("the replay window holds no observed minute")
    return filled


def build_workload(
    frame: pd.DataFrame,
    config: SimConfig,
    *,
    replay_from: datetime | None = None,
    replay_days: float | None = None,
    peak_replicas: float = 40.0,
    tokens: str = "trace",
    raw_dir: Path | None = None,
    lengths: LengthDistribution | None = None,
) -> Workload:
    """Cut the replay window out of a per-minute trace frame, scale it and draw its arrivals.

    The window starts at `replay_from` (default: `replay_days` before the end, default the second
    half of the trace) and runs to the end of the trace (or `replay_days` long).
    """
    if peak_replicas <= 0:
        raise ValueError(f"peak_replicas must be positive, got {peak_replicas}")
    index = frame.index
    first, last_end = index[0], index[-1] + pd.Timedelta(minutes=1)
    explicit_start = replay_from is not None
    if replay_from is None:
        if replay_days is None:
            replay_from = first + (last_end - first) / 2
            replay_from = replay_from.floor("min")
        else:
            replay_from = last_end - pd.Timedelta(days=replay_days)
    start = pd.Timestamp(replay_from)
    start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    if start.second or start.microsecond:
        raise ValueError(f"replay start {start} must be on a whole minute")
    end = start + pd.Timedelta(days=replay_days) if explicit_start and replay_days is not None else last_end
    end = min(end, last_end)
    if not first <= start < last_end:
        raise ValueError(f"replay start {start} is outside the trace ({first} to {last_end})")
    if end <= start:
        raise ValueError(f"replay window {start} to {end} is empty")
    window = frame.loc[(index >= start) & (index < end)]
    history = frame.loc[index < start]

    lengths = lengths or length_distribution(tokens, raw_dir)
    has_tokens = all(c in frame.columns for c in TOKEN_COLUMNS) and tokens == "trace"
    requests = window["requests"].to_numpy(dtype="float64")
    filled = _fill_gaps(requests)
    if has_tokens:
        with np.errstate(invalid="ignore", divide="ignore"):
            prompt = window["prompt_tokens"].to_numpy() / requests
            output = window["output_tokens"].to_numpy() / requests
        # A minute without requests (or a gap) has no mean length: carry the neighbours' (interpolate).
        prompt = _fill_gaps(np.where(np.isfinite(prompt) & (prompt > 0), prompt, np.nan))
        output = _fill_gaps(np.where(np.isfinite(output) & (output >= 0), output, np.nan))
    else:
        if tokens == "trace":
            raise ValueError(
                "the trace has no prompt_tokens/output_tokens columns: choose --tokens "
                "azure-conv, azure-code or mooncake"
            )
        prompt = np.full(len(window), lengths.prompt_mean)
        output = np.full(len(window), lengths.output_mean)

    replica = config.replica
    per_replica = np.array([replica.requests_per_second(p, o) for p, o in zip(prompt, output)]) * 60.0
    peak_load = float(np.max(filled / per_replica))  # replicas at 100% for the busiest minute
    if peak_load <= 0:
        raise ValueError("the replay window carries no traffic to scale")
    scale = peak_replicas * config.target_utilisation / peak_load
    rate = filled * scale

    rng = np.random.default_rng(config.seed)
    per_tick = np.repeat(rate / config.ticks_per_minute, config.ticks_per_minute)
    arrivals = rng.poisson(per_tick)
    realised = arrivals.reshape(-1, config.ticks_per_minute).sum(axis=1).astype("float64")
    observed = pd.DataFrame(index=window.index)
    observed["requests"] = np.where(np.isfinite(requests), realised, np.nan)
    observed["prompt_tokens"] = observed["requests"] * prompt
    observed["output_tokens"] = observed["requests"] * output
    hist = pd.DataFrame(index=history.index)
    hist["requests"] = history["requests"] * scale
    if has_tokens:
        hist["prompt_tokens"] = history["prompt_tokens"] * scale
        hist["output_tokens"] = history["output_tokens"] * scale
    else:
        hist["prompt_tokens"] = hist["requests"] * lengths.prompt_mean
        hist["output_tokens"] = hist["requests"] * lengths.output_mean
    return Workload(
        start=start.to_pydatetime().astimezone(timezone.utc),
        tick_seconds=config.tick_seconds,
        minutes=len(window),
        arrivals=arrivals.tolist(),
        prompt_mean=[float(x) for x in prompt],
        output_mean=[float(x) for x in output],
        prompt_shape=lengths.prompt_shape,
        scale=float(scale),
        rate_per_minute=rate,
        history=hist,
        observed=observed,
        tokens=tokens,
    )


def replicas_needed(rate_per_minute: float, prompt: float, output: float, config: SimConfig) -> int:
    """The capacity model for the oracle and static policies: replicas at the target utilisation."""
    per_replica = config.replica.requests_per_second(prompt, output) * 60.0
    return max(1, math.ceil(rate_per_minute / per_replica / config.target_utilisation - 1e-9))
