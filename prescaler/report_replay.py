"""`prescaler report`'s replay and frontier sections, and the model they forecast with.

The leaderboard selects a model on the report's signal; the replay and the frontier forecast the
replayed signals (controller.sim.forecasting.FORECAST_SIGNALS) with that same model, made as the
backtest scored it (an ensemble of exactly the members it scored), so the page's sections agree.
Two exceptions, each named in the section: `--replay-model` (a user's choice wins), and a model whose
fits would take longer than the report's budget for them (the backtest measured its seconds per fit),
which is replaced by the best-scored model within it.

Both sections replay the same window with one ReportForecasting, which keeps every fit: the
frontier's forecast tape refits at the replay's times on the same history, and reuses those fits
instead of paying for them twice.
"""

from __future__ import annotations

import hashlib
import html
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prescaler.report_tables import seconds

if TYPE_CHECKING:
    import pandas as pd

    from controller.sim.frontier import FrontierResult, SweepSpec
    from controller.sim.replay import ReplaySettings
    from forecaster.contract.replay import FittedForecaster
    from forecaster.estimators.base import Estimator
    from prescaler.report import Figures, ReportSettings, Section

SELECTED = "selected"
# The model forecasting falls back to when nothing scored fits in the budget (the report's old default).
BUDGET_FALLBACK = "seasonal_naive_daily"
# The report's frontier: the reactive families a platform engineer reaches for first at their default
# grids, and prescaler's default point only (about 30 points, ~30 s of a 1-day window on 2 cores).
# `prescaler frontier` sweeps every family and knob, which takes minutes.
REPORT_FAMILIES = ("hpa-inflight", "hpa-running", "kpa", "static", "prescaler")


@dataclass(frozen=True)
class ReplayChoice:
    """The model the replay and the frontier forecast with, and why (a sentence for the page)."""

    model: str
    selected: str
    why: str  # follows "forecasts with <model>, "
    fell_back: bool = False


def replay_fits(replay_days: float, refit_seconds: float, signals: int) -> int:
    """The fits a replayed window costs: each signal at the start and at every refit after it (the
    frontier's tape records them all; the replay's own prescaler makes a subset of the same)."""
    return signals * (math.floor(replay_days * 86_400.0 / refit_seconds + 1e-9) + 1)


def choose_replay_model(requested: str, *, selected: str, scores: Mapping[str, float],
                        fit_seconds: Mapping[str, float], fits: int, budget_seconds: float) -> ReplayChoice:
    """`requested` ("selected", "auto" or a catalogue name) resolved against the leaderboard.

    `scores` are the leaderboard's objective per model (lower is better), `fit_seconds` the backtest's
    mean seconds per fit. A model with no measured fit time counts as within the budget.
    """
    if requested != SELECTED:
        why = ("named with --replay-model, as the leaderboard selected" if requested == selected
               else f"named with --replay-model (the leaderboard selected {selected})")
        return ReplayChoice(requested, selected, why)

    def cost(name: str) -> float:
        return fits * fit_seconds.get(name, math.nan)

    if not cost(selected) > budget_seconds:  # NaN (not measured) passes
        return ReplayChoice(selected, selected, "the model the leaderboard selected")
    ranked = sorted((s, n) for n, s in scores.items() if math.isfinite(s) and n != selected)
    within = [n for _, n in ranked if not cost(n) > budget_seconds]
    fallback = within[0] if within else BUDGET_FALLBACK
    how = "the best-scored model within it" if within else "no scored model fits in it"
    why = (f"instead of {selected}, the model the leaderboard selected: {fits} fits of {selected} at "
           f"{seconds(fit_seconds[selected])} a fit (about {seconds(cost(selected))}) exceed the report's "
           f"budget of {seconds(budget_seconds)} for fitting, so the replay falls back to {fallback} ({how}); "
           f"--replay-model {selected} replays it anyway")
    return ReplayChoice(fallback, selected, why, fell_back=True)


class ReportForecasting:
    """ReplayForecasting (forecaster.contract.replay) for the report's replay and frontier.

    Fits `make()` (the backtest's own estimator of the model: for an ensemble, its scored members)
    where given, else forecaster.replay.EstimatorForecasting(model); a model that cannot fit yet falls
    back as EstimatorForecasting does. Each fit is kept by signal and history, so the frontier's tape
    reuses the replay's fits.
    """

    def __init__(self, model: str, make: Callable[[], Estimator] | None = None) -> None:
        from forecaster.replay import EstimatorForecasting

        self.model = model
        self._make = make
        self._engine = EstimatorForecasting(model)
        self._fits: dict[tuple[str, int, str], FittedForecaster] = {}
        self.fitted = 0
        self.reused = 0

    def bin_rates(self, per_minute_rates: pd.Series, bin_seconds: int) -> pd.Series:
        return self._engine.bin_rates(per_minute_rates, bin_seconds)

    def fit(self, signal: str, history: pd.Series) -> FittedForecaster:
        values = history.to_numpy(dtype="float64").tobytes() + history.index.asi8.tobytes()
        digest = hashlib.blake2b(values, digest_size=16).hexdigest()
        key = (signal, len(history), digest)
        if key in self._fits:
            self.reused += 1
            return self._fits[key]
        fitted = self._fit(signal, history)
        self._fits[key] = fitted
        self.fitted += 1
        return fitted

    def _fit(self, signal: str, history: pd.Series) -> FittedForecaster:
        from forecaster.errors import InsufficientHistory
        from forecaster.replay import FALLBACKS, EstimatorForecasting, FittedEstimator

        if self._make is None:
            return self._engine.fit(signal, history)
        try:
            return FittedEstimator(self._make().fit(history))
        except InsufficientHistory:
            # What EstimatorForecasting does for a named model: the next one down (not the
            # catalogue's default of this model, which for an ensemble has other members).
            return EstimatorForecasting(FALLBACKS[0]).fit(signal, history)


def report_forecasting(choice: ReplayChoice, make_for: Callable[[str], Estimator],
                       backtested: Collection[str]) -> ReportForecasting:
    """The engine for `choice`: a backtested model made as the backtest made it, others by the catalogue
    (`auto` selects among forecaster.replay.AUTO_MODELS at each refit)."""
    model = choice.model
    return ReportForecasting(model, (lambda: make_for(model)) if model in backtested else None)


def replay_settings(settings: ReportSettings, model: str, policies: Sequence[str]) -> ReplaySettings:
    """The window both sections replay; forecasts at the report's bin, where the leaderboard scored them."""
    from controller.sim.replay import ReplaySettings
    from forecaster.series import bin_seconds

    return ReplaySettings(
        policies=tuple(policies), model=model, quantile=settings.quantile, lead_seconds=settings.lead_seconds,
        replay_days=settings.replay_days, peak_replicas=settings.peak_replicas, seed=settings.seed,
        forecast_bin_seconds=bin_seconds(settings.bin),
    )


def _fitted_sentence(models: Mapping[str, list[str]]) -> str:
    parts = []
    for signal, names in models.items():
        counted = {n: names.count(n) for n in dict.fromkeys(names)}
        parts.append(f"{signal}: " + ", ".join(f"{n} x{c}" for n, c in counted.items()))
    return "Fitted (initial fit plus refits): " + "; ".join(parts) + "."


def replay_section(settings: ReportSettings, trace: Path, frame: pd.DataFrame, figures: Figures,
                   choice: ReplayChoice, forecasting: ReportForecasting) -> Section:
    """The policies replayed on the simulated cluster; `frame` is read_trace_csv(trace)."""
    from controller.sim.forecasting import FORECAST_SIGNALS
    from controller.sim.replay import trace_label
    from prescaler.replay_review import outcomes_figure, outcomes_frame, replicas_figure
    from prescaler.replays import replay_with_forecaster
    from prescaler.report import Section, html_table

    report = replay_with_forecaster(frame, replay_settings(settings, choice.model, ("hpa", "prescaler", "oracle")),
                                    trace_name=trace_label(trace), forecasting=forecasting)
    section = Section("Scaling replay")
    section.paragraphs.append(
        f"The last {settings.replay_days:g} day(s) replayed on the simulated vLLM cluster, scaled so the "
        f"peak needs {settings.peak_replicas:g} replicas; cold start {settings.lead_seconds:g} s; the "
        f"prescaler forecasts {' and '.join(FORECAST_SIGNALS)} at q{settings.quantile:g} with "
        f"<b class=\"replay-model\">{html.escape(choice.model)}</b>, {html.escape(choice.why)}."
    )
    models = report.details.get("prescaler", {}).get("models")
    if models:
        section.paragraphs.append(html.escape(_fitted_sentence(models)))
    section.table(html_table(outcomes_frame(report), "outcomes"))
    section.figure(figures(replicas_figure(report), "replicas.png"), "replicas per policy against the load")
    section.figure(figures(outcomes_figure(report), "outcomes.png"), "GPU-hours and SLO attainment")
    section.paragraphs.extend(html.escape(note) for note in report.notes)
    return section


def frontier_sweep(quantile: float) -> SweepSpec:
    """The report's reduced sweep: REPORT_FAMILIES at their default grids, prescaler at one point."""
    from controller.sim.frontier import PrescalerKnobs, SweepSpec

    return SweepSpec(families=REPORT_FAMILIES, grids={"prescaler": {
        "quantile": (quantile,), "target_utilization": (PrescalerKnobs().target_utilization,)}})


FRONTIER_JSON = "frontier.json"


def frontier_section(settings: ReportSettings, trace: Path, frame: pd.DataFrame, figures: Figures,
                     choice: ReplayChoice, forecasting: ReportForecasting,
                     log: Callable[[str], None] | None = None) -> tuple[Section, FrontierResult]:
    """The cost-SLO frontier of the replay's window (figure, each family's best points, the dominance
    targets), with every point in frontier.json beside the page (`prescaler frontier --json`'s shape)."""
    import pandas as pd

    from controller.sim.frontier import dominance, frontier
    from controller.sim.replay import trace_label
    from prescaler.frontier import TABLE_HEADER, days, dominance_lines, frontier_figure, table_rows, write_json
    from prescaler.report import Section, html_table

    spec = frontier_sweep(settings.quantile)
    if log is not None:
        log(f"{', '.join(spec.families)} on {settings.replay_days:g} day(s), {settings.jobs} "
            f"job{'s' if settings.jobs > 1 else ''}")
    result = frontier(frame, replay_settings(settings, choice.model, ("prescaler",)), forecasting=forecasting,
                      sweep=spec, trace_name=trace_label(trace), jobs=settings.jobs, log=log)
    write_json(result, figures.out / FRONTIER_JSON)
    section = Section("Cost-SLO frontier")
    prescaler = ", ".join(f"q{p.config.get('quantile', math.nan):g}" + (" (its default)" if p.default else "")
                          for p in result.family("prescaler"))
    section.paragraphs.append(
        f"{len(result.points)} configurations replayed on the replay's window ({days(result.replay_days)}) "
        f"with its seeded arrivals: {', '.join(f for f in REPORT_FAMILIES if f != 'prescaler')} at their "
        f"default grids (target and scale-down window or delay, fleet size), and prescaler at {prescaler}, "
        f"forecasting with {html.escape(choice.model)}. The references (oracle, hindsight) know the future: "
        f"they bound what is possible and are not contenders. <code>prescaler frontier TRACE</code> sweeps "
        f"every family and knob; every point here is in <a href=\"{FRONTIER_JSON}\">{FRONTIER_JSON}</a>."
    )
    section.figure(figures(frontier_figure(result), "frontier.png"), "GPU-hours against SLO misses per policy")
    section.table(html_table(pd.DataFrame(table_rows(result), columns=list(TABLE_HEADER)), "frontier"))
    try:
        lines = dominance_lines(dominance(result))
    except KeyError:  # no prescaler default point: nothing to measure against
        lines = []
    section.paragraphs.extend(f'<span class="dominance">{html.escape(line)}</span>' for line in lines)
    return section, result


__all__ = ["REPORT_FAMILIES", "ReplayChoice", "ReportForecasting", "choose_replay_model", "frontier_section",
           "frontier_sweep", "replay_fits", "replay_section", "report_forecasting"]
