"""`prescaler report`: the forecast review, the model leaderboard, a replay and the cost-SLO frontier
as one static HTML file.

For people without Jupyter: the same numbers and figures as notebooks/01-03 (both call
forecaster.review, forecaster.plots and prescaler.replay_review), written as `index.html` with PNG
figures beside it. Every file is written atomically, the figures first and index.html last, so the
page never references a figure that is not there yet. Every table's numbers are formatted for people
(prescaler.report_tables); the replay and the frontier forecast with the model the leaderboard
selected (prescaler.report_replay). Each phase reports on stderr as it ends. forecaster, pandas and
matplotlib load inside the functions: importing this module (as `prescaler --help` does) costs nothing.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from forecaster.contract import Clock, system_clock

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from forecaster.estimators.base import Estimator
    from forecaster.selection import SelectionRecord

INDEX = "index.html"


class ReportSettings(BaseModel):
    """What the report covers; validated (with the values in the messages) before anything runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trace: Path | None = Field(None, description="trace file; None: the shipped ServeGen m-small trace")
    workload: str = "m-small"
    signal: str = "requests"
    bin: str = "10m"
    models: tuple[str, ...] = ("last_value", "seasonal_naive_daily", "gbm")
    horizons: tuple[str, ...] = ("15m", "60m")
    quantile: float = Field(0.9, gt=0, lt=1)
    objective: str = "pinball@0.9"
    eval_days: float = Field(2.0, gt=0)
    refits: int = Field(2, ge=1)
    review_model: str | None = Field(None, description="the model reviewed; None: the selected one")
    review_days: float = Field(2.0, gt=0)
    replay_days: float = Field(1.0, ge=0, description="0 skips the replay and the frontier")
    replay_model: str = Field("selected", description="selected (the leaderboard's), auto or a catalogue name")
    # Fitting the replay and the frontier share (prescaler.report_replay): gbm's ~6 s a fit x 4 fits
    # of a 1-day window is well inside; a model at a minute a fit would double the report's run time.
    replay_fit_budget_seconds: float = Field(
        120.0, ge=0, description="seconds the replay and the frontier may fit for; a selected model over it "
        "falls back (prescaler.report_replay)")
    frontier: bool = Field(True, description="replay the reduced frontier sweep on the replay's window")
    jobs: int = Field(2, ge=1, description="frontier points replayed in parallel (processes)")
    lead_seconds: float = Field(300.0, ge=0)
    peak_replicas: float = Field(20.0, gt=0)
    seed: int = 0

    @field_validator("signal")
    @classmethod
    def _signal(cls, value: str) -> str:
        from forecaster.sources import VALUE_COLUMNS

        if value not in VALUE_COLUMNS:
            raise ValueError(f"signal {value!r} is not one of {', '.join(VALUE_COLUMNS)}")
        return value

    @field_validator("models")
    @classmethod
    def _models(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from forecaster.estimators import available

        try:
            return tuple(available(list(value)))
        except KeyError as exc:
            raise ValueError(exc.args[0]) from exc

    @field_validator("horizons")
    @classmethod
    def _horizons(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from forecaster.series import parse_duration

        if not value:
            raise ValueError("name at least one horizon, e.g. 15m,60m")
        for item in value:
            parse_duration(item)
        return value

    @field_validator("bin")
    @classmethod
    def _bin(cls, value: str) -> str:
        from forecaster.series import bin_seconds

        bin_seconds(value)
        return value

    @model_validator(mode="after")
    def _cross(self) -> "ReportSettings":
        from forecaster.estimators import available
        from forecaster.objective import parse_objective

        parse_objective(self.objective)
        for name in (self.review_model,
                     self.replay_model if self.replay_model not in ("auto", "selected") else None):
            if name is not None:
                try:
                    available([name])
                except KeyError as exc:
                    raise ValueError(exc.args[0]) from exc
        return self

    def horizon_seconds(self) -> list[int]:
        from forecaster.series import parse_duration

        return [int(parse_duration(h).total_seconds()) for h in self.horizons]


@dataclass
class Section:
    """One part of the page: a heading, paragraphs, then tables and figures in the order added."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    blocks: list[tuple[str, str, str]] = field(default_factory=list)  # ("table", css, html) | ("figure", file, alt)

    def table(self, css_and_html: tuple[str, str]) -> None:
        self.blocks.append(("table", *css_and_html))

    def figure(self, name: str, alt: str) -> None:
        self.blocks.append(("figure", name, alt))


def html_table(frame: "pd.DataFrame", css: str) -> tuple[str, str]:
    """(css, the table's HTML): every number formatted for people; to_html escapes the cell text."""
    from prescaler.report_tables import people_frame

    return css, people_frame(frame).to_html(index=False, classes=css, border=0, na_rep="-", escape=True)


class Figures:
    """Writes each figure as a PNG under `out` (atomically) and remembers its name."""

    def __init__(self, out: Path):
        self.out = out
        self.written: list[Path] = []

    def __call__(self, fig: "Figure", name: str) -> str:
        from forecaster.atomic import atomic_write_bytes
        from forecaster.plots import png_bytes

        path = atomic_write_bytes(self.out / name, png_bytes(fig))
        self.written.append(path)
        return name


@dataclass(frozen=True)
class Leaderboard:
    """The backtest's outcome as the later sections need it."""

    section: Section
    record: "SelectionRecord"
    fit_seconds: dict[str, float]  # mean seconds per fit, per backtested model
    make: Callable[[str], "Estimator"]  # a backtested model unfitted (an ensemble of the members it scored)

    @property
    def selected(self) -> str:
        return self.record.selected


def leaderboard_section(settings: ReportSettings, series: "pd.Series", native: int | None,
                        figures: Figures, log: Callable[[str], None] | None = None) -> Leaderboard:
    """Backtest and select; `log` hears each model as its backtest ends."""
    from forecaster import plots
    from forecaster.backtest import backtest
    from forecaster.review import leaderboard_frame, model_runs_frame, selection_frame
    from forecaster.selection import select
    from forecaster.training import estimator_for, make_config, resolve_models

    config = make_config(settings.horizon_seconds(), objective=settings.objective,
                         controller_quantile=settings.quantile, eval_days=settings.eval_days,
                         refits=settings.refits)
    def progress(model: str, done: int, total: int) -> None:
        if log is not None and done == total:
            log(f"backtest: {model} done ({total} fit{'s' if total != 1 else ''})")

    result = backtest(series, resolve_models(list(settings.models)), config, native_bin_seconds=native,
                      progress=progress)
    record = select(result, settings.objective)
    board = leaderboard_frame(result)
    runs = model_runs_frame(result)
    section = Section("Model leaderboard")
    section.paragraphs.append(
        f"Rolling-origin backtest over the last {settings.eval_days:g} days ({len(result.origins)} origins, "
        f"{settings.refits} fit(s) per model) at horizons {', '.join(h.label for h in result.horizons)}. "
        f"Selected: <b>{html.escape(record.selected)}</b>. {html.escape(record.reason)}."
    )
    section.table(html_table(board, "leaderboard"))
    pinball = plots.leaderboard(board, metric="pinball_q", title=f"pinball loss at q{settings.quantile:g}")
    section.figure(figures(pinball, "leaderboard_pinball.png"), "pinball loss by model and horizon")
    mase = plots.leaderboard(board, metric="mase")
    section.figure(figures(mase, "leaderboard_mase.png"), "MASE by model and horizon")
    chosen = selection_frame(record)
    section.table(html_table(chosen, "selection"))
    section.figure(figures(plots.selection_scores(chosen), "selection.png"), "selection objective")
    section.table(html_table(runs, "runs"))
    section.figure(figures(plots.fit_predict_times(runs), "fit_predict_times.png"), "fit and predict times")
    return Leaderboard(section, record, fit_seconds={name: run.fit_seconds for name, run in result.runs.items()},
                       make=lambda name: estimator_for(name, result))


def review_section(settings: ReportSettings, series: "pd.Series", label: str, model: str,
                   figures: Figures, make: Callable[[], "Estimator"] | None = None) -> tuple[Section, float]:
    """The forecast review of `model` (made by `make`, default the catalogue's); returns the
    section and the interval coverage."""
    from forecaster import plots
    from forecaster.estimators import make_estimator
    from forecaster.review import review_forecast

    step = int(series.index.freq.nanos // 1_000_000_000)
    horizon_bins = max(1, math.ceil(max(settings.horizon_seconds()) / step))
    estimator = make() if make is not None else make_estimator(model)
    review = review_forecast(series, estimator, review_days=settings.review_days,
                             horizon_bins=horizon_bins, controller_quantile=settings.quantile)
    summary = review.summary()
    section = Section("Forecast review")
    section.paragraphs.append(
        f"{html.escape(model)} fitted on {html.escape(label)} up to {review.train_end:%Y-%m-%d %H:%M} UTC, "
        f"forecasting {horizon_bins * step // 60} minutes ahead over the last {settings.review_days:g} days "
        f"({summary['points']} observed bins)."
    )
    section.paragraphs.append(
        f"<span class=\"coverage\">Coverage of the 0.05-0.95 interval: <b>{review.coverage:.1%}</b></span> "
        f"(nominal 90%). The load exceeded q{settings.quantile:g} in "
        f"{summary['under_rate']:.1%} of bins, "
        f"in {len(review.episodes)} episode(s)."
    )
    bands = plots.forecast_bands(review.context, review.frame, title=f"{label} {settings.signal}: {model}")
    section.figure(figures(bands, "forecast.png"), "history against the forecast bands")
    section.figure(figures(plots.residual_profile(review.profile), "residuals.png"), "residuals by hour and weekday")
    calibration = plots.calibration(review.calibration, coverage=review.coverage)
    section.figure(figures(calibration, "calibration.png"), "quantile calibration")
    section.table(html_table(review.calibration, "calibration"))
    under = plots.under_forecast(review.frame, review.episodes, quantile=settings.quantile)
    section.figure(figures(under, "under_forecast.png"), "under-forecast episodes")
    section.table(html_table(review.episodes.head(10), "episodes"))
    return section, review.coverage


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{padding:3px 8px;text-align:right}
th{background:#eee}tr:nth-child(even){background:#f7f7f7}img{max-width:100%;margin:.5em 0}
.meta{color:#666;font-size:13px}"""


def render_html(title: str, sections: list[Section], *, generated: datetime, notes: list[str]) -> str:
    """The page. Paragraphs are trusted HTML built here (values escaped where they are inserted)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">Generated {generated:%Y-%m-%d %H:%M} UTC by prescaler report.</p>',
    ]
    parts += [f'<p class="meta">{html.escape(n)}</p>' for n in notes]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts += [f"<p>{p}</p>" for p in section.paragraphs]
        for kind, first, second in section.blocks:
            if kind == "table":
                parts.append(second)
            else:
                parts.append(f'<img src="{html.escape(first)}" alt="{html.escape(second)}">')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


@dataclass
class _Phase:
    name: str
    started: float
    detail: str = ""


class Progress:
    """Progress on `log` while the report works: a line as each phase ends, with its seconds and the
    report's so far, and whatever the phases say in between (each backtested model, each frontier point)."""

    def __init__(self, log: Callable[[str], None] | None, timer: Callable[[], float] = time.perf_counter) -> None:
        self.log = log or (lambda message: None)
        self.timer = timer
        self.started = timer()

    @contextmanager
    def phase(self, name: str) -> Iterator[_Phase]:
        """`with progress.phase("review") as phase: ...; phase.detail = "gbm"` logs
        `review done in 10.6 s: gbm (26 s so far)` when the block ends."""
        phase = _Phase(name, self.timer())
        yield phase
        now = self.timer()
        detail = f": {phase.detail}" if phase.detail else ""
        self.log(f"{name} done in {now - phase.started:.1f} s{detail} ({now - self.started:.0f} s so far)")


def build_report(
    settings: ReportSettings,
    out: Path,
    *,
    clock: Clock = system_clock,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Write out/index.html, its PNGs (and frontier.json); returns the index path. `log` hears the progress."""
    from forecaster.atomic import atomic_write_text
    from forecaster.review_inputs import load_review_series
    from forecaster.sources import shipped_trace_path

    progress = Progress(log)
    trace = settings.trace if settings.trace is not None else shipped_trace_path()
    source = load_review_series(trace, signal=settings.signal, bin=settings.bin)
    replays = settings.replay_days > 0
    phases = ["backtest", "review", *(["replay"] if replays else []),
              *(["frontier"] if replays and settings.frontier else [])]
    progress.log(f"report of {source.label} ({settings.signal} at {settings.bin}): {', '.join(phases)}")
    out.mkdir(parents=True, exist_ok=True)
    figures = Figures(out)
    with progress.phase("backtest") as phase:
        board = leaderboard_section(settings, source.series, source.native_bin_seconds, figures, log=progress.log)
        phase.detail = f"{len(settings.models)} models, selected {board.selected}"
    review_model = settings.review_model or board.selected
    with progress.phase("review") as phase:
        review, _coverage = review_section(settings, source.series, source.label, review_model, figures,
                                           None if settings.review_model else lambda: board.make(board.selected))
        phase.detail = review_model
    sections = [review, board.section]
    notes = []
    if replays:
        frame, why_not = _replayable(Path(trace))
        if frame is not None:
            sections += _replay_sections(settings, Path(trace), frame, figures, board, progress)
        else:
            notes.append(f"replay skipped: {why_not}")
    page = render_html(f"prescaler report: {settings.workload} / {settings.signal}", sections,
                       generated=clock(), notes=notes)
    return atomic_write_text(out / INDEX, page)


def _replay_sections(settings: ReportSettings, trace: Path, frame: "pd.DataFrame", figures: Figures,
                     board: Leaderboard, progress: Progress) -> list[Section]:
    """The replay and (unless turned off) the frontier, forecasting with one engine that shares its fits."""
    from controller.sim.forecasting import FORECAST_SIGNALS
    from controller.sim.replay import ReplaySettings
    from prescaler.report_replay import (
        choose_replay_model,
        frontier_section,
        replay_fits,
        replay_section,
        report_forecasting,
    )

    refit_seconds = ReplaySettings.model_fields["refit_seconds"].default
    choice = choose_replay_model(
        settings.replay_model, selected=board.selected, scores=board.record.scores, fit_seconds=board.fit_seconds,
        fits=replay_fits(settings.replay_days, refit_seconds, len(FORECAST_SIGNALS)),
        budget_seconds=settings.replay_fit_budget_seconds)
    if choice.fell_back:
        progress.log(f"replay: forecasting with {choice.why}")
    forecasting = report_forecasting(choice, board.make, board.fit_seconds.keys())
    with progress.phase("replay") as phase:
        sections = [replay_section(settings, trace, frame, figures, choice, forecasting)]
        phase.detail = f"hpa, prescaler and oracle over {settings.replay_days:g} day(s) with {choice.model}"
    if settings.frontier:
        with progress.phase("frontier") as phase:
            section, result = frontier_section(settings, trace, frame, figures, choice, forecasting,
                                               log=lambda message: progress.log(f"frontier: {message}"))
            phase.detail = (f"{len(result.points)} points, {settings.jobs} job{'s' if settings.jobs > 1 else ''}, "
                            f"{forecasting.reused} of the replay's fits reused")
        sections.append(section)
    return sections


def _replayable(trace: Path) -> tuple["pd.DataFrame | None", str]:
    """The simulator's per-minute frame of `trace`, or None and why it cannot be replayed (the
    simulator replays one-minute traces only; the review itself takes any bin)."""
    from forecaster.errors import ForecasterError
    from prescaler.traces import read_trace_csv

    try:
        return read_trace_csv(trace), ""
    except (ValueError, ForecasterError) as exc:
        return None, f"the simulator replays one-minute traces: {exc}"


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def report(
    trace: Optional[Path] = typer.Option(None, "--trace", help="trace file (default: the shipped ServeGen m-small)"),
    workload: str = typer.Option("m-small", "--workload", help="workload name for the title"),
    signal: str = typer.Option("requests", "--signal", help="requests, prompt_tokens or output_tokens"),
    out: Path = typer.Option(Path("report-output"), "--out", help="folder for index.html and its PNGs"),
    models: str = typer.Option("last_value,seasonal_naive_daily,gbm", "--models",
                               help="comma-separated catalogue names, or all"),
    bin: str = typer.Option("10m", "--bin", help="forecast bin (the trace's native bin or coarser)"),
    horizons: str = typer.Option("15m,60m", "--horizons", help="backtest horizons (lead, lead + interval)"),
    quantile: float = typer.Option(0.9, "--quantile", help="the quantile the controller scales on"),
    review_model: Optional[str] = typer.Option(None, "--review-model", help="default: the selected model"),
    review_days: float = typer.Option(2.0, "--review-days"),
    eval_days: float = typer.Option(2.0, "--eval-days", help="span of the backtest origins"),
    refits: int = typer.Option(2, "--refits", help="fits per model in the backtest"),
    replay_days: float = typer.Option(1.0, "--replay-days", help="0 skips the replay and the frontier"),
    replay_model: str = typer.Option("selected", "--replay-model",
                                     help="the replay's forecast model: selected (the leaderboard's), auto "
                                     "or a catalogue name"),
    lead: str = typer.Option("5m", "--lead", help="replica cold start for the replay"),
    frontier: bool = typer.Option(True, "--frontier/--no-frontier",
                                  help="sweep the reactive autoscalers' knobs on the replay's window"),
    jobs: int = typer.Option(2, "--jobs", help="frontier points replayed in parallel (processes)"),
) -> None:
    """Render the forecast review, the model leaderboard, a replay and the cost-SLO frontier as static
    HTML with PNG figures; progress on stderr."""
    from pydantic import ValidationError

    from forecaster.errors import ForecasterError
    from forecaster.series import parse_duration

    started = time.perf_counter()
    try:
        model_names = ("all",) if models.strip().lower() == "all" else _split(models)
        if model_names == ("all",):
            from forecaster.estimators import available

            model_names = tuple(available("all"))
        settings = ReportSettings(
            trace=trace, workload=workload, signal=signal, bin=bin, models=model_names,
            horizons=_split(horizons), quantile=quantile, objective=f"pinball@{quantile:g}",
            review_model=review_model, review_days=review_days, eval_days=eval_days, refits=refits,
            replay_days=replay_days, replay_model=replay_model, lead_seconds=parse_duration(lead).total_seconds(),
            frontier=frontier, jobs=jobs,
        )
    except ValidationError as exc:
        _fail("; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ))
    except ValueError as exc:
        _fail(str(exc))
    try:
        index = build_report(settings, out, log=lambda m: typer.echo(m, err=True))
    except (ForecasterError, FileNotFoundError, ValueError, KeyError) as exc:
        _fail(exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc))
    typer.echo(f"wrote {index} in {time.perf_counter() - started:.0f} s")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
