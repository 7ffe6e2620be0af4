"""Trace sources: every bad input names its file, line and column; good files load fast and exact."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forecaster.errors import TraceFormatError
from forecaster.sources import (
    SHIPPED_TRACE_NATIVE_BIN_SECONDS,
    TraceNotFound,
    _read_csv_precise,
    _to_grid,
    infer_native_bin_seconds,
    native_bin_of,
    parse_native,
    read_trace,
    shipped_trace_path,
)

SHARED_TRACES = (Path(__file__).parents[2] / ".." / "shared" / "traces").resolve()
needs_shared = pytest.mark.skipif(
    not SHARED_TRACES.is_dir(),
    reason=f"the team's trace collection {SHARED_TRACES} is absent (a user's clone has none)",
)

H = "timestamp,requests,prompt_tokens\n"
T0 = "2025-01-05T16:00:00Z"
T1 = "2025-01-05T16:01:00Z"
T2 = "2025-01-05T16:02:00Z"


def write(tmp_path: Path, text: str, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---- bad input: one table, every case names where and what --------------------------------------


@pytest.mark.parametrize(
    "text, line, column, fragment",
    [
        pytest.param("", 1, None, "is empty", id="empty-file"),
        pytest.param("\n\n", 1, None, "is empty", id="blank-lines-only"),
        pytest.param(H, 2, None, "no data rows", id="header-only"),
        pytest.param("time,requests\n" + T0 + ",1\n", 1, "timestamp", "missing required column 'timestamp'",
                     id="no-timestamp-column"),
        pytest.param("timestamp,prompt_tokens\n" + T0 + ",1\n", 1, "requests", "missing required column 'requests'",
                     id="no-requests-column"),
        pytest.param(H + f"{T0},1,2\nyesterday,1,2\n", 3, "timestamp", "unparsable timestamp 'yesterday'",
                     id="unparsable-timestamp"),
        pytest.param(H + f"{T0},1,2\n2025-13-45T99:00:00Z,1,2\n", 3, "timestamp", "unparsable timestamp",
                     id="impossible-date"),
        pytest.param(H + f"{T0},1,2\n,1,2\n", 3, "timestamp", "empty timestamp", id="empty-timestamp"),
        pytest.param(H + f"{T0},1,2\n\n{T2},1,2\n", 3, "timestamp", "empty timestamp", id="blank-line-inside"),
        pytest.param(H + f"{T0},1,2\n{T0},1,2\n", 3, "timestamp", "duplicated timestamp", id="duplicated-timestamp"),
        pytest.param(H + f"{T1},1,2\n{T0},1,2\n", 3, "timestamp", "decreasing timestamp", id="decreasing-timestamp"),
        pytest.param(H + f"{T0},1,2\n{T1},-1,2\n", 3, "requests", "negative value -1", id="negative-requests"),
        pytest.param(H + f"{T0},1,2\n{T1},1,-0.5\n", 3, "prompt_tokens", "negative value -0.5", id="negative-tokens"),
        pytest.param(H + f"{T0},1,2\n{T1},abc,2\n", 3, "requests", "non-numeric value 'abc'", id="non-numeric"),
        pytest.param(H + f"{T0},1,2\n{T1},1,2k\n", 3, "prompt_tokens", "non-numeric value '2k'",
                     id="non-numeric-suffix"),
        pytest.param(H + f"{T0},1,2\n{T1},inf,2\n", 3, "requests", "not a finite number", id="infinite"),
        pytest.param(H + f"{T0},1,2\n{T1},1,2,9\n", 3, None, "has 4 fields where the header has 3", id="extra-field"),
        pytest.param(H + f"{T0},1,2\n{T1},1,2\n2025-01-05T16:01:30Z,1,2\n2025-01-05T16:03:00Z,1,2\n"
                     "2025-01-05T16:04:00Z,1,2\n", 4, "timestamp", "off the 60 s grid", id="off-grid-row"),
        pytest.param(H + f"{T0},1,2\n", None, None, "at least two", id="one-row"),
        pytest.param(H + f"{T0},1,2\n2025-01-05T16:00:00.5Z,1,2\n", None, None, "whole number of seconds",
                     id="sub-second-bin"),
        # The first bad row wins, whatever kind of problem comes later.
        pytest.param(H + f"{T0},1,2\n{T1},-3,2\n{T0},x,2\n", 3, "requests", "negative value -3",
                     id="first-problem-wins"),
    ],
)
def test_bad_csv_names_line_and_column(tmp_path, text, line, column, fragment) -> None:
    path = write(tmp_path, text)
    with pytest.raises(TraceFormatError) as info:
        read_trace(path)
    error = info.value
    assert fragment in str(error)
    assert error.path == str(path) and str(path) in str(error)
    assert error.line == line
    assert error.column == column


def test_missing_file_is_a_file_not_found_error_naming_it(tmp_path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError) as info:
        read_trace(path)
    assert isinstance(info.value, TraceNotFound)
    assert str(path) in str(info.value) and info.value.filename == str(path)


@pytest.mark.parametrize(
    "name, fragment",
    [
        pytest.param("trace.txt", "unsupported file type", id="unknown-suffix"),
        pytest.param("trace.json", "unsupported file type", id="json"),
    ],
)
def test_unsupported_suffix(tmp_path, name, fragment) -> None:
    path = write(tmp_path, H + f"{T0},1,2\n{T1},1,2\n", name)
    with pytest.raises(TraceFormatError, match=fragment):
        read_trace(path)


def test_a_csv_gz_that_is_not_gzip(tmp_path) -> None:
    path = write(tmp_path, H + f"{T0},1,2\n{T1},1,2\n", "trace.csv.gz")
    with pytest.raises(TraceFormatError, match="cannot be read as text") as info:
        read_trace(path)
    assert str(path) in str(info.value)


def test_a_truncated_gzip(tmp_path) -> None:
    path = tmp_path / "trace.csv.gz"
    whole = gzip.compress((H + "".join(f"2025-01-05T16:{m:02d}:00Z,{m},1\n" for m in range(60))).encode())
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(TraceFormatError, match="cannot be read"):
        read_trace(path)


def test_a_file_that_is_not_utf8(tmp_path) -> None:
    path = tmp_path / "trace.csv"
    path.write_bytes(H.encode() + b"2025-01-05T16:00:00Z,1,\xff\xfe\n")
    with pytest.raises(TraceFormatError, match=str(path)):
        read_trace(path)


def test_directory_is_refused(tmp_path) -> None:
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(TraceFormatError, match="is a directory"):
        read_trace(tmp_path / "dir.csv")


# ---- good input: the trace frame -----------------------------------------------------------------


def test_gaps_stay_nan_and_missing_rows_are_reindexed(tmp_path) -> None:
    text = H + f"{T0},1,2\n{T1},,3\n2025-01-05T16:03:00Z,4,nan\n2025-01-05T16:04:00Z,5,6\n"
    frame = read_trace(write(tmp_path, text))
    assert list(frame.columns) == ["requests", "prompt_tokens"]
    assert frame.index.name == "timestamp"
    assert str(frame.index.tz) == "UTC"
    assert frame.index.freq == pd.Timedelta(seconds=60)
    assert all(dtype == np.float64 for dtype in frame.dtypes)
    np.testing.assert_array_equal(frame["requests"].to_numpy(), [1, np.nan, np.nan, 4, 5])
    np.testing.assert_array_equal(frame["prompt_tokens"].to_numpy(), [2, 3, np.nan, np.nan, 6])


@pytest.mark.parametrize(
    "stamps, first",
    [
        pytest.param(("2025-01-06T00:00:00+08:00", "2025-01-06T00:01:00+08:00"), "2025-01-05T16:00:00+00:00",
                     id="offset-converted"),
        pytest.param(("2025-01-05 16:00:00", "2025-01-05 16:01:00"), "2025-01-05T16:00:00+00:00",
                     id="naive-read-as-utc"),
        pytest.param(("2025-01-05T16:00:00.000Z", "2025-01-05T16:01:00.000Z"), "2025-01-05T16:00:00+00:00",
                     id="milliseconds"),
    ],
)
def test_timestamp_spellings(tmp_path, stamps, first) -> None:
    frame = read_trace(write(tmp_path, H + f"{stamps[0]},1,2\n{stamps[1]},3,4\n"))
    assert frame.index[0].isoformat() == first
    assert len(frame) == 2


def test_extra_columns_are_ignored_and_whitespace_tolerated(tmp_path) -> None:
    text = "note, requests ,timestamp,output_tokens\nx, 1 ,2025-01-05T16:00:00Z,7\ny,2,2025-01-05T16:05:00Z, 8\n"
    frame = read_trace(write(tmp_path, text))
    assert list(frame.columns) == ["requests", "output_tokens"]
    assert frame.index.freq == pd.Timedelta(minutes=5)
    np.testing.assert_array_equal(frame.to_numpy(), [[1, 7], [2, 8]])


def test_trailing_blank_lines_are_fine(tmp_path) -> None:
    frame = read_trace(write(tmp_path, H + f"{T0},1,2\n{T1},3,4\n\n\n"))
    assert len(frame) == 2


def test_gzip_csv(tmp_path) -> None:
    path = tmp_path / "trace.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(H + f"{T0},1,2\n{T1},3,4\n")
    frame = read_trace(path)
    np.testing.assert_array_equal(frame["requests"].to_numpy(), [1, 3])


def test_gzip_csv_errors_name_the_line(tmp_path) -> None:
    path = tmp_path / "trace.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(H + f"{T0},1,2\n{T1},-1,4\n")
    with pytest.raises(TraceFormatError) as info:
        read_trace(path)
    assert (info.value.line, info.value.column) == (3, "requests")


# ---- Parquet -------------------------------------------------------------------------------------


def _parquet(tmp_path: Path, frame: pd.DataFrame, name: str = "trace.parquet") -> Path:
    path = tmp_path / name
    frame.to_parquet(path, index=frame.index.name == "timestamp")
    return path


@pytest.mark.parametrize(
    "timestamps",
    [
        pytest.param(pd.date_range(T0, periods=3, freq="60s", tz="UTC"), id="aware-datetimes"),
        pytest.param(pd.date_range("2025-01-05 16:00", periods=3, freq="60s"), id="naive-datetimes"),
        pytest.param([T0, T1, T2], id="iso-strings"),
    ],
)
def test_parquet_loads(tmp_path, timestamps) -> None:
    frame = pd.DataFrame({"timestamp": timestamps, "requests": [1.0, None, 3.0], "extra": ["a", "b", "c"]})
    out = read_trace(_parquet(tmp_path, frame))
    assert out.index[0] == pd.Timestamp(T0)
    assert list(out.columns) == ["requests"]
    np.testing.assert_array_equal(out["requests"].to_numpy(), [1, np.nan, 3])


def test_parquet_with_timestamp_index(tmp_path) -> None:
    frame = pd.DataFrame(
        {"requests": [1, 2, 5], "output_tokens": [3, 4, 6]},
        index=pd.DatetimeIndex([T0, T1, "2025-01-05T16:03:00Z"], name="timestamp"),
    )
    out = read_trace(_parquet(tmp_path, frame))
    assert list(out.columns) == ["requests", "output_tokens"]
    np.testing.assert_array_equal(out["requests"].to_numpy(), [1, 2, np.nan, 5])


@pytest.mark.parametrize(
    "frame, column, fragment",
    [
        pytest.param(pd.DataFrame({"time": [T0, T1], "requests": [1, 2]}),
                     "timestamp", "missing required column", id="no-timestamp"),
        pytest.param(pd.DataFrame({"timestamp": [T0, T1], "requests": [1, -2]}),
                     "requests", "row 2: negative value -2", id="negative"),
        pytest.param(pd.DataFrame({"timestamp": [T0, T0], "requests": [1, 2]}),
                     "timestamp", "row 2: duplicated timestamp", id="duplicated"),
        pytest.param(pd.DataFrame({"timestamp": [T0, "soon"], "requests": [1, 2]}),
                     "timestamp", "row 2: unparsable timestamp 'soon'", id="unparsable"),
        pytest.param(pd.DataFrame({"timestamp": [T0, T1], "requests": ["1", "x"]}),
                     "requests", "row 2: non-numeric value 'x'", id="non-numeric-text"),
        pytest.param(pd.DataFrame({"timestamp": [T0, T1], "requests": [True, False]}),
                     "requests", "boolean column", id="boolean"),
    ],
)
def test_bad_parquet(tmp_path, frame, column, fragment) -> None:
    with pytest.raises(TraceFormatError) as info:
        read_trace(_parquet(tmp_path, frame))
    assert fragment in str(info.value)
    assert info.value.column == column


def test_corrupt_parquet(tmp_path) -> None:
    path = tmp_path / "trace.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(TraceFormatError, match="not a readable Parquet file"):
        read_trace(path)


# ---- properties: the fast and the precise path agree; a frame round-trips ------------------------

cell = st.one_of(st.none(), st.integers(0, 10**6).map(float),
                 st.floats(0, 1e6, allow_nan=False).map(lambda x: round(x, 3)))


@st.composite
def traces(draw) -> pd.DataFrame:
    n = draw(st.integers(2, 40))
    step = draw(st.sampled_from([1, 60, 300, 600]))
    present = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    present[0] = present[-1] = True  # the file's span is first to last row
    index = pd.date_range("2024-02-28T23:00:00Z", periods=n, freq=f"{step}s", name="timestamp", unit="ns")
    columns = ["requests"] + draw(st.sampled_from([[], ["prompt_tokens", "output_tokens"], ["output_tokens"]]))
    data = {c: [np.nan if v is None else v for v in draw(st.lists(cell, min_size=n, max_size=n))] for c in columns}
    frame = pd.DataFrame(data, index=index, dtype="float64")
    frame.index.freq = pd.tseries.frequencies.to_offset(f"{step}s")
    # Rows for missing timestamps are dropped from the file; their bins must come back as NaN.
    frame.loc[~np.array(present)] = np.nan
    spacings = np.sort(np.diff(np.flatnonzero(present)))
    if spacings[(spacings.size - 1) // 2] != 1:
        # The grid is the median spacing: with most rows missing it would be coarser, and the file
        # would rightly be refused as off-grid. Keep such rows, as empty cells.
        present = [True] * n
    return frame, present


@settings(max_examples=30,
          suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.function_scoped_fixture])
@given(traces())
def test_csv_round_trip_and_paths_agree(tmp_path, case) -> None:
    frame, present = case
    stored = frame[np.array(present)]
    path = tmp_path / "t.csv"
    stored.to_csv(path, date_format="%Y-%m-%dT%H:%M:%SZ", na_rep="")
    loaded = read_trace(path)
    pd.testing.assert_frame_equal(loaded, frame, check_freq=True)
    stamps, values = _read_csv_precise(path, list(frame.columns))
    pd.testing.assert_frame_equal(_to_grid(path, stamps, values), loaded)


# ---- the shipped trace and native bins -----------------------------------------------------------


def test_shipped_trace_loads() -> None:
    path = shipped_trace_path()
    frame = read_trace(path)
    assert len(frame) == 20160  # 14 days of minutes
    assert frame.index[-1] - frame.index[0] == pd.Timedelta(days=14) - pd.Timedelta(minutes=1)
    assert list(frame.columns) == ["requests", "prompt_tokens", "output_tokens"]
    assert frame["requests"].isna().sum() == 370  # the collection gaps stay gaps
    assert (frame.dropna() >= 0).all().all()
    assert native_bin_of(path) == SHIPPED_TRACE_NATIVE_BIN_SECONDS == 600
    assert infer_native_bin_seconds(frame) == 600  # the values agree with the provenance note


@pytest.mark.parametrize(
    "text, seconds",
    [
        pytest.param("10 min", 600, id="10-min"),
        pytest.param("5 min", 300, id="5-min"),
        pytest.param("30 min", 1800, id="30-min"),
        pytest.param("1 h", 3600, id="1-h"),
        pytest.param("1 s", 60, id="1-s-is-exact-at-a-minute"),
        pytest.param("30-min counts", 1800, id="hyphenated"),
        pytest.param("5-min counts", 300, id="hyphenated-5"),
        pytest.param("10-min windows per client (rate req/s); token PDFs per 6-h window", 600, id="servegen"),
        pytest.param("per-request (100 ns timestamps)", 60, id="per-request-not-100ns"),
        pytest.param("per-request (ms, relative)", 60, id="per-request-ms"),
        pytest.param("per-second request counts", 60, id="per-second"),
        pytest.param("per-minute request counts", 60, id="per-minute"),
        pytest.param("unknown", None, id="unknown"),
    ],
)
def test_parse_native(text, seconds) -> None:
    assert parse_native(text) == seconds


def _frame(values, step: int = 60) -> pd.DataFrame:
    index = pd.date_range(T0, periods=len(values), freq=f"{step}s", name="timestamp")
    return pd.DataFrame({"requests": np.asarray(values, dtype="float64")}, index=index)


def _held(levels, k: int, offset: int = 0) -> list[float]:
    """Each level repeated k times (a source binned at k rows written at one row a bin)."""
    out = [float(v) for v in np.repeat(levels, k)]
    return out[offset:]


@pytest.mark.parametrize(
    "values, step, expected",
    [
        pytest.param(_held(np.arange(1, 30), 10), 60, 600, id="runs-of-10"),
        pytest.param(_held(np.arange(1, 30), 10, offset=4), 60, 600, id="runs-of-10-not-aligned"),
        pytest.param(_held([1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10], 5), 60, 300, id="two-equal-windows-merge"),
        pytest.param(_held(np.arange(1, 30), 30)[:100] + [np.nan] * 25 + _held(np.arange(1, 30), 30)[125:400], 60, 1800,
                     id="runs-across-a-gap"),
        pytest.param(list(np.arange(50.0)), 60, 60, id="no-repeats-is-the-row-bin"),
        pytest.param(list(np.arange(50.0)), 1, 1, id="one-second-rows"),
        pytest.param([5.0] * 50, 60, None, id="constant-cannot-tell"),
        pytest.param([1.0, 2.0], 60, None, id="too-short"),
    ],
)
def test_infer_native_bin(values, step, expected) -> None:
    assert infer_native_bin_seconds(_frame(values, step)) == expected


def test_sparse_counts_with_zero_runs_are_not_mistaken_for_a_coarse_bin() -> None:
    rng = np.random.default_rng(7)
    values = rng.poisson(0.7, size=2000).astype(float)  # many repeated zeros, but at no fixed phase
    assert infer_native_bin_seconds(_frame(values)) == 60


def test_native_bin_of_reads_a_manifest_beside_the_file(tmp_path) -> None:
    # Values that do not repeat: only the manifest can say the source bin is 5 minutes.
    path = tmp_path / "x_1min.csv"
    _frame(np.arange(30.0)).to_csv(path, date_format="%Y-%m-%dT%H:%M:%SZ")
    (tmp_path / "manifest.json").write_text(json.dumps([{"file": "x_1min.csv", "native": "5-min counts"}]))
    assert native_bin_of(path) == 300
    assert infer_native_bin_seconds(read_trace(path)) == 60


def test_native_bin_of_infers_without_a_manifest(tmp_path) -> None:
    path = tmp_path / "y_1min.csv"
    _frame(_held(np.arange(1, 20), 10)).to_csv(path, date_format="%Y-%m-%dT%H:%M:%SZ")
    assert native_bin_of(path) == 600
    (tmp_path / "manifest.json").write_text(json.dumps([{"file": "other.csv", "native": "5 min"}]))
    assert native_bin_of(path) == 600  # not listed: still inferred


# ---- the team's trace collection (skipped where it is absent) ------------------------------------

SHARED_FILES = sorted(p.name for p in SHARED_TRACES.glob("*_1min.csv")) if SHARED_TRACES.is_dir() else []


@needs_shared
@pytest.mark.parametrize("name", SHARED_FILES)
def test_shared_trace_loads_and_its_native_bin_is_known(name) -> None:
    path = SHARED_TRACES / name
    frame = read_trace(path)
    manifest = {e["file"]: e for e in json.loads((SHARED_TRACES / "manifest.json").read_text())}
    entry = manifest[name]
    assert len(frame) == entry["minutes"]
    assert frame.index.freq == pd.Timedelta(minutes=1)
    assert int(frame["requests"].isna().sum()) == entry["missing_minutes"]
    native = native_bin_of(path, frame)
    assert native in (60, 300, 600, 1800)
    # The values must tell the same story as the manifest.
    assert infer_native_bin_seconds(frame) == native


@needs_shared
@pytest.mark.parametrize(
    "name, expected",
    [
        pytest.param("llm_servegen_m-small_1min.csv", 600, id="servegen"),
        pytest.param("web_nab_nyc_taxi_1min.csv", 1800, id="nyc-taxi"),
        pytest.param("web_nab_twitter_aapl_1min.csv", 300, id="twitter"),
        pytest.param("web_nasa_http_1995jul_1min.csv", 60, id="nasa-per-second"),
        pytest.param("llm_azure2023_code_1min.csv", 60, id="azure-per-request"),
    ],
)
def test_shared_native_bins(name, expected) -> None:
    assert native_bin_of(SHARED_TRACES / name) == expected


@needs_shared
def test_large_csv_loads_fast() -> None:
    path = SHARED_TRACES / "web_nab_nyc_taxi_1min.csv"
    read_trace(path)  # warm the imports and the page cache
    started = time.perf_counter()
    frame = read_trace(path)
    elapsed = time.perf_counter() - started
    assert len(frame) == 309660
    assert elapsed < 2.0, f"{path.name} took {elapsed:.2f} s to load"


@needs_shared
def test_a_bad_row_at_the_end_of_a_large_file_is_located(tmp_path) -> None:
    source = SHARED_TRACES / "web_nab_nyc_taxi_1min.csv"
    path = tmp_path / "taxi.csv"
    text = source.read_text()
    rows = text.count("\n") - 1
    path.write_text(text + "2015-01-31T04:00:00Z,-5\n")
    started = time.perf_counter()
    with pytest.raises(TraceFormatError) as info:
        read_trace(path)
    assert (info.value.line, info.value.column) == (rows + 2, "requests")
    assert time.perf_counter() - started < 5.0


@settings(max_examples=25,
          suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(3, 60),
    data=st.data(),
    kind=st.sampled_from(["negative", "text", "bad-stamp", "duplicate", "earlier", "inf"]),
)
def test_one_bad_cell_anywhere_is_located(tmp_path, n, data, kind) -> None:
    row = data.draw(st.integers(1, n - 1), label="row")
    column = data.draw(st.sampled_from(["requests", "output_tokens"]), label="column")
    stamps = [f"2025-01-05T{16 + m // 60:02d}:{m % 60:02d}:00Z" for m in range(n)]
    values = {"requests": [float(i) for i in range(n)], "output_tokens": [2.0 * i for i in range(n)]}
    cells = {c: [str(v) for v in vs] for c, vs in values.items()}
    if kind == "negative":
        cells[column][row] = "-1"
    elif kind == "text":
        cells[column][row] = "n/a"
    elif kind == "inf":
        cells[column][row] = "inf"
    elif kind == "bad-stamp":
        stamps[row], column = "2025-01-05T16:xx:00Z", "timestamp"
    elif kind == "duplicate":
        stamps[row], column = stamps[row - 1], "timestamp"
    else:
        stamps[row], column = "2025-01-05T15:00:00Z", "timestamp"
    lines = ["timestamp,requests,output_tokens"] + [
        f"{stamps[i]},{cells['requests'][i]},{cells['output_tokens'][i]}" for i in range(n)
    ]
    path = tmp_path / "one_bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TraceFormatError) as info:
        read_trace(path)
    assert (info.value.line, info.value.column) == (row + 2, column), str(info.value)
