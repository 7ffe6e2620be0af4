"""The one duration grammar (forecaster.contract.durations): what it accepts and rejects, that the
CRD's pattern agrees with the parser, and that each formatter's output parses back to its value."""

from __future__ import annotations

import re
from datetime import timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forecaster.contract.durations import (
    DURATION_PATTERN,
    DURATION_UNITS,
    format_go,
    format_label,
    parse_seconds,
    parse_timedelta,
)


@pytest.mark.parametrize(
    "value, seconds",
    [
        pytest.param("30s", 30.0, id="seconds"),
        pytest.param("5m", 300.0, id="minutes"),
        pytest.param("2h", 7200.0, id="hours"),
        pytest.param("14d", 1_209_600.0, id="days"),
        pytest.param("1w", 604_800.0, id="week"),
        pytest.param("1h30m", 5400.0, id="compound"),
        pytest.param("1w2d3h4m5s", 604_800.0 + 172_800.0 + 10_800.0 + 240.0 + 5.0, id="compound-all"),
        pytest.param("30m1h", 5400.0, id="compound-any-order-as-go"),
        pytest.param("1.5h", 5400.0, id="fractional"),
        pytest.param("0.5d", 43_200.0, id="fractional-day"),
        pytest.param("1.1h", 3960.0, id="fractional-exact-not-3960.0000000000005"),
        pytest.param("9ms", 0.009, id="millis-nearest-float-not-0.009000000000000001"),
        pytest.param("500ms", 0.5, id="millis"),
        pytest.param("250us", 250e-6, id="micros"),
        pytest.param("250µs", 250e-6, id="micros-mu"),
        pytest.param("1500ns", 1500e-9, id="nanos"),
        pytest.param("5ms5m", 300.005, id="ms-is-not-m-then-s"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("0s", 0.0, id="zero-seconds"),
        pytest.param("007m", 420.0, id="leading-zeros"),
        pytest.param(90, 90.0, id="int-is-seconds"),
        pytest.param(2.5, 2.5, id="float-is-seconds"),
        pytest.param(0, 0.0, id="int-zero"),
        pytest.param(timedelta(hours=2), 7200.0, id="timedelta"),
    ],
)
def test_accepts(value: object, seconds: float) -> None:
    got = parse_seconds(value)
    assert type(got) is float
    assert got == seconds  # exact: the parts are summed as fractions and rounded once


@pytest.mark.parametrize(
    "value, fragment",
    [
        # min/sec, upper case and spaces were the forecaster's old grammar: Go and the CRD refuse them.
        pytest.param("10min", "'10min' is not like 90s, 15m", id="min"),
        pytest.param("90sec", "'90sec' is not like", id="sec"),
        pytest.param("5M", "'5M' is not like", id="upper-case"),
        pytest.param("5 m", "'5 m' is not like", id="inner-space"),
        pytest.param(" 5m", "' 5m' is not like", id="leading-space"),
        pytest.param("5m\n", r"'5m\\n' is not like", id="trailing-newline"),
        pytest.param("5", "'5' is not like", id="string-number-without-unit"),
        pytest.param("-5m", "'-5m' is not like", id="negative"),
        pytest.param("+5m", "'\\+5m' is not like", id="plus-sign"),
        pytest.param(".5h", "'.5h' is not like", id="no-integer-part"),
        pytest.param("5.h", "'5.h' is not like", id="no-fraction-digits"),
        pytest.param("1e3s", "'1e3s' is not like", id="exponent"),
        pytest.param("5m3", "'5m3' is not like", id="trailing-number"),
        pytest.param("m", "'m' is not like", id="unit-only"),
        pytest.param("", "'' is not like", id="empty"),
        pytest.param("1y", "'1y' is not like", id="year-not-fixed"),
        pytest.param("soon", r"expected a number and a unit \(ns, us, ms, s, m, h, d, w\)", id="names-the-form"),
        pytest.param(-1, "duration -1 must be a finite number of seconds >= 0", id="negative-number"),
        pytest.param(float("inf"), "duration inf must be a finite", id="infinite"),
        pytest.param(float("nan"), "duration nan must be a finite", id="nan"),
        pytest.param("9" * 400 + "s", "must be a finite number", id="overflows-to-inf"),
        pytest.param(timedelta(seconds=-1), "must be a finite number of seconds >= 0", id="negative-timedelta"),
        pytest.param(True, "duration True is a bool", id="bool"),
        pytest.param(None, "duration None is a NoneType", id="none"),
        pytest.param(["5m"], r"duration \['5m'\] is a list", id="list"),
    ],
)
def test_rejects(value: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_seconds(value)


@pytest.mark.parametrize(
    "value, message",
    [
        pytest.param("0", "duration '0' must be positive", id="zero-string"),
        pytest.param(0, "duration 0 must be positive", id="zero-number"),
        pytest.param("0s", "duration '0s' must be positive", id="zero-seconds"),
    ],
)
def test_timedelta_must_be_positive(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_timedelta(value)


def test_timedelta_of_a_compound() -> None:
    assert parse_timedelta("1d12h") == timedelta(days=1, hours=12)


@pytest.mark.parametrize(
    "seconds, go, label",
    [
        pytest.param(0.0, "0", "0d", id="zero"),
        pytest.param(90.0, "1m30s", "90s", id="ninety-seconds"),
        pytest.param(900.0, "15m", "15m", id="quarter-hour"),
        pytest.param(3600.0, "1h", "1h", id="hour"),
        pytest.param(5400.0, "1h30m", "90m", id="hour-and-a-half"),
        pytest.param(86400.0, "24h", "1d", id="day-go-stays-in-hours"),
        pytest.param(0.5, "500ms", "0d", id="half-second-label-truncates"),
        pytest.param(1e-5, "0.00001s", "0d", id="tiny-is-positional-not-exponent"),
        pytest.param(1 / 3, "0.3333333333333333s", "0d", id="third-keeps-every-digit"),
    ],
)
def test_formatters(seconds: float, go: str, label: str) -> None:
    assert format_go(seconds) == go
    assert format_label(seconds) == label


_CRD_PATTERN = re.compile(DURATION_PATTERN)
_PART = st.tuples(
    st.integers(min_value=0, max_value=10_000),
    st.one_of(st.none(), st.integers(min_value=0, max_value=999)),
    st.sampled_from(sorted(DURATION_UNITS)),
)


@given(st.lists(_PART, min_size=1, max_size=5))
def test_every_compound_parses_to_the_sum_of_its_parts(parts: list[tuple[int, int | None, str]]) -> None:
    text = "".join(f"{whole}{'' if frac is None else f'.{frac}'}{unit}" for whole, frac, unit in parts)
    expected = sum(Fraction(f"{whole}{'' if frac is None else f'.{frac}'}") * DURATION_UNITS[unit]
                   for whole, frac, unit in parts)
    assert _CRD_PATTERN.fullmatch(text)
    assert parse_seconds(text) == float(expected)  # exact: one rounding of the exact sum


@given(st.text(alphabet="0123456789.smhdwnuµ -+eMS", max_size=12))
def test_the_crd_pattern_accepts_exactly_what_the_parser_accepts(text: str) -> None:
    """The API server checks the pattern, the controller the parser: they must not disagree."""
    try:
        parse_seconds(text)
        parsed = True
    except ValueError as error:
        parsed = "must be a finite" in str(error)  # the pattern matched; only the value overflowed
    assert parsed == bool(_CRD_PATTERN.fullmatch(text)), text


@given(st.integers(min_value=0, max_value=10**12))
def test_whole_seconds_round_trip_through_both_formatters(seconds: int) -> None:
    assert parse_seconds(format_go(seconds)) == seconds
    assert parse_seconds(format_label(seconds)) == seconds


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_any_float_round_trips_through_the_go_formatter(seconds: float) -> None:
    text = format_go(seconds)
    assert _CRD_PATTERN.fullmatch(text), text
    assert parse_seconds(text) == seconds, text


@given(st.integers(min_value=0, max_value=10**9))
def test_milliseconds_are_written_as_milliseconds(millis: int) -> None:
    seconds = parse_seconds(f"{millis}ms")
    assert parse_seconds(format_go(seconds)) == seconds
    if millis % 1000:
        assert format_go(seconds) == f"{millis}ms"
