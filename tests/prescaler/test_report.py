"""`prescaler report`: a static HTML page whose figures exist and are PNGs, with the leaderboard
table and the coverage number; the replay and the frontier forecast with the selected model (or the
one named); every table's numbers are for people; progress goes to stderr; bad options fail fast
with a message naming the value."""

from __future__ import annotations

import json
import math
import re
import struct
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import typer
from typer.testing import CliRunner

from prescaler import report as report_module

if TYPE_CHECKING:
    import pandas as pd

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
    assert len(page.images) >= 10  # review 4, leaderboard 4, replay 2, frontier 1
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


# ---------------------------------------------------------------------------------------------------
# The replay forecasts with the leaderboard's model; a user's --replay-model wins
# ---------------------------------------------------------------------------------------------------


def _selected(text: str) -> str:
    match = re.search(r"Selected: <b>([\w.-]+)</b>", text)
    assert match, "the leaderboard names its selection"
    return match.group(1)


def _section(text: str, title: str) -> str:
    start = text.index(f"<h2>{title}</h2>")
    end = text.find("<h2>", start + 1)
    return text[start: end if end >= 0 else len(text)]


def test_report_replays_with_the_model_the_leaderboard_selected(rendered) -> None:
    out, _ = rendered
    text = (out / "index.html").read_text()
    selected = _selected(text)
    replay = _section(text, "Scaling replay")
    assert f'<b class="replay-model">{selected}</b>, the model the leaderboard selected' in replay
    assert f"prompt_tokens: {selected} x1; output_tokens: {selected} x1" in replay  # what was fitted
    assert f"forecasting with {selected}" in _section(text, "Cost-SLO frontier")


def test_report_replay_model_override_wins(tmp_path) -> None:
    out = tmp_path / "site"
    result = CliRunner().invoke(_app(), ["report", "--out", str(out), "--replay-days", "0.1", *FAST,
                                         "--models", "last_value", "--replay-model", "seasonal_naive_daily",
                                         "--no-frontier"])
    assert result.exit_code == 0, result.output
    text = (out / "index.html").read_text()
    assert _selected(text) == "last_value"
    replay = _section(text, "Scaling replay")
    assert ('<b class="replay-model">seasonal_naive_daily</b>, named with --replay-model '
            "(the leaderboard selected last_value)") in replay
    assert "output_tokens: seasonal_naive_daily x1" in replay
    assert "Cost-SLO frontier" not in text and not (out / "frontier.png").exists()  # --no-frontier


def test_report_rejects_an_unknown_replay_model(tmp_path) -> None:
    result = CliRunner().invoke(_app(), ["report", "--out", str(tmp_path / "site"), "--replay-model", "nope"])
    assert result.exit_code == 2
    assert "unknown model 'nope'" in result.output


SCORES = {"gbm": 58.2, "holt_winters": 59.0, "last_value": 59.4, "seasonal_naive_daily": 99.8}
FIT_SECONDS = {"gbm": 40.0, "holt_winters": 0.5, "last_value": 0.001, "seasonal_naive_daily": 0.001}


@pytest.mark.parametrize(
    "requested, fit_seconds, budget, model, fell_back, mentions",
    [
        pytest.param("selected", FIT_SECONDS, 200.0, "gbm", False, ["the model the leaderboard selected"],
                     id="selected-within-budget"),
        pytest.param("selected", FIT_SECONDS, 120.0, "holt_winters", True,
                     ["instead of gbm", "4 fits of gbm at 40.0 s a fit (about 160 s)", "budget of 120 s",
                      "falls back to holt_winters (the best-scored model within it)", "--replay-model gbm"],
                     id="over-budget-falls-back-to-the-next-best"),
        pytest.param("selected", {**FIT_SECONDS, "holt_winters": 31.0}, 120.0, "last_value", True,
                     ["falls back to last_value"], id="next-best-over-budget-too"),
        pytest.param("selected", {k: 60.0 for k in FIT_SECONDS}, 120.0, "seasonal_naive_daily", True,
                     ["no scored model fits in it"], id="nothing-within-budget"),
        pytest.param("selected", {"last_value": 0.001}, 0.0, "gbm", False, [], id="unmeasured-fit-time-passes"),
        pytest.param("seasonal_naive_daily", FIT_SECONDS, 120.0, "seasonal_naive_daily", False,
                     ["named with --replay-model (the leaderboard selected gbm)"], id="override-wins"),
        pytest.param("gbm", FIT_SECONDS, 1.0, "gbm", False, ["named with --replay-model, as the leaderboard"],
                     id="override-wins-over-the-budget"),
        pytest.param("auto", FIT_SECONDS, 120.0, "auto", False, ["the leaderboard selected gbm"], id="auto"),
    ],
)
def test_choose_replay_model(requested, fit_seconds, budget, model, fell_back, mentions) -> None:
    from prescaler.report_replay import choose_replay_model

    choice = choose_replay_model(requested, selected="gbm", scores=SCORES, fit_seconds=fit_seconds, fits=4,
                                 budget_seconds=budget)
    assert (choice.model, choice.selected, choice.fell_back) == (model, "gbm", fell_back)
    for phrase in mentions:
        assert phrase in choice.why


@pytest.mark.parametrize(
    "replay_days, refit_seconds, signals, fits",
    [
        pytest.param(1.0, 86_400.0, 2, 4, id="a-day-fits-at-both-ends"),
        pytest.param(0.1, 86_400.0, 2, 2, id="part-of-a-day-fits-once"),
        pytest.param(3.0, 86_400.0, 2, 8, id="three-days"),
        pytest.param(1.0, 43_200.0, 2, 6, id="twice-a-day"),
        pytest.param(2.5, 86_400.0, 1, 3, id="one-signal"),
    ],
)
def test_replay_fits(replay_days, refit_seconds, signals, fits) -> None:
    from prescaler.report_replay import replay_fits

    assert replay_fits(replay_days, refit_seconds, signals) == fits


def _rates(bins: int, start: str = "2025-01-01") -> "pd.Series":
    import numpy as np
    import pandas as pd

    index = pd.date_range(start, periods=bins, freq="10min", tz="UTC")
    return pd.Series(5.0 + np.sin(np.arange(bins) / 10.0), index=index, name="prompt_tokens")


def test_report_forecasting_makes_the_backtests_model_and_keeps_each_fit() -> None:
    from forecaster.estimators import make_estimator
    from prescaler.report_replay import ReportForecasting

    made = []

    def make():
        made.append(1)
        return make_estimator("last_value")

    engine = ReportForecasting("last_value", make)
    history = _rates(300)
    first = engine.fit("prompt_tokens", history)
    again = engine.fit("prompt_tokens", history.copy())  # the same history: the same fit
    other = engine.fit("output_tokens", history.rename("output_tokens"))  # another signal: a new fit
    longer = engine.fit("prompt_tokens", _rates(301))  # another history: a new fit
    assert again is first and other is not first and longer is not first
    assert (engine.fitted, engine.reused, len(made)) == (3, 1, 3)
    assert first.name == "last_value"


def test_report_forecasting_falls_back_when_the_model_cannot_fit_yet() -> None:
    from forecaster.errors import InsufficientHistory
    from forecaster.estimators.baselines import SeasonalNaiveWeekly
    from forecaster.replay import FALLBACKS
    from prescaler.report_replay import ReportForecasting

    class NeedsMore(SeasonalNaiveWeekly):
        name = "ensemble"

        def fit(self, series):
            raise InsufficientHistory("needs 8 days")

    fitted = ReportForecasting("ensemble", NeedsMore).fit("prompt_tokens", _rates(30))  # 5 hours
    assert fitted.name in FALLBACKS  # not the catalogue's default ensemble


# ---------------------------------------------------------------------------------------------------
# The frontier section
# ---------------------------------------------------------------------------------------------------


def test_report_has_the_frontier_section_its_png_and_json(rendered) -> None:
    from prescaler.report_replay import REPORT_FAMILIES

    out, _ = rendered
    text = (out / "index.html").read_text()
    frontier = _section(text, "Cost-SLO frontier")
    page = _Page()
    page.feed(frontier)
    assert page.images == ["frontier.png"]
    width, height = _png_size(out / "frontier.png")
    assert width > 100 and height > 100
    assert page.table_classes == ["dataframe frontier"]
    for family in REPORT_FAMILIES:
        assert f"<td>{family}</td>" in frontier
    assert "<td>hpa-kv</td>" not in frontier and "<td>keda-waiting</td>" not in frontier  # the reduced sweep
    assert frontier.count('<span class="dominance">') == 2  # both targets, as sentences
    assert "target &gt;= 5x" in frontier and "target &gt;= 1.25x" in frontier
    data = json.loads((out / "frontier.json").read_text())
    assert {p["family"] for p in data["points"]} >= set(REPORT_FAMILIES) | {"oracle"}
    prescaler = [p for p in data["points"] if p["family"] == "prescaler"]
    assert len(prescaler) == 1 and prescaler[0]["default"]  # prescaler's default point only
    assert f"{len(data['points'])} configurations replayed" in frontier


def test_frontier_sweep_is_the_reduced_one() -> None:
    from controller.sim.frontier import PrescalerKnobs
    from prescaler.report_replay import REPORT_FAMILIES, frontier_sweep

    points = frontier_sweep(0.8).points()
    assert {f for f, _, _ in points} == set(REPORT_FAMILIES)
    prescaler = [k for f, k, _ in points if isinstance(k, PrescalerKnobs)]
    # the asked quantile, and the family's default point (which the dominance targets measure)
    assert sorted(k.quantile for k in prescaler) == [0.8, 0.9]
    assert {k.target_utilization for k in prescaler} == {0.8}


# ---------------------------------------------------------------------------------------------------
# Numbers for people
# ---------------------------------------------------------------------------------------------------

RAW_FLOAT = re.compile(r"\d\.\d{5,}")


def test_report_tables_show_no_raw_floats(rendered) -> None:
    out, _ = rendered
    text = (out / "index.html").read_text()
    tables = re.findall(r"<table.*?</table>", text, flags=re.S)
    page = _Page()
    page.feed(text)
    assert [c.removeprefix("dataframe ") for c in page.table_classes] == [
        "calibration", "episodes", "leaderboard", "selection", "runs", "outcomes", "frontier"]
    assert len(tables) == len(page.table_classes)
    for table in tables:
        cells = re.findall(r"<td>(.*?)</td>", table)
        assert cells
        assert not [c for c in cells if RAW_FLOAT.search(c)], table[:80]
    outcomes = text[text.index('class="dataframe outcomes"'):]
    outcomes = outcomes[: outcomes.index("</table>")]
    assert re.search(r"<td>\d{1,3}\.\d{2,3} %</td>", outcomes)  # SLO attainment as a percentage
    assert re.search(r"<td>\d+\.\d{2}x</td>", outcomes)  # GPU-hours against the oracle


@pytest.mark.parametrize(
    "column, value, text",
    [
        pytest.param("slo_attainment", 0.960439, "96.04 %", id="percent"),
        pytest.param("slo_attainment", 0.99999, "99.999 %", id="percent-not-rounded-up-to-100"),
        pytest.param("coverage90", 0.9302, "93.02 %", id="coverage"),
        pytest.param("gpu_hours_vs_oracle", 1.3874, "1.39x", id="ratio"),
        pytest.param("slo_misses", 1151618.2522, "1.2e6", id="large-count"),
        pytest.param("slo_misses", 8120.4, "8,120", id="small-count"),
        pytest.param("requests", 34923594.0, "3.5e7", id="requests"),
        pytest.param("gpu_hours", 285.6125, "286", id="hours"),
        pytest.param("gpu_hours", 18.4567, "18.5", id="few-hours"),
        pytest.param("fit_seconds", 6.4249, "6.4 s", id="seconds"),
        pytest.param("predict_seconds", 0.0115, "11.5 ms", id="milliseconds"),
        pytest.param("fit_seconds", 1234.4, "1,234 s", id="many-seconds"),
        pytest.param("fit_seconds", 0.00004, "< 0.1 ms", id="under-a-tenth-of-a-millisecond"),
        pytest.param("ttft_p99", 0.06166, "61.7 ms", id="ttft"),
        pytest.param("mase", 0.90421, "0.9042", id="four-significant-digits"),
        pytest.param("pinball_q", 138.6112, "138.6", id="hundreds"),
        pytest.param("score", 58.2267, "58.23", id="tens"),
        pytest.param("quantile", 0.05, "0.05", id="no-trailing-zeros"),
        pytest.param("score", 1.0, "1", id="whole"),
        pytest.param("score", 0.00012, "1.2e-4", id="tiny"),
        pytest.param("score", 12345.6, "1.2e4", id="large"),
        pytest.param("score", -3.25, "-3.25", id="negative"),
        pytest.param("score", math.nan, "-", id="nan"),
        pytest.param("score", math.inf, "inf", id="inf"),
        pytest.param("points", 273, "273", id="int"),
    ],
)
def test_people_frame_formats_each_quantity(column, value, text) -> None:
    import pandas as pd

    from prescaler.report_tables import people_frame

    assert people_frame(pd.DataFrame({column: [value]}))[column].tolist() == [text]


def test_people_frame_keeps_text_and_formats_times() -> None:
    import pandas as pd

    from prescaler.report_tables import people_frame

    frame = pd.DataFrame({
        "model": ["gbm", "last_value"],
        "baseline": [False, True],
        "reason": ["", None],
        "start": pd.to_datetime(["2025-01-19 13:10:00+00:00", None]),
        "mixed": [0.123456, "n/a"],
    })
    out = people_frame(frame)
    assert list(out.columns) == list(frame.columns)
    assert out.to_dict("list") == {
        "model": ["gbm", "last_value"], "baseline": ["False", "True"], "reason": ["", "-"],
        "start": ["2025-01-19 13:10", "-"], "mixed": ["0.1235", "n/a"],
    }


# ---------------------------------------------------------------------------------------------------
# Progress on stderr
# ---------------------------------------------------------------------------------------------------


def test_report_shows_progress_on_stderr(rendered) -> None:
    _, result = rendered
    err = result.stderr
    for phase in ("backtest", "review", "replay", "frontier"):
        assert re.search(rf"^{phase} done in \d+\.\d s.*\((\d+) s so far\)$", err, flags=re.M), phase
    assert re.search(r"^backtest: last_value done \(1 fit\)$", err, flags=re.M)  # each model as it ends
    points = re.findall(r"^frontier: \[(\d+)/(\d+)\] ", err, flags=re.M)  # each frontier point
    assert points and int(points[-1][0]) == int(points[-1][1])
    order = [err.index(f"{phase} done in") for phase in ("backtest", "review", "replay", "frontier")]
    assert order == sorted(order)
    assert "done in" not in result.stdout  # stdout says only where the page is
