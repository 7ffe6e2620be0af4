"""Trace files for a replay: the forecaster's validated reader, held to one-minute rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from forecaster.errors import TraceFormatError
from forecaster.series import native_bin_seconds
from forecaster.sources import read_trace, shipped_trace_path


def read_trace_csv(path: str | Path) -> pd.DataFrame:
    """A trace file as a per-minute trace frame, through the forecaster's validated reader.

    The replay draws arrivals minute by minute, so it also insists on one-minute rows (the
    `*_1min.csv` files); every other check (file, line and column of the first bad cell, gaps kept
    as NaN) is forecaster.sources.read_trace's.
    """
    frame = read_trace(path)
    step = native_bin_seconds(frame.index)
    if step != 60:
        raise TraceFormatError(str(path), f"the replay needs one-minute rows; this trace has {step} s rows")
    return frame


def shipped_trace() -> Path:
    """The ServeGen m-small trace shipped inside the forecaster package (the demo's default)."""
    return Path(shipped_trace_path())
