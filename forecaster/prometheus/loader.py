"""Prometheus history -> a trace frame (see forecaster.series), so training reads Prometheus
exactly as it reads a trace file.

What the frame holds: **counts per step** in the bin [t, t + step) at index t, so that
`forecaster.series.to_rate(frame, signal)` gives back the per-second rate Prometheus computed.
Bins are aligned to multiples of the step since the epoch; `start` and `end` are floored onto them
and the frame covers [start, end). A bin where Prometheus has no value is NaN (a gap stays a gap).

Two paths:

- **rate** (default): `sum(rate(<counter>{model_name="M"}[<step>]))` evaluated with
  `/api/v1/query_range` at each bin's *end*. The rate window equals the step so every bin is counted
  once (a `[1m]` window at a 10m step would sample one minute in ten). The value at t + step is the
  bin [t, t + step). Queries are chunked under Prometheus's 11,000 points per series, each chunk
  starting one step after the previous one's last point, so no evaluation time is asked twice or
  skipped. (Prometheus 3 made range windows left-open, `(t - step, t]`: with samples exactly one
  step apart, as a backfill writes them, such a window holds one sample and rate() is empty; use
  the raw path there. Scraped data, several samples per step, is unaffected.)
- **raw counters** (`raw_counters=True`): the counter's own samples via a range selector
  (`<counter>{...}[W]` at instant T returns the stored samples in the window, no lookback fill and
  no extrapolation), chunked by time with each chunk's samples kept only in (T - W, T] (Prometheus
  2.x includes both window ends, 3.x only the right one; filtering ourselves makes both exact), then
  differenced per series with counter resets handled (forecaster.prometheus.counters).

vLLM names its counters `vllm:request_success_total` etc.; some exporter and Prometheus paths store
them as `vllm_...` (prometheus_client >= 0.23's OpenMetrics output, client_python issue 1177). The
default queries use whichever spelling Prometheus has for the model.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from forecaster.contract import SIGNALS
from forecaster.prometheus.client import PrometheusClient
from forecaster.prometheus.config import PrometheusConfig
from forecaster.prometheus.counters import bin_counts
from forecaster.prometheus.errors import PrometheusEmptyResult, PrometheusError, PrometheusQueryError
from forecaster.series import parse_duration

log = logging.getLogger(__name__)

__all__ = [
    "SIGNAL_COUNTERS",
    "load_history",
    "frame_from_prometheus",
    "resolve_counter_names",
    "default_query",
    "chunk_ranges",
]

# vLLM's counters behind each signal (vllm/engine/metrics.py; V1: vllm/v1/metrics/loggers.py).
SIGNAL_COUNTERS: dict[str, str] = {
    "requests": "request_success_total",
    "prompt_tokens": "prompt_tokens_total",
    "output_tokens": "generation_tokens_total",
}


def _label_value(text: str) -> str:
    """A PromQL string literal body: backslash and double quote escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def default_query(counter: str, model_name: str, step_seconds: int, *, raw: bool = False) -> str:
    """The PromQL for one signal: the summed rate over one step, or the raw counter selector."""
    selector = f'{counter}{{model_name="{_label_value(model_name)}"}}'
    if raw:
        return selector
    return f"sum(rate({selector}[{step_seconds}s]))"


def resolve_counter_names(
    client: PrometheusClient, model_name: str, signals: Sequence[str], start: float, end: float
) -> dict[str, str]:
    """For each signal, the counter name Prometheus holds for this model: `vllm:X` or `vllm_X`.

    One label-values call (`/api/v1/label/__name__/values` with a match[] selector and the range),
    which reads the index only, not samples.
    """
    suffixes = "|".join(SIGNAL_COUNTERS[s] for s in signals)
    match = f'{{__name__=~"vllm[:_]({suffixes})", model_name="{_label_value(model_name)}"}}'
    present = set(client.metric_names(match, start, end))
    names: dict[str, str] = {}
    for signal in signals:
        suffix = SIGNAL_COUNTERS[signal]
        for spelling in (f"vllm:{suffix}", f"vllm_{suffix}"):
            if spelling in present:
                names[signal] = spelling
                break
        else:
            raise PrometheusEmptyResult(
                match,
                f"no vllm:{suffix} or vllm_{suffix} series for model_name={model_name!r} between "
                f"{_iso(start)} and {_iso(end)} (found: {', '.join(sorted(present)) or 'none'})",
            )
    return names


def chunk_ranges(first: float, count: int, step_seconds: int, max_points: int) -> list[tuple[float, float]]:
    """Split `count` evaluation times first, first+step, ... into (start, end) ranges of at most
    `max_points` points each, inclusive at both ends, the next starting one step after the last."""
    if count <= 0:
        return []
    out = []
    for offset in range(0, count, max_points):
        n = min(max_points, count - offset)
        lo = first + offset * step_seconds
        out.append((lo, lo + (n - 1) * step_seconds))
    return out


def load_history(
    cfg: PrometheusConfig,
    *,
    model_name: str,
    start: datetime | pd.Timestamp | str,
    end: datetime | pd.Timestamp | str,
    step: str | int | timedelta = "1m",
    signals: Sequence[str] = SIGNALS,
    queries: Mapping[str, str] | None = None,
    raw_counters: bool = False,
    max_gap: str | int | timedelta | None = None,
    client: PrometheusClient | None = None,
) -> pd.DataFrame:
    """A trace frame (counts per step, UTC index at `step`, NaN gaps) of `signals` from Prometheus.

    `queries` maps a signal to its own PromQL (a rate query on the rate path, a counter selector on
    the raw path); `$model_name` and `$step` in it are replaced by the model name and the step
    (e.g. `60s`). Signals without a query use vLLM's counters, in whichever spelling exists.
    `max_gap` (raw path only, default 1.5 steps): the longest interval between two samples across
    which the counter is read by interpolation at a bin edge.
    """
    if not model_name or not model_name.strip():
        raise ValueError("model_name must not be empty")
    signals = list(signals)
    unknown = [s for s in signals if s not in SIGNAL_COUNTERS]
    if unknown or not signals:
        raise ValueError(f"signals {unknown or signals} invalid; choose from {', '.join(SIGNAL_COUNTERS)}")
    extra = sorted(set(queries or {}) - set(signals))
    if extra:
        raise ValueError(f"queries given for {extra}, which are not among signals {signals}")
    step_s = int(parse_duration(step).total_seconds())
    if step_s != parse_duration(step).total_seconds() or step_s < 1:
        raise ValueError(f"step {step!r} must be a whole number of seconds")
    t0 = _epoch("start", start)
    t1 = _epoch("end", end)
    t0 = math.floor(t0 / step_s) * step_s
    t1 = math.floor(t1 / step_s) * step_s
    n_bins = int((t1 - t0) // step_s)
    if n_bins < 1:
        raise ValueError(f"end ({_iso(t1)}) must be at least one step ({step_s}s) after start ({_iso(t0)})")
    gap_s = 1.5 * step_s if max_gap is None else parse_duration(max_gap).total_seconds()

    client = client or PrometheusClient(cfg)
    wanted = {s: q for s, q in (queries or {}).items()}
    missing = [s for s in signals if s not in wanted]
    if missing:
        names = resolve_counter_names(client, model_name, missing, t0 - gap_s, t1 + gap_s)
        for signal in missing:
            wanted[signal] = default_query(names[signal], model_name, step_s, raw=raw_counters)
    for signal, query in wanted.items():
        wanted[signal] = query.replace("$model_name", _label_value(model_name)).replace("$step", f"{step_s}s")

    index = pd.date_range(pd.Timestamp(t0, unit="s", tz="UTC"), periods=n_bins, freq=f"{step_s}s")
    index = index.as_unit("ns").rename("timestamp")
    columns: dict[str, np.ndarray] = {}
    for signal in signals:
        if raw_counters:
            counts = _raw_counts(client, wanted[signal], t0, n_bins, step_s, gap_s, cfg.max_points_per_query)
        else:
            counts = _rate_counts(client, wanted[signal], t0, n_bins, step_s, cfg.max_points_per_query)
        columns[signal] = counts
        log.info(
            "Prometheus %s: %s: %d of %d bins present", cfg.url, signal, int(np.isfinite(counts).sum()), n_bins
        )
    frame = pd.DataFrame(columns, index=index)
    frame.attrs["source"] = f"prometheus {cfg.url}"
    frame.attrs["queries"] = dict(wanted)
    return frame


def _rate_counts(
    client: PrometheusClient, query: str, t0: float, n_bins: int, step_s: int, max_points: int
) -> np.ndarray:
    # Evaluate at each bin's end: the rate over [t, t + step] is the bin starting at t.
    first_eval = t0 + step_s
    out = np.full(n_bins, np.nan)
    seen = np.zeros(n_bins, dtype=bool)
    any_series = False
    for lo, hi in chunk_ranges(first_eval, n_bins, step_s, max_points):
        result = client.query_range(query, lo, hi, step_s)
        if len(result) > 1:
            labels = "; ".join(str(r.get("metric", {})) for r in result[:3])
            raise PrometheusQueryError(
                query, f"returned {len(result)} series ({labels}...); aggregate it to one, e.g. sum(...)"
            )
        for series in result:
            any_series = True
            times, values = _parse_values(series.get("values", []), query)
            positions = (times - first_eval) / step_s
            slots = np.rint(positions).astype(np.int64)
            if np.any(np.abs(positions - slots) > 1e-6) or np.any((slots < 0) | (slots >= n_bins)):
                raise PrometheusError(f"query {query!r}: Prometheus returned timestamps off the {step_s}s grid")
            if np.any(seen[slots]) or len(np.unique(slots)) != len(slots):
                raise PrometheusError(f"query {query!r}: Prometheus returned a timestamp twice")
            seen[slots] = True
            out[slots] = values * step_s
    if not any_series:
        raise PrometheusEmptyResult(query, f"no series between {_iso(t0)} and {_iso(t0 + n_bins * step_s)}")
    out[~np.isfinite(out)] = np.nan
    return out


def _raw_counts(
    client: PrometheusClient,
    selector: str,
    t0: float,
    n_bins: int,
    step_s: int,
    gap_s: float,
    max_points: int,
) -> np.ndarray:
    # Fetch the samples in (t0 - gap, t1 + gap], window by window, keeping each window's (lo, hi].
    lo_all, hi_all = t0 - gap_s, t0 + n_bins * step_s + gap_s
    window = max(step_s * max_points, step_s)
    samples: dict[tuple[tuple[str, str], ...], list[tuple[np.ndarray, np.ndarray]]] = {}
    lo = lo_all
    while lo < hi_all:
        hi = min(lo + window, hi_all)
        width = hi - lo
        range_query = f"{selector}[{_seconds(width)}s]"
        for series in client.query(range_query, hi):
            times, values = _parse_values(series.get("values", []), range_query)
            keep = (times > lo) & (times <= hi)
            key = tuple(sorted(series.get("metric", {}).items()))
            samples.setdefault(key, []).append((times[keep], values[keep]))
        lo = hi
    if not samples:
        raise PrometheusEmptyResult(selector, f"no samples between {_iso(lo_all)} and {_iso(hi_all)}")
    boundaries = t0 + step_s * np.arange(n_bins + 1, dtype="float64")
    per_series = []
    for parts in samples.values():
        times = np.concatenate([p[0] for p in parts])
        values = np.concatenate([p[1] for p in parts])
        order = np.argsort(times, kind="stable")
        times, values = times[order], values[order]
        unique = np.concatenate([[True], np.diff(times) > 0])
        per_series.append(bin_counts(times[unique], values[unique], boundaries, max_gap=gap_s))
    stacked = np.vstack(per_series)
    # A series with no value at a bin (a pod not yet started, or gone) contributes nothing; a bin
    # is a gap only when no series has a value there.
    present = np.isfinite(stacked)
    total = np.where(present, stacked, 0.0).sum(axis=0)
    return np.where(present.any(axis=0), total, np.nan)


def _parse_values(values: Iterable[Any], query: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        pairs = list(values)
        times = np.fromiter((float(p[0]) for p in pairs), dtype="float64", count=len(pairs))
        data = np.fromiter((float(p[1]) for p in pairs), dtype="float64", count=len(pairs))
    except (TypeError, ValueError, IndexError) as error:
        raise PrometheusError(f"query {query!r}: malformed values in Prometheus's answer ({error})") from None
    return times, data


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def _epoch(field: str, value: datetime | pd.Timestamp | str) -> float:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{field} {value!r} is not a timestamp: {error}") from None
    if stamp.tzinfo is None:
        raise ValueError(f"{field} {value!r} must carry a timezone (UTC)")
    return stamp.timestamp()


def _iso(seconds: float) -> str:
    return pd.Timestamp(seconds, unit="s", tz="UTC").isoformat()


def frame_from_prometheus(
    url: str,
    model_name: str,
    days: float = 14.0,
    step: str | int | timedelta = "1m",
    *,
    bearer_token_file: str | None = None,
    bearer_token_env: str | None = None,
    username: str | None = None,
    password_file: str | None = None,
    password_env: str | None = None,
    ca_bundle: str | None = None,
    verify_tls: bool = True,
    timeout_s: float = 30.0,
    signals: Sequence[str] = SIGNALS,
    queries: Mapping[str, str] | None = None,
    raw_counters: bool = False,
    end: datetime | pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """The last `days` of history for `model_name` as a trace frame (the `train --prometheus` seam).

    `end` defaults to now; the frame's native bin is the step. Secrets come from the named file or
    environment variable, never from an argument, so they stay out of shell history and `ps`.
    """
    if not days > 0:
        raise ValueError(f"days ({days}) must be positive")
    cfg = PrometheusConfig(
        url=url,
        bearer_token_file=bearer_token_file,
        bearer_token_env=bearer_token_env,
        username=username,
        password_file=password_file,
        password_env=password_env,
        ca_bundle=ca_bundle,
        verify_tls=verify_tls,
        timeout_s=timeout_s,
    )
    stop = pd.Timestamp.now(tz="UTC") if end is None else pd.Timestamp(end)
    if stop.tzinfo is None:
        raise ValueError(f"end {end!r} must carry a timezone (UTC)")
    return load_history(
        cfg,
        model_name=model_name,
        start=stop - pd.Timedelta(days=days),
        end=stop,
        step=step,
        signals=signals,
        queries=queries,
        raw_counters=raw_counters,
    )
