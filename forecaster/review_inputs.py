"""Where a review's series comes from: a trace file (default: the shipped one) or Prometheus.

The notebooks' `parameters` cell and `prescaler report` name a source; this turns it into the rate
series the review functions take (forecaster.review stays pure: no I/O there).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from forecaster.series import bin_seconds as parse_bin
from forecaster.series import format_duration, to_rate


@dataclass(frozen=True)
class ReviewInput:
    series: pd.Series  # rate per second at `bin_seconds`, NaN gaps
    native_bin_seconds: int | None  # the source's own bin (a finer review bin is refused)
    label: str  # what the source was, for titles: a file name or the Prometheus model

    @property
    def bin_seconds(self) -> int:
        return int(pd.Timedelta(self.series.index.freq).total_seconds())


def load_review_series(
    trace: str | Path | None = None,
    *,
    signal: str = "requests",
    bin: str | int = "10m",
    prometheus: str | None = None,
    model_name: str | None = None,
    days: float = 14.0,
) -> ReviewInput:
    """The series to review. `trace=None` and `prometheus=None`: the shipped ServeGen m-small trace.

    With `prometheus` (a base URL), the last `days` of `model_name`'s vLLM counters at `bin`
    (forecaster.prometheus.frame_from_prometheus; credentials from its file/env options only).
    """
    from forecaster.sources import native_bin_of, read_trace, shipped_trace_path

    step = parse_bin(bin)
    if trace is not None and prometheus is not None:
        raise ValueError(f"give a trace ({trace}) or a Prometheus URL ({prometheus}), not both")
    native: int | None
    if prometheus is not None:
        if not model_name:
            raise ValueError("model_name is required with prometheus: the vLLM model_name label to query")
        from forecaster.prometheus.loader import frame_from_prometheus

        frame = frame_from_prometheus(prometheus, model_name, days=days, step=step, signals=(signal,))
        native, label = step, f"{model_name} from {prometheus}"
    else:
        path = Path(trace) if trace is not None else shipped_trace_path()
        frame = read_trace(path)
        native, label = native_bin_of(path, frame), path.name
    if native is not None and step < native:
        raise ValueError(
            f"bin {format_duration(step)} is finer than {label}'s native bin {format_duration(native)}: "
            f"values inside a native bin repeat and flatter naive forecasts; use bin >= {format_duration(native)}"
        )
    return ReviewInput(series=to_rate(frame, signal, step), native_bin_seconds=native, label=label)
