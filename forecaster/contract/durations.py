"""The one duration grammar, for the CRD, the service config, the HTTP query parameters and the CLI.

A duration is Go's time.ParseDuration syntax (what Kubernetes users write: `30s`, `5m`, `1h30m`,
`1.5h`, `500ms`, `0`) plus Prometheus's `d` and `w` (`14d`, `1w`), so a history window and a sync
period are spelled the same way. Numbers and timedeltas (from YAML or Python) are taken as seconds.
Unlike Go there is no sign: every duration we read is a length, and a negative one is a typo.
Unlike the forecaster's former grammar there is no `min`/`sec`, no upper case and no inner space: the
CRD's JSON-schema pattern must accept exactly what the parser accepts, and Go rejects those too.

Two formatters live here too, each with its own readers: `format_go` writes what the CRD's status and
a JSON dump of the spec carry ("1h30m", "500ms"), `format_label` the single-unit labels of objective
names, bins and backtest results ("90s", "15m", "1h", "1d"). They write what they wrote before the
grammars merged, so every label in results and reports reads as it did; only `format_go`'s two
broken cases are fixed: a sub-millisecond value was written "1e-05s" (unreadable), and a float
that is not the nearest to its milliseconds was written in ms and read back as another float.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

__all__ = [
    "DURATION_FORM",
    "DURATION_PATTERN",
    "DURATION_UNITS",
    "format_go",
    "format_label",
    "parse_seconds",
    "parse_timedelta",
]

# Seconds per unit, exact. Go's units, then Prometheus's day and week (no month or year: their
# lengths vary). Exact fractions so "1.1h" is 3960 s and "9ms" the float nearest 0.009, as Go's
# integer nanoseconds would have it, where float arithmetic gives 3960.0000000000005 and 0.009000000000000001.
DURATION_UNITS: dict[str, Fraction] = {
    "ns": Fraction(1, 10**9), "us": Fraction(1, 10**6), "µs": Fraction(1, 10**6), "ms": Fraction(1, 1000),
    "s": Fraction(1), "m": Fraction(60), "h": Fraction(3600), "d": Fraction(86400), "w": Fraction(604800),
}
# The units that are whole seconds, for integer arithmetic on the common case.
_WHOLE_UNIT_SECONDS = {unit: int(size) for unit, size in DURATION_UNITS.items() if size.denominator == 1}
# Longest unit first in the alternation, so "5ms" reads as milliseconds and not as "5m" then "s".
_UNIT = "|".join(sorted(DURATION_UNITS, key=len, reverse=True))
_NUMBER = r"[0-9]+(\.[0-9]+)?"
# What the CRD's OpenAPI schema carries (see controller.policy.spec); the parser uses the same parts.
DURATION_PATTERN = rf"^(0|({_NUMBER}({_UNIT}))+)$"
_WHOLE = re.compile(DURATION_PATTERN)
_PART = re.compile(rf"({_NUMBER})({_UNIT})")

# The accepted form, for error messages (each names the value it rejects, then this).
DURATION_FORM = "a number and a unit (ns, us, ms, s, m, h, d, w), possibly repeated, or 0"


def parse_seconds(value: object) -> float:
    """A duration string, a number of seconds or a timedelta -> float seconds (finite, >= 0)."""
    if isinstance(value, bool):  # bool is an int to Python; `true` in YAML is never a duration
        raise ValueError(f"duration {value!r} is a bool, expected a string ({DURATION_FORM}) or a number of seconds")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        if not _WHOLE.fullmatch(value):  # fullmatch: `$` alone would let a trailing newline in
            raise ValueError(f"duration {value!r} is not like 90s, 15m, 1h30m, 14d or 1w: expected {DURATION_FORM}")
        exact: int | Fraction = 0
        for number, fraction, unit in _PART.findall(value):
            whole_unit = _WHOLE_UNIT_SECONDS.get(unit)
            if whole_unit is not None and not fraction:  # "15s", "5m": ints, 5x faster than Fraction
                exact += int(number) * whole_unit
            else:
                exact += Fraction(number) * DURATION_UNITS[unit]
        try:
            seconds = float(exact)  # one rounding, at the end
        except OverflowError:
            seconds = math.inf  # reported below with the other non-finite values
    else:
        raise ValueError(f"duration {value!r} is a {type(value).__name__}, expected a string ({DURATION_FORM}) "
                         "or a number of seconds")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration {value!r} must be a finite number of seconds >= 0")
    return seconds


def parse_timedelta(value: object) -> timedelta:
    """A duration (as `parse_seconds` reads it) that must be positive, as a timedelta: a bin, a window."""
    seconds = parse_seconds(value)
    if seconds <= 0:
        raise ValueError(f"duration {value!r} must be positive")
    return timedelta(seconds=seconds)


def format_go(seconds: float) -> str:
    """Seconds back to the shortest exact Go duration: 300.0 -> "5m", 5400 -> "1h30m", 0.5 -> "500ms".

    Hours are the largest unit (a spec dump says "24h", as kubectl users expect, not "1d"). A value
    that is not whole milliseconds is written in seconds with every digit its float has.
    """
    if seconds == 0:
        return "0"
    if not float(seconds).is_integer():
        millis = round(seconds * 1000)
        # Milliseconds only where they read back to the same float; otherwise the exact seconds.
        if float(millis * DURATION_UNITS["ms"]) == seconds:
            return f"{millis}ms"
        # Positional, never "1e-05s" (which no duration grammar reads); repr's digits round-trip.
        return f"{Decimal(repr(float(seconds))):f}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)


def format_label(seconds: float) -> str:
    """Whole seconds as the shortest single-unit label that is exact: "90s", "15m", "2h", "1d"."""
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"
