"""The replayed load: a trace's per-minute counts, scaled to a GPU fleet, as seeded per-tick arrivals.

`--peak-replicas N` scales the trace so that its busiest minute of the replay window needs N replicas
at the capacity model's target utilisation: a trace of 50 requests a minute and one of 200,000 both
become a realistic fleet, and the policies are compared at the same scale. Token lengths per request
are not scaled: the scale multiplies the number of requests.

Arrivals are Poisson inside each minute (the minute's rate spread evenly over its ticks, drawn with
a seeded numpy Generator), drawn once per replay so every policy sees exactly the same requests.

`scaling` says what is scaled (`--scaling`):
- `counts` (the default, what every published number used): the rate of a minute is its count in
  the trace times the scale. A small trace's counting noise is scaled with it: a web server seeing
  48 requests a minute varies by ~1/sqrt(48) = 14 % from minute to minute by chance alone, and a
  40-replica fleet replaying it x1000 inherits that 14 %, where a real fleet at 48,000 a minute
  would see 0.5 %.
- `poisson`: the rate of a minute is the trace's *rate* times the scale: each count is taken as one
  Poisson draw of an underlying rate, estimated by `trace_rate` (the counting noise shrunk away,
  real bursts kept), and the replay draws its own Poisson arrivals at the scaled rate. On traces of
  thousands of requests a minute (the LLM traces) the two agree; on small web traces `poisson`
  removes noise that no fleet of that size would see.
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
SCALINGS = ("counts", "poisson")
# The neighbourhood trace_rate estimates a minute's rate from: long enough for a stable local mean
# and variance (15 counts), short against a daily cycle (~1 % of it) and a burst's rise.
RATE_WINDOW_MINUTES = 15


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


def trace_rate(counts: pd.Series, window: int = RATE_WINDOW_MINUTES) -> pd.Series:
    """Per-minute request rate of a trace with its own Poisson counting noise taken out.

    Each minute's count c is one Poisson draw of a rate that itself varies. Under a gamma prior for
    that rate with the local mean m and variance v - m (the excess over counting noise), the
    posterior mean (empirical Bayes, the gamma-Poisson model) is m + w (c - m) with w = 1 - m / v,
    v the local variance of the counts around m (floored at 0: no excess, the rate is m). Thousands
    of requests a minute: m / v ~ 0 and the rate is the count. Tens a minute with no real change:
    w ~ 0 and the rate is the local mean. A burst raises v far above m and is kept. Gaps stay NaN.
    """
    if window < 2:
        raise ValueError(f"window must be at least 2 minutes, got {window}")
    mean = counts.rolling(window, center=True, min_periods=1).mean()
    # Squared deviations from the window's own mean understate the variance by (n - 1) / n.
    var = ((counts - mean) ** 2).rolling(window, center=True, min_periods=1).mean() * window / (window - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = (1.0 - mean / var).clip(lower=0.0).fillna(0.0)
    return mean + weight * (counts - mean)


def _mean_lengths(frame: pd.DataFrame, column: str) -> pd.Series:
    """Tokens per request of each minute, carried over minutes without requests (gaps stay NaN)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = frame[column] / frame["requests"]
    ratio = ratio.where(np.isfinite(ratio) & (ratio >= 0))
    return ratio.interpolate(limit_direction="both").where(frame["requests"].notna())


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
    scaling: str = "counts",
) -> Workload:
    """Cut the replay window out of a per-minute trace frame, scale it and draw its arrivals.

    The window starts at `replay_from` (default: `replay_days` before the end, default the second
    half of the trace) and runs to the end of the trace (or `replay_days` long). `scaling`: see the
    module's docstring.
    """
    if peak_replicas <= 0:
        raise ValueError(f"peak_replicas must be positive, got {peak_replicas}")
    if scaling not in SCALINGS:
        raise ValueError(f"scaling {scaling!r} unknown; choose one of {', '.join(SCALINGS)}")
    index = frame.index
    first, last_end = index[0], index[-1] + pd.Timedelta(minutes=1)
    explicit_start = replay_from is not None
    if replay_from is None:
        if replay_days is None:
            replay_from = (first + (last_end - first) / 2).floor("min")
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
    poisson = scaling == "poisson"
    # The rate that is scaled: the counts themselves, or the trace's rate with its counting noise
    # out (estimated from the window alone, and the history from the history alone: no peeking).
    filled = _fill_gaps(trace_rate(window["requests"]).to_numpy(dtype="float64") if poisson else requests)
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
    scale = peak_replicas * config.target_utilization / peak_load
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
    if poisson:
        hist["requests"] = trace_rate(history["requests"]) * scale
    else:
        hist["requests"] = history["requests"] * scale
    if has_tokens and poisson:
        hist["prompt_tokens"] = hist["requests"] * _mean_lengths(history, "prompt_tokens")
        hist["output_tokens"] = hist["requests"] * _mean_lengths(history, "output_tokens")
    elif has_tokens:
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
    return max(1, math.ceil(rate_per_minute / per_replica / config.target_utilization - 1e-9))
