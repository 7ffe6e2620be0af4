"""Series preparation: rates per second, resampling that keeps gaps missing, bins validated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecaster.series import (
    bin_seconds,
    format_duration,
    native_bin_seconds,
    observed_fraction,
    parse_duration,
    resample_rate,
    step_seconds,
    to_rate,
)

NAN = np.nan


def trace(values, step: int = 60, start: str = "2025-01-05T16:00:00Z", column: str = "requests") -> pd.DataFrame:
    index = pd.date_range(start, periods=len(values), freq=f"{step}s", name="timestamp")
    return pd.DataFrame({column: np.asarray(values, dtype="float64")}, index=index)


@pytest.mark.parametrize(
    "counts, step, bin, expected",
    [
        pytest.param([60, 120, 180], 60, None, [1, 2, 3], id="per-minute-counts-to-per-second"),
        pytest.param([600, 1200], 600, None, [1, 2], id="ten-minute-counts"),
        pytest.param([60, 120, 180, 240, 300, 360, 420, 480, 540, 600], 60, "5m", [3, 8], id="mean-of-the-bin"),
        pytest.param([60, NAN, 180, NAN, NAN, NAN, NAN, NAN, NAN, NAN], 60, "5m", [2, NAN],
                     id="partial-bin-keeps-observed-rate-empty-bin-stays-nan"),
        pytest.param([NAN, NAN, 120, 120], 60, "2m", [NAN, 2], id="wholly-missing-bin-is-nan-not-zero"),
        pytest.param([0, 0, 0, 0], 60, "2m", [0, 0], id="real-zero-stays-zero"),
    ],
)
def test_to_rate(counts, step, bin, expected) -> None:
    rate = to_rate(trace(counts, step), "requests", bin)
    np.testing.assert_allclose(rate.to_numpy(), expected)
    assert rate.name == "requests"
    assert rate.dtype == np.float64
    assert step_seconds(rate) == (step if bin is None else parse_duration(bin).total_seconds())


def test_resample_aligns_to_the_epoch_not_to_the_first_row() -> None:
    # A trace that starts at :07 still bins at :00, :10 ... so every trace shares one grid.
    rate = to_rate(trace([60] * 20, start="2025-01-05T16:07:00Z"), "requests", "10m")
    assert [t.minute for t in rate.index] == [0, 10, 20]
    assert rate.index.freq == pd.Timedelta(minutes=10)


def test_to_rate_refuses_a_finer_bin_and_an_unknown_signal() -> None:
    frame = trace([600, 600], step=600)
    with pytest.raises(ValueError, match="finer than the trace's own 600s"):
        to_rate(frame, "requests", "5m")
    with pytest.raises(KeyError, match="signal 'prompt_tokens' not in trace"):
        to_rate(frame, "prompt_tokens")


@pytest.mark.parametrize(
    "bin, seconds",
    [
        pytest.param("1m", 60, id="1m"),
        pytest.param("5m", 300, id="5m"),
        pytest.param("10m", 600, id="10m"),
        pytest.param("30m", 1800, id="30m"),
        pytest.param("1h", 3600, id="1h"),
        pytest.param(600, 600, id="int-seconds"),
    ],
)
def test_supported_bins(bin, seconds) -> None:
    assert bin_seconds(bin) == seconds


@pytest.mark.parametrize(
    "bin, fragment",
    [
        pytest.param("7m", "not supported", id="unsupported"),
        pytest.param("2h", "not supported", id="too-coarse"),
        pytest.param("10 parsecs", "is not like", id="garbage"),
        pytest.param("-5m", "is not like", id="negative-text"),
        # The one grammar (forecaster.contract.durations) is Go's: no "min", no upper case.
        pytest.param("10min", "'10min' is not like 90s, 15m", id="min-spelling"),
        pytest.param("10M", "'10M' is not like", id="upper-case"),
        pytest.param(0, "must be positive", id="zero"),
    ],
)
def test_bad_bins(bin, fragment) -> None:
    with pytest.raises(ValueError, match=fragment):
        bin_seconds(bin)


@pytest.mark.parametrize("seconds, text", [(90, "90s"), (900, "15m"), (7200, "2h"), (86400, "1d")])
def test_format_and_parse_duration(seconds, text) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text).total_seconds() == seconds


def test_native_bin_seconds_whatever_the_index_unit() -> None:
    # pandas 3 parses strings to microseconds; the bin must not come out 1000x off.
    index = pd.DatetimeIndex(pd.to_datetime(["2025-01-05T16:00:00Z", "2025-01-05T16:10:00Z"], utc=True))
    for unit in ("s", "ms", "us", "ns"):
        assert native_bin_seconds(index.as_unit(unit)) == 600


@settings(max_examples=50)
@given(
    st.lists(st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False)), min_size=2, max_size=120),
    st.sampled_from([300, 600, 1800, 3600]),
)
def test_resampling_never_invents_or_loses_data(values, seconds) -> None:
    counts = [NAN if v is None else v for v in values]
    rate = to_rate(trace(counts), "requests", None)
    out = resample_rate(rate, seconds)
    per = seconds // 60
    # A target bin is NaN exactly when every source bin inside it is NaN (never zero-filled) ...
    grid = pd.Series(rate.to_numpy(), index=rate.index).groupby(rate.index.floor(f"{seconds}s"))
    expected = grid.mean()
    np.testing.assert_allclose(out.reindex(expected.index).to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert out.isna().sum() <= -(-len(counts) // per) + 1
    # ... and observed rates stay inside the range of what was observed.
    observed = rate.dropna()
    if len(observed):
        assert out.min() >= observed.min() - 1e-9 and out.max() <= observed.max() + 1e-9
    assert 0.0 <= observed_fraction(out) <= 1.0
