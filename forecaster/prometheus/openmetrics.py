"""A trace frame written as vLLM's counters in the OpenMetrics text format, for promtool's backfill.

Facts this relies on (found in trials with promtool 2.42, see issue 3):
- the file must end with `# EOF`;
- timestamps are **seconds** (a millisecond value is read as seconds, landing in year 58,000);
- samples out of time order within a series are dropped silently, so each series is written in
  time order, and a metric family's series are written together (OpenMetrics forbids interleaving).

Each signal becomes a counter (`vllm:request_success_total`, `vllm:prompt_tokens_total`,
`vllm:generation_tokens_total`) with labels `model_name` and `engine`: the cumulative sum of the
per-bin counts, stamped at each bin's *end* (the counter after the bin's requests finished), plus a
zero at the first present bin's start so the first bin has an increase. A counter has no gap value
(0 would be a reset, a repeated value would read as zero traffic), so a gap bin gets **no sample**
and rate() has a hole there. The bin right after a gap inside the trace has no counter value at its
start either, so read back it is a gap too: such a gap of g bins comes back as g + 1 missing bins
(exactly what a real scrape outage looks like). A leading gap costs nothing: the counter's zero is
stamped at the first present bin's start.

Written line by line in slices, never as one string, so a year of minutes streams in flat memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import IO

import numpy as np
import pandas as pd

from forecaster.series import native_bin_seconds

__all__ = ["COUNTER_FAMILIES", "write_openmetrics", "counter_samples"]

# signal -> (family name without the _total suffix, help text)
COUNTER_FAMILIES: dict[str, tuple[str, str]] = {
    "requests": ("request_success", "Count of successfully processed requests."),
    "prompt_tokens": ("prompt_tokens", "Number of prefill tokens processed."),
    "output_tokens": ("generation_tokens", "Number of generation tokens processed."),
}

_SLICE = 20_000  # lines per write


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def counter_samples(counts: pd.Series, bin_seconds: int) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps in whole seconds, cumulative values) of one signal's counter, gaps left out."""
    values = counts.to_numpy(dtype="float64")
    present = np.isfinite(values)
    if np.any(values[present] < 0):
        first = int(np.flatnonzero(present & (values < 0))[0])
        raise ValueError(f"{counts.name}: negative count {values[first]} at {counts.index[first]}")
    if not present.any():
        return np.empty(0, dtype="int64"), np.empty(0)
    starts = counts.index.as_unit("s").asi8.astype("int64")
    cumulative = np.cumsum(np.where(present, values, 0.0))
    first = int(np.flatnonzero(present)[0])
    times = np.concatenate([[starts[first]], starts[present] + bin_seconds])
    return times, np.concatenate([[0.0], cumulative[present]])


def _lines(prefix: str, labels: str, times: np.ndarray, values: np.ndarray) -> Iterator[str]:
    head = f"{prefix}{{{labels}}} "
    for lo in range(0, len(times), _SLICE):
        chunk = zip(values[lo : lo + _SLICE].tolist(), times[lo : lo + _SLICE].tolist())
        yield "".join(f"{head}{value!r} {stamp}\n" for value, stamp in chunk)


def write_openmetrics(
    handle: IO[str],
    traces: Sequence[tuple[str, pd.DataFrame]],
    *,
    engine: str = "0",
    prefix: str = "vllm:",
) -> dict[str, int]:
    """Write the (model_name, trace frame) pairs as vLLM counters; returns samples per family.

    `prefix` is `vllm:` as vLLM names them, or `vllm_` as some exporters store them.
    """
    if prefix not in ("vllm:", "vllm_"):
        raise ValueError(f"prefix {prefix!r} must be 'vllm:' or 'vllm_'")
    names = [name for name, _ in traces]
    if len(set(names)) != len(names):
        raise ValueError(f"model names repeat: {names}")
    bins = {name: native_bin_seconds(frame.index) for name, frame in traces}
    written: dict[str, int] = {}
    for signal, (family, help_text) in COUNTER_FAMILIES.items():
        if not any(signal in frame.columns for _, frame in traces):
            continue
        name = f"{prefix}{family}"
        handle.write(f"# HELP {name} {help_text}\n# TYPE {name} counter\n")
        written[f"{name}_total"] = 0
        for model_name, frame in traces:
            if signal not in frame.columns:
                continue
            times, values = counter_samples(frame[signal], bins[model_name])
            labels = f'engine="{_escape(engine)}",model_name="{_escape(model_name)}"'
            for text in _lines(f"{name}_total", labels, times, values):
                handle.write(text)
            written[f"{name}_total"] += len(times)
    handle.write("# EOF\n")
    return written
