"""`prescaler report`: a static HTML page whose figures exist and are PNGs, with the leaderboard
table and the coverage number; bad options fail fast with a message naming the value."""

from __future__ import annotations

import re
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from prescaler import report as report_module

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAST = ["--models", "last_value,seasonal_naive_daily", "--review-days", "1", "--eval-days", "1",
        "--refits", "1", "--horizons", "10m,30m"]


def _app() -> typer.Typer:
    app = typer.Typer()
    report_module.register(app)

    @app.callback()  # a group, so the command is invoked by name as under `prescaler`
    def _root() -> None:
        pass

    return app


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.table_classes: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "table":
            self.table_classes.append(attrs.get("class", ""))


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC), f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "site"
    result = CliRunner().invoke(_app(), ["report", "--out", str(out), "--replay-days", "0.1", *FAST])
    assert result.exit_code == 0, result.output
    return out, result


def test_report_writes_index_with_valid_pngs(rendered) -> None:
    out, result = rendered
    index = out / "index.html"
    assert f"wrote {index}" in result.output
    page = _Page()
    page.feed(index.read_text())
    assert len(page.images) >= 9  # review 4, leaderboard 4, replay 2
    for src in page.images:
        width, height = _png_size(out / src)
        assert width > 100 and height > 100
    # nothing half-written is left beside them
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


def test_report_has_the_leaderboard_coverage_and_replay(rendered) -> None:
    out, _ = rendered
    text = (out / "index.html").read_text()
    page = _Page()
    page.feed(text)
    assert any("leaderboard" in c for c in page.table_classes)
    assert any("outcomes" in c for c in page.table_classes)
    board = text[text.index('class="dataframe leaderboard"'):]
    board = board[: board.index("</table>")]
    assert "last_value" in board and "seasonal_naive_daily" in board and "pinball_q" in board
    coverage = re.search(r"Coverage of the 0\.05-0\.95 interval: <b>(\d+\.\d)%</b>", text)
    assert coverage and 0.0 <= float(coverage.group(1)) <= 100.0
    assert "Selected: <b>" in text
    for policy in ("hpa", "prescaler", "oracle"):
        assert f"<td>{policy}</td>" in text


def test_report_skips_the_replay_for_a_trace_the_simulator_cannot_replay(tmp_path) -> None:
    # A 10-minute trace reviews fine, but the simulator replays one-minute traces only: a note, no failure.
    from forecaster.sources import read_trace, shipped_trace_path

    frame = read_trace(shipped_trace_path()).resample("10min").sum(min_count=1)
    trace = tmp_path / "ten_minutes.csv"
    frame.reset_index().to_csv(trace, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    out = tmp_path / "site"
    result = CliRunner().invoke(_app(), ["report", "--trace", str(trace), "--out", str(out),
                                         "--replay-days", "0.1", *FAST, "--models", "last_value",
                                         "--review-days", "0.5"])
    assert result.exit_code == 0, result.output
    text = (out / "index.html").read_text()
    assert "replay skipped: the simulator replays one-minute traces" in text
    assert "600 s" in text  # the reason names what the trace has
    assert "Scaling replay" not in text


@pytest.mark.parametrize(
    "args, message",
    [
        pytest.param(["--signal", "tokens"], "signal 'tokens' is not one of requests", id="bad-signal"),
        pytest.param(["--models", "last_value,nope"], "unknown model 'nope'; known models", id="unknown-model"),
        pytest.param(["--quantile", "1.5"], "quantile: Input should be less than 1", id="bad-quantile"),
        pytest.param(["--bin", "7m"], "bin '7m' is not supported", id="bad-bin"),
        pytest.param(["--trace", "/nonexistent/t.csv"], "trace file /nonexistent/t.csv does not exist",
                     id="missing-trace"),
        pytest.param(["--review-model", "nope"], "unknown model 'nope'", id="unknown-review-model"),
        pytest.param(["--lead", "soon"], "duration 'soon' is not like", id="bad-lead"),
    ],
)
def test_report_rejects_bad_options(tmp_path, args, message) -> None:
    out = tmp_path / "site"
    result = CliRunner().invoke(_app(), ["report", "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (out / "index.html").exists()


def test_report_module_imports_without_the_heavy_libraries() -> None:
    # `prescaler --help` imports every command module: this one must not pull pandas or matplotlib.
    import subprocess
    import sys

    code = ("import sys, prescaler.report; "
            "print([m for m in ('pandas', 'matplotlib', 'sklearn', 'statsmodels') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"
