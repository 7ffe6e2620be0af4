"""Numbers for people in `prescaler report`'s tables: 98.11 %, 1.54x, 1.4e6, 6.4 s, 58.23.

Every DataFrame the report renders goes through `people_frame`, which formats each column by what
it holds: by its name where the report knows the quantity (COLUMN_KINDS, and `*_seconds`), else by
its dtype. Fractions become percentages and counts become 9.1e6 or 1,234 with prescaler.frontier's
helpers, so the page reads like `prescaler frontier`'s table; no cell shows a raw float such as
`1151618.2522`. pandas loads inside the function: importing this module costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from prescaler.frontier import count, hours, pct, times

if TYPE_CHECKING:
    import pandas as pd

Kind = Literal["percent", "ratio", "count", "hours", "seconds", "number"]

# Columns whose quantity the name says (forecaster.review's frames and the replay's outcomes).
COLUMN_KINDS: dict[str, Kind] = {
    "slo_attainment": "percent",
    "coverage90": "percent",
    "under_rate": "percent",
    "nominal": "percent",  # calibration: the share of points expected below the quantile
    "observed": "percent",  # and the share observed below it
    "gpu_hours_vs_oracle": "ratio",
    "slo_misses": "count",  # fractional: the simulator's queue is fluid
    "requests": "count",
    "rejected": "count",
    "abandoned": "count",
    "gpu_hours": "hours",
    "ttft_p99": "seconds",
}


def seconds(x: float) -> str:
    """6.4 s, 11.5 ms, 1,234 s: a duration rounded to what a person compares."""
    if math.isnan(x):
        return "-"
    if x == 0:
        return "0 s"
    if abs(x) < 1e-4:
        return "< 0.1 ms"
    if abs(x) < 1:
        return f"{1000 * x:.1f} ms"
    if abs(x) < 100:
        return f"{x:.1f} s"
    return f"{x:,.0f} s"


def number(x: float) -> str:
    """A plain quantity at 4 significant digits and at most 4 decimals: 58.23, 0.5732, 0.05, 1,235;
    9.1e6 past 10,000 and 1.2e-4 below 0.001 (where 4 decimals would keep one digit or none)."""
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    size = abs(x)
    if size >= 10_000:
        return count(x)
    if size < 1e-3:
        mantissa, exponent = f"{x:.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    decimals = min(4, max(0, 3 - math.floor(math.log10(size))))
    text = f"{x:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


_FORMATS: dict[Kind, Callable[[float], str]] = {
    "percent": pct, "ratio": times, "count": count, "hours": hours, "seconds": seconds, "number": number,
}


def column_kind(name: str) -> Kind | None:
    """The quantity a column holds by its name; None: decide by dtype."""
    if name in COLUMN_KINDS:
        return COLUMN_KINDS[name]
    if name.endswith("_seconds"):
        return "seconds"
    return None


def _cell(value: object, fmt: Callable[[float], str]) -> str:
    """One cell (a Python scalar, pd.NA or None: the columns are read with tolist())."""
    import pandas as pd

    if isinstance(value, str):
        return value
    if isinstance(value, datetime):  # pd.Timestamp is one; an object column of them
        return "-" if value is pd.NaT else f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, bool):  # before the number check: a bool is an int
        return str(value)
    if isinstance(value, (int, float)):
        return fmt(float(value))
    if value is None or value is pd.NA or value is pd.NaT:
        return "-"
    return str(value)


def people_frame(frame: "pd.DataFrame") -> "pd.DataFrame":
    """`frame` with every cell as text for people (same columns, same order); text columns as they are.

    Floats and ints by the column's kind (its name) or, unnamed, as `number` and `count`;
    timestamps to the minute; NaN and None as "-".
    """
    import pandas as pd
    from pandas.api import types

    out = pd.DataFrame(index=frame.index)
    for name in frame.columns:
        column = frame[name]
        kind = column_kind(str(name))
        if types.is_bool_dtype(column):
            out[name] = column.map(str)
        elif types.is_datetime64_any_dtype(column):
            out[name] = column.map(lambda t: "-" if pd.isna(t) else f"{t:%Y-%m-%d %H:%M}")
        else:  # numbers, text, or objects that may hold numbers (a column of mixed values)
            default: Kind = "count" if types.is_integer_dtype(column) else "number"
            fmt = _FORMATS[kind or default]
            out[name] = [_cell(v, fmt) for v in column.tolist()]
    return out


__all__ = ["COLUMN_KINDS", "column_kind", "number", "people_frame", "seconds"]
