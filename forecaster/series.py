"""Series preparation: pure functions from a trace frame to the series the estimators fit.

Conventions every module relies on:

- A *trace frame* is a DataFrame indexed by a tz-aware UTC DatetimeIndex (the start of each bin),
  regular, with float columns `requests` and optionally `prompt_tokens`, `output_tokens`, holding
  **counts per bin** (what the trace files store). NaN is a collection gap, never zero traffic.
- A *series* is a float64 pd.Series on a regular UTC DatetimeIndex with `freq` set, holding the
  **rate per second** of one signal, NaN where data is missing. Estimators fit series; forecasts are
  rates per second; the capacity model turns rates into replicas.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from forecaster.contract.durations import format_label, parse_timedelta

# The bins the forecaster works at. Finer bins are allowed only for traces that are native at 1 min.
SUPPORTED_BIN_SECONDS = (60, 300, 600, 1800, 3600)


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """A positive duration ('90s', '15m', '1h30m', '14d', '1w', or a number of seconds) as a timedelta,
    in the grammar of forecaster.contract.durations (the CRD's)."""
    return parse_timedelta(text)


def format_duration(seconds: float) -> str:
    """The shortest of '90s', '15m', '2h', '1d' that is exact."""
    return format_label(seconds)


def bin_seconds(bin: str | int | timedelta) -> int:
    """Validate a bin ('10m', 600, ...) against the supported ones and return it in seconds."""
    seconds = int(parse_duration(bin).total_seconds())
    if seconds not in SUPPORTED_BIN_SECONDS:
        allowed = ", ".join(format_duration(s) for s in SUPPORTED_BIN_SECONDS)
        raise ValueError(f"bin {bin!r} is not supported; use one of {allowed}")
    return seconds


def native_bin_seconds(index: pd.DatetimeIndex) -> int:
    """The spacing of a regular trace index, in seconds."""
    if len(index) < 2:
        raise ValueError("a trace needs at least two rows to have a bin")
    # asi8 counts in the index's own unit; pandas 3 parses strings to microseconds, so convert first.
    steps = np.diff(index.as_unit("ns").asi8) // 1_000_000_000
    return int(np.median(steps))


def to_rate(frame: pd.DataFrame, signal: str, bin: str | int | timedelta | None = None) -> pd.Series:
    """One signal of a trace frame (counts per bin) as a rate per second, resampled to `bin`.

    Resampling takes the mean of the present source bins inside each target bin, so a partly
    missing bin keeps the rate of what was observed, and a wholly missing bin stays NaN (a gap is
    never read as zero traffic).
    """
    if signal not in frame.columns:
        raise KeyError(f"signal {signal!r} not in trace (has {', '.join(frame.columns)})")
    source_seconds = native_bin_seconds(frame.index)
    rate = frame[signal].astype("float64") / source_seconds
    target_seconds = source_seconds if bin is None else int(parse_duration(bin).total_seconds())
    if target_seconds < source_seconds:
        raise ValueError(f"bin {target_seconds}s is finer than the trace's own {source_seconds}s")
    return resample_rate(rate, target_seconds).rename(signal)


def resample_rate(rate: pd.Series, seconds: int) -> pd.Series:
    """Mean of the present values in each bin of `seconds`, bins aligned to the epoch; NaN when none."""
    rule = f"{int(seconds)}s"
    out = rate.resample(rule, origin="epoch", label="left", closed="left").mean()
    out.index.freq = pd.tseries.frequencies.to_offset(rule)
    return out.astype("float64")


def step_seconds(series: pd.Series) -> int:
    """The bin of a prepared series, from its freq (set by resample_rate) or its spacing."""
    freq = getattr(series.index, "freq", None)
    if freq is not None:
        return int(pd.Timedelta(freq).total_seconds())
    return native_bin_seconds(series.index)


def future_index(series: pd.Series, horizon: int) -> pd.DatetimeIndex:
    """The timestamps of the `horizon` bins after the last bin of `series`."""
    step = step_seconds(series)
    return pd.date_range(
        series.index[-1] + pd.Timedelta(seconds=step), periods=horizon, freq=f"{step}s", tz="UTC"
    )


def observed_fraction(series: pd.Series) -> float:
    """Share of bins that hold data (not NaN)."""
    return float(series.notna().mean()) if len(series) else 0.0
