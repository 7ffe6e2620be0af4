"""Trace sources: read a request trace file into a *trace frame* (see forecaster.series).

Formats (chosen by suffix): CSV (`.csv`, `.csv.gz`) in the ../shared/traces format, and Parquet
(`.parquet`, `.pq`) with the same columns. Columns: `timestamp` (ISO 8601, UTC unless it carries an
offset; the start of the bin), `requests`, optionally `prompt_tokens` and `output_tokens`, all counts
per bin. Other columns are ignored. An empty cell (or a literal NaN) is a collection gap and stays
NaN: never zero traffic.

Validation is vectorised over the whole file, and only when something is wrong is the first bad
row located, so a clean 300k-row file loads in a fraction of a second. Errors name the file, the
line (the header is line 1, the first data row line 2; Parquet has no lines, so its messages say
"row N") and the column.

Rows may be missing (irregular spacing): the frame is reindexed onto the regular grid at the median
spacing, with NaN in the missing bins, so a gap stays a gap. A row off that grid is an error.
"""

from __future__ import annotations

import csv
import functools
import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forecaster.errors import ForecasterError, TraceFormatError

__all__ = [
    "TRACE_COLUMNS",
    "REQUIRED_COLUMNS",
    "SHIPPED_TRACE_NATIVE_BIN_SECONDS",
    "TraceNotFound",
    "read_trace",
    "shipped_trace_path",
    "native_bin_of",
    "parse_native",
    "infer_native_bin_seconds",
    "describe_frame",
]

REQUIRED_COLUMNS: tuple[str, ...] = ("timestamp", "requests")
VALUE_COLUMNS: tuple[str, ...] = ("requests", "prompt_tokens", "output_tokens")
TRACE_COLUMNS: tuple[str, ...] = ("timestamp", *VALUE_COLUMNS)

# ServeGen publishes 10-minute windows; the shipped 1-minute file repeats each window's average.
SHIPPED_TRACE_NATIVE_BIN_SECONDS = 600
_SHIPPED_TRACE = "servegen_m-small_1min.csv"

# Cells read as a gap besides the empty cell. Arrow's float parser reads these as NaN, so the
# precise (pandas) path accepts the same tokens and both paths agree on every file.
_GAP_TOKENS = frozenset({"", "nan", "-nan", "+nan"})

# A reindex onto the grid allocates every bin: refuse a file whose span would need absurdly many
# (one stray timestamp years away), rather than exhausting memory.
MAX_GRID_BINS = 50_000_000

_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")


class TraceNotFound(ForecasterError, FileNotFoundError):
    """The trace file does not exist (a FileNotFoundError, so `except FileNotFoundError` catches it)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        super().__init__(f"trace file {self.path} does not exist")
        self.filename = self.path  # what OSError handlers conventionally read

    def __str__(self) -> str:  # FileNotFoundError's own __str__ wants (errno, strerror) arguments
        return f"trace file {self.path} does not exist"


# ---- reading ------------------------------------------------------------------------------------


def read_trace(path: str | Path) -> pd.DataFrame:
    """Read a trace file into a trace frame: UTC DatetimeIndex named `timestamp` on a regular grid
    (freq set), float64 columns `requests` [, `prompt_tokens`, `output_tokens`], counts per bin,
    NaN for gaps. Raises TraceNotFound or TraceFormatError (file, line, column, what is wrong)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise TraceNotFound(path)
    if path.is_dir():
        raise TraceFormatError(str(path), "is a directory, not a trace file")
    name = path.name.lower()
    if name.endswith(_CSV_SUFFIXES):
        stamps, values = _read_csv(path)
    elif name.endswith(_PARQUET_SUFFIXES):
        stamps, values = _read_parquet(path)
    else:
        raise TraceFormatError(
            str(path),
            f"unsupported file type; use one of {', '.join(_CSV_SUFFIXES + _PARQUET_SUFFIXES)}",
        )
    return _to_grid(path, stamps, values)


@dataclass(frozen=True)
class _Problem:
    """One bad cell: its 0-based data row, the column, and what is wrong."""

    row: int
    column: str | None
    message: str


class _Locator:
    """Turns a 0-based data row into the error's location (CSV: a line; Parquet: a row)."""

    def __init__(self, path: Path, kind: str):
        self.path, self.kind = path, kind

    def error(self, problem: _Problem) -> TraceFormatError:
        if self.kind == "csv":
            # The header is line 1, so data row 0 is line 2.
            return TraceFormatError(str(self.path), problem.message, line=problem.row + 2, column=problem.column)
        return TraceFormatError(str(self.path), f"row {problem.row + 1}: {problem.message}", column=problem.column)


def _csv_header(path: Path) -> list[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise TraceFormatError(str(path), f"cannot be read as text: {exc}") from exc
    if not first.strip():
        raise TraceFormatError(str(path), "is empty (expected a header line with timestamp,requests)", line=1)
    return [c.strip() for c in next(csv.reader([first]))]


def _check_header(path: Path, columns: list[str], kind: str) -> list[str]:
    """The known value columns present, in canonical order; a missing required column is an error."""
    for required in REQUIRED_COLUMNS:
        if required not in columns:
            where = "header (line 1)" if kind == "csv" else "columns"
            raise TraceFormatError(
                str(path),
                f"missing required column {required!r} in the {where}; found {', '.join(map(repr, columns)) or 'none'}",
                line=1 if kind == "csv" else None,
                column=required,
            )
    return [c for c in VALUE_COLUMNS if c in columns]


def _read_csv(path: Path) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    header = _csv_header(path)
    present = _check_header(path, header, "csv")
    fast = _read_csv_fast(path, present)
    if fast is not None:
        return fast
    return _read_csv_precise(path, present)


def _read_csv_fast(path: Path, present: list[str]) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]] | None:
    """Arrow's multithreaded CSV reader with typed columns; None when anything at all is off.

    Any parse error, null timestamp, negative, non-finite or out-of-order value sends the file to
    the precise path, which finds and names the first bad cell. Clean files never get there.
    """
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:  # pyarrow is in the forecaster extra; without it the precise path still works
        return None
    types = {"timestamp": pa.timestamp("ns", tz="UTC"), **{c: pa.float64() for c in present}}
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding="utf8"),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                include_columns=["timestamp", *present],
                null_values=[""],
                strings_can_be_null=False,
            ),
        )
    except Exception:  # noqa: BLE001 - every failure is re-diagnosed precisely below
        return None
    if table.num_rows == 0 or table.column("timestamp").null_count:
        return None
    stamps = table.column("timestamp").to_numpy()
    if (np.diff(stamps.view("int64")) <= 0).any():
        return None
    values = {c: table.column(c).to_numpy(zero_copy_only=False).astype("float64", copy=False) for c in present}
    for array in values.values():
        finite = array[~np.isnan(array)]
        if (finite < 0).any() or np.isinf(finite).any():
            return None
    return pd.DatetimeIndex(stamps, tz="UTC"), values


def _read_csv_precise(path: Path, present: list[str]) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    """Read every cell as text (blank lines kept, so row i is line i + 2) and name the first bad one."""
    try:
        raw = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            encoding="utf-8-sig",
        )
    except pd.errors.EmptyDataError as exc:
        raise TraceFormatError(str(path), "is empty (expected a header line with timestamp,requests)", line=1) from exc
    except pd.errors.ParserError as exc:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if match:
            expected, line, saw = match.groups()
            raise TraceFormatError(
                str(path), f"has {saw} fields where the header has {expected}", line=int(line)
            ) from exc
        raise TraceFormatError(str(path), f"is not valid CSV: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise TraceFormatError(str(path), f"is not UTF-8 text: {exc}") from exc
    except (OSError, EOFError) as exc:  # a truncated or corrupt .gz, an I/O error
        raise TraceFormatError(str(path), f"cannot be read: {type(exc).__name__}: {exc}") from exc
    # No usecols: with it pandas silently drops a row's extra fields instead of reporting them.
    raw.columns = [str(c).strip() for c in raw.columns]
    raw = raw[["timestamp", *present]]
    # Blank lines at the very end are common (an editor's extra newline) and carry nothing.
    blank = raw.isna().all(axis=1) | (raw.fillna("").apply(lambda s: s.str.strip()) == "").all(axis=1)
    keep = len(raw)
    while keep and blank.iat[keep - 1]:
        keep -= 1
    raw = raw.iloc[:keep]
    locator = _Locator(path, "csv")
    if raw.empty:
        raise TraceFormatError(str(path), "has a header but no data rows", line=2)
    stamps, problems = _parse_stamps(raw["timestamp"])
    values: dict[str, np.ndarray] = {}
    for column in present:
        values[column], column_problems = _parse_numbers(raw[column], column)
        problems.extend(column_problems)
    problems.extend(_order_problems(stamps))
    if problems:
        raise locator.error(min(problems, key=lambda p: p.row))
    return stamps, values


def _parse_stamps(text: pd.Series) -> tuple[pd.DatetimeIndex, list[_Problem]]:
    cells = text.fillna("").astype(str).str.strip()
    parsed = pd.to_datetime(cells.where(cells != ""), utc=True, format="ISO8601", errors="coerce")
    problems: list[_Problem] = []
    empty = np.flatnonzero((cells == "").to_numpy())
    if empty.size:
        problems.append(_Problem(int(empty[0]), "timestamp", "empty timestamp (every row needs one)"))
    bad = np.flatnonzero((parsed.isna() & (cells != "")).to_numpy())
    if bad.size:
        cell = cells.iat[int(bad[0])]
        problems.append(
            _Problem(int(bad[0]), "timestamp",
                     f"unparsable timestamp {cell!r} (expected ISO 8601, e.g. 2025-01-05T16:00:00Z)")
        )
    return pd.DatetimeIndex(parsed).as_unit("ns"), problems


def _parse_numbers(text: pd.Series, column: str) -> tuple[np.ndarray, list[_Problem]]:
    cells = text.fillna("").astype(str).str.strip()
    gap = cells.str.lower().isin(_GAP_TOKENS)
    numbers = pd.to_numeric(cells.where(~gap), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    problems: list[_Problem] = []
    bad = np.flatnonzero((~gap).to_numpy() & np.isnan(numbers))
    if bad.size:
        problems.append(_Problem(int(bad[0]), column, f"non-numeric value {cells.iat[int(bad[0])]!r}"))
    problems.extend(_value_problems(numbers, column))
    return numbers, problems


def _value_problems(numbers: np.ndarray, column: str) -> list[_Problem]:
    problems: list[_Problem] = []
    with np.errstate(invalid="ignore"):
        inf = np.flatnonzero(np.isinf(numbers))
        negative = np.flatnonzero(numbers < 0)
    if inf.size:
        problems.append(_Problem(int(inf[0]), column, f"value {numbers[inf[0]]} is not a finite number"))
    finite_negative = [i for i in negative[:2] if np.isfinite(numbers[i])]
    if finite_negative:
        i = int(finite_negative[0])
        problems.append(_Problem(i, column, f"negative value {numbers[i]:g} (counts per bin cannot be negative)"))
    return problems


def _order_problems(stamps: pd.DatetimeIndex) -> list[_Problem]:
    """The first row whose timestamp is not after the previous one (NaT rows are reported elsewhere)."""
    ns = stamps.asi8.astype("float64")
    ns[np.asarray(stamps.isna())] = np.nan
    # Compare with the last *valid* previous stamp, so one bad cell does not also read as disorder.
    previous = pd.Series(ns).ffill().shift(1).to_numpy()
    with np.errstate(invalid="ignore"):
        step = ns - previous
    bad = np.flatnonzero(step <= 0)
    if not bad.size:
        return []
    i = int(bad[0])
    before = pd.Timestamp(int(previous[i]), tz="UTC")
    kind = "duplicated" if step[i] == 0 else "decreasing"
    return [
        _Problem(i, "timestamp", f"{kind} timestamp {stamps[i].isoformat()} (the row before has {before.isoformat()}); "
                 "timestamps must strictly increase")
    ]


def _read_parquet(path: Path) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - arrow raises many types for a bad file
        raise TraceFormatError(str(path), f"is not a readable Parquet file: {exc}") from exc
    if "timestamp" not in frame.columns and frame.index.name == "timestamp":
        frame = frame.reset_index()  # written by DataFrame.to_parquet with the timestamp as index
    present = _check_header(path, [str(c) for c in frame.columns], "parquet")
    locator = _Locator(path, "parquet")
    if frame.empty:
        raise TraceFormatError(str(path), "has no data rows")
    frame = frame.reset_index(drop=True)
    problems: list[_Problem] = []
    column = frame["timestamp"]
    if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(column.dtype):
        # A naive datetime column is taken as UTC, as the CSV format's timestamps are.
        parsed = pd.to_datetime(column, utc=True)
        stamps = pd.DatetimeIndex(parsed).as_unit("ns")
        missing = np.flatnonzero(np.asarray(stamps.isna()))
        if missing.size:
            problems.append(_Problem(int(missing[0]), "timestamp", "missing timestamp (every row needs one)"))
    else:
        stamps, stamp_problems = _parse_stamps(column.astype("string").astype(object))
        problems.extend(stamp_problems)
    values: dict[str, np.ndarray] = {}
    for name in present:
        col = frame[name]
        if pd.api.types.is_bool_dtype(col.dtype):
            problems.append(_Problem(0, name, f"boolean column, expected numbers (dtype {col.dtype})"))
            values[name] = np.full(len(col), np.nan)
        elif pd.api.types.is_numeric_dtype(col.dtype):
            values[name] = col.to_numpy(dtype="float64", na_value=np.nan)
            problems.extend(_value_problems(values[name], name))
        else:
            as_text = col.astype("string").astype(object).where(col.notna(), "")
            values[name], column_problems = _parse_numbers(as_text, name)
            problems.extend(column_problems)
    problems.extend(_order_problems(stamps))
    if problems:
        raise locator.error(min(problems, key=lambda p: p.row))
    return stamps, values


def _to_grid(path: Path, stamps: pd.DatetimeIndex, values: dict[str, np.ndarray]) -> pd.DataFrame:
    """Place the rows on the regular grid at the median spacing; missing bins become NaN rows."""
    if len(stamps) < 2:
        raise TraceFormatError(
            str(path), f"has {len(stamps)} data row; a trace needs at least two to have a bin", line=None
        )
    ns = stamps.asi8
    steps = np.diff(ns)
    # The lower median is always a spacing that occurs (the mean of two middle ones may not be:
    # steps of 60 and 120 s would give a 90 s grid that fits no row).
    step = int(np.partition(steps, (steps.size - 1) // 2)[(steps.size - 1) // 2])
    if step % 1_000_000_000:
        raise TraceFormatError(
            str(path), f"rows are {step / 1e9:g} s apart (median); the bin must be a whole number of seconds"
        )
    offset = (ns - ns[0]) % step
    off_grid = np.flatnonzero(offset)
    if off_grid.size:
        i = int(off_grid[0])
        line = i + 2 if path.name.lower().endswith(_CSV_SUFFIXES) else None
        where = "" if line is not None else f"row {i + 1}: "
        raise TraceFormatError(
            str(path),
            f"{where}timestamp {stamps[i].isoformat()} is off the {step // 1_000_000_000} s grid "
            f"that starts at {stamps[0].isoformat()} (rows must be whole bins apart)",
            line=line,
            column="timestamp",
        )
    bins = int((ns[-1] - ns[0]) // step) + 1
    if bins > MAX_GRID_BINS:
        raise TraceFormatError(
            str(path),
            f"spans {bins} bins of {step // 1_000_000_000} s from {stamps[0].isoformat()} to "
            f"{stamps[-1].isoformat()}; more than {MAX_GRID_BINS} (a stray timestamp?)",
        )
    grid = pd.date_range(stamps[0], periods=bins, freq=f"{step // 1_000_000_000}s", name="timestamp", unit="ns")
    positions = ((ns - ns[0]) // step).astype("int64")
    frame = pd.DataFrame(index=grid)
    for column in VALUE_COLUMNS:
        if column in values:
            full = np.full(bins, np.nan)
            full[positions] = values[column]
            frame[column] = full
    return frame


# ---- the shipped trace and native bins ----------------------------------------------------------


def shipped_trace_path() -> Path:
    """The ServeGen m-small trace shipped inside the package (14 days, 1-minute rows, native 10 min)."""
    path = Path(__file__).resolve().parent / "data" / _SHIPPED_TRACE
    if not path.is_file():
        raise TraceNotFound(path)
    return path


_NATIVE_UNIT_SECONDS = {
    "ns": 1e-9, "us": 1e-6, "ms": 1e-3,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}
_NATIVE_AMOUNT = re.compile(r"(\d+(?:\.\d+)?)\s*-?\s*([a-z]+)\b")
_NATIVE_PER = re.compile(r"\bper[- ](request|second|sec|minute|min|hour)\b")

# The files a manifest describes hold one row a minute; a source finer than that (per-request
# logs, 1 s counts) is exact at one minute, so its native bin for forecasting is the minute.
_FINEST_FILE_BIN_SECONDS = 60


def parse_native(text: str) -> int | None:
    """Seconds of a manifest's `native` description, never below one minute; None if it says none.

    "10 min" -> 600, "30-min counts" -> 1800, "10-min windows per client (rate req/s)" -> 600,
    "per-second request counts" -> 60, "per-request (ms, relative)" -> 60, "1 s" -> 60.
    """
    lowered = str(text).strip().lower()
    per = _NATIVE_PER.search(lowered)
    # "per-request (100 ns timestamps)": the words say the granularity; the number is precision.
    if per and lowered.startswith(per.group(0)):
        seconds = {"request": 0, "second": 1, "sec": 1, "minute": 60, "min": 60, "hour": 3600}[per.group(1)]
        return max(seconds, _FINEST_FILE_BIN_SECONDS)
    for amount, unit in _NATIVE_AMOUNT.findall(lowered):
        if unit in _NATIVE_UNIT_SECONDS:
            exact = float(amount) * _NATIVE_UNIT_SECONDS[unit]
            return max(int(round(exact)), _FINEST_FILE_BIN_SECONDS)
    if per:
        seconds = {"request": 0, "second": 1, "sec": 1, "minute": 60, "min": 60, "hour": 3600}[per.group(1)]
        return max(seconds, _FINEST_FILE_BIN_SECONDS)
    return None


@functools.lru_cache(maxsize=16)
def _manifest_natives(manifest: Path, mtime_ns: int) -> dict[str, str]:
    """file name -> its `native` text, from a ../shared/traces style manifest.json (list or dict)."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TraceFormatError(str(manifest), f"is not valid JSON: {exc}") from exc
    entries = data.values() if isinstance(data, dict) else data
    if isinstance(data, dict) and all(isinstance(v, dict) and "file" not in v for v in data.values()):
        entries = [{"file": k, **v} for k, v in data.items()]
    natives: dict[str, str] = {}
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("file"), str) and entry.get("native") is not None:
            natives[entry["file"]] = str(entry["native"])
    return natives


def native_bin_of(path: str | Path, frame: pd.DataFrame | None = None) -> int | None:
    """The source's native bin in seconds when it can be known, else None.

    In order: the shipped trace is 600 s; a file listed in a manifest.json beside it takes the
    manifest's `native` (see parse_native); otherwise it is inferred from the values (see
    infer_native_bin_seconds), reading the file unless its trace frame is given.
    """
    path = Path(path)
    try:
        if path.resolve() == shipped_trace_path():
            return SHIPPED_TRACE_NATIVE_BIN_SECONDS
    except TraceNotFound:
        pass
    manifest = path.parent / "manifest.json"
    if manifest.is_file():
        text = _manifest_natives(manifest.resolve(), manifest.stat().st_mtime_ns).get(path.name)
        if text is not None:
            seconds = parse_native(text)
            if seconds is not None:
                return seconds
    if frame is None:
        frame = read_trace(path)
    return infer_native_bin_seconds(frame)


def infer_native_bin_seconds(frame: pd.DataFrame | pd.Series, *, min_share: float = 0.95) -> int | None:
    """Infer a trace's native bin from repeated values: a source binned at k rows and written at
    finer rows repeats each value k times, so (nearly) every change falls on one phase modulo k.

    k is the most common length of a run of equal values; it is accepted when at least `min_share`
    of the changes sit on one phase modulo k (a window equal to the next one only merges two runs,
    so it does not break the rule). Returns k x the row spacing, the spacing itself when values do
    not repeat, or None when the series changes too rarely to tell.
    """
    series = frame["requests"] if isinstance(frame, pd.DataFrame) else frame
    if len(series) < 2:
        return None
    step = int(np.median(np.diff(series.index.as_unit("ns").asi8)) // 1_000_000_000)
    values = series.to_numpy(dtype="float64")
    both = ~np.isnan(values[1:]) & ~np.isnan(values[:-1])
    changes = np.flatnonzero(both & (values[1:] != values[:-1])) + 1  # index of the first row of a new run
    if changes.size < 3:
        return None
    # Runs bounded by two changes (interior runs, no gap inside) give the candidate lengths.
    lengths = np.diff(changes)
    gap_rows = np.flatnonzero(np.isnan(values))
    if gap_rows.size:
        gaps_before = np.searchsorted(gap_rows, changes)
        lengths = lengths[gaps_before[1:] == gaps_before[:-1]]
    if lengths.size == 0:
        return None
    counts = np.bincount(lengths)
    k = int(np.argmax(counts))
    if k <= 1:
        return step
    phase_counts = np.bincount(changes % k, minlength=k)
    if phase_counts.max() < min_share * changes.size:
        return step
    return k * step


def describe_frame(frame: pd.DataFrame) -> str:
    """One line for logs and the CLI: span, bin, rows, gaps, columns."""
    step = int(np.median(np.diff(frame.index.as_unit("ns").asi8)) // 1_000_000_000) if len(frame) > 1 else 0
    days = (frame.index[-1] - frame.index[0]).total_seconds() / 86400 if len(frame) else 0.0
    gaps = int(frame["requests"].isna().sum()) if "requests" in frame else 0
    return (
        f"{len(frame)} rows of {step} s ({days:.3g} days) from {frame.index[0].isoformat()}, "
        f"{gaps} gap bins, columns {', '.join(frame.columns)}"
    )
