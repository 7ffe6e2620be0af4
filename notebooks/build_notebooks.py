"""Write the review notebooks (01, 02, 03) from the cell sources below, outputs stripped.

The notebooks are generated so their code stays reviewable as Python and they are committed with no
outputs and no execution counts (tests/notebooks checks that). Run: .venv/bin/python notebooks/build_notebooks.py
Each notebook's first code cell is tagged `parameters` (papermill) so a user can point it at their
own trace, registry or Prometheus; every computation is a package call (forecaster.review,
forecaster.plots, prescaler.replay_review), never logic of the notebook's own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


FORECAST_REVIEW = [
    ("md", "# Forecast review\n\nHistory against the forecast with its 0.5 / 0.9 / 0.95 bands, residuals by hour of "
           "day and day of week, interval coverage, and the moments the model under-forecast the quantile the "
           "controller scales on (the SLO risk). The model is fitted on the history before the review window and "
           "forecasts `horizon` ahead from each bin in it, as the service does between refits."),
    ("parameters", '''# Parameters (papermill: override any of these)
trace = None          # a trace file (CSV/Parquet, ../shared/traces format); None: the shipped ServeGen m-small
prometheus = None     # or a Prometheus base URL: the last `days` of `workload`'s vLLM counters
days = 14.0           # history to load from Prometheus
registry = None       # a model registry folder: review its latest good model for workload/signal (no refit)
workload = "m-small"  # the workload (registry name; the vLLM model_name label for Prometheus)
signal = "requests"   # requests, prompt_tokens or output_tokens
bin = "10m"           # forecast bin (the source's native bin or coarser)
model = "gbm"         # the model to fit when no registry is given
horizon = "60m"       # how far ahead each reviewed forecast was made (the controller's lead + interval)
quantile = 0.9        # the quantile the controller scales on
review_days = 2.0     # the review window at the end of the series
context_days = 1.0    # history shown before the window'''),
    ("code", '''import math

import pandas as pd

from forecaster import plots
from forecaster.estimators import make_estimator
from forecaster.review import review_forecast
from forecaster.review_inputs import load_review_series
from forecaster.series import parse_duration
from forecaster.plots import show

source = load_review_series(trace, signal=signal, bin=bin, prometheus=prometheus, model_name=workload, days=days)
horizon_bins = max(1, math.ceil(parse_duration(horizon).total_seconds() / source.bin_seconds))
if registry is not None:
    from forecaster.registry import Registry

    estimator, card, skipped = Registry(registry).load_latest_good(workload, signal)
    print(f"registry model {card.model} version {card.version}, trained to {card.training_window.end}")
    refit = False  # reviewed as stored: where its training window covers the review window, it is in-sample
else:
    estimator, refit = make_estimator(model), True
review = review_forecast(source.series, estimator, review_days=review_days, context_days=context_days,
                         horizon_bins=horizon_bins, controller_quantile=quantile, refit=refit)
fitted = f"fitted to {review.train_end:%Y-%m-%d %H:%M} UTC" if review.train_end is not None else "as stored"
print(f"{source.label}: {signal} at {source.bin_seconds // 60}-minute bins, model {review.model} {fitted}, "
      f"reviewed from {review.frame.index[0]:%Y-%m-%d %H:%M} UTC, forecasts {horizon_bins} bin(s) ahead")
pd.DataFrame([review.summary()])'''),
    ("md", "## History against the forecast"),
    ("code", '''show(plots.forecast_bands(review.context, review.frame,
                         title=f"{source.label} {signal}: {review.model} {horizon} ahead"))'''),
    ("md", "## Residuals by hour of day and day of week\n\nPositive bias: the median was below what happened "
           "(under-forecast) at that time."),
    ("code", '''show(plots.residual_profile(review.profile))
review.profile.pivot(index="key", columns="period", values="bias").round(3).T'''),
    ("md", "## Interval coverage and calibration\n\nThe 0.05-0.95 interval should hold 90% of what happened; each "
           "quantile should have its level's share of actuals at or below it."),
    ("code", '''print(f"coverage of the 0.05-0.95 interval: {review.coverage:.1%} (nominal 90%)")
show(plots.calibration(review.calibration, coverage=review.coverage))
review.calibration'''),
    ("md", "## When the model under-forecast (the SLO risk)\n\nRuns of bins where the load exceeded the quantile "
           "the controller provisions for, worst first."),
    ("code", '''show(plots.under_forecast(review.frame, review.episodes, quantile=quantile))
review.episodes.head(10)'''),
]

LEADERBOARD = [
    ("md", "# Model leaderboard\n\nThe rolling-origin backtest of every candidate at the controller's horizons, "
           "why the selected model won, and what each costs to fit and to predict."),
    ("parameters", '''# Parameters (papermill: override any of these)
trace = None          # a trace file; None: the shipped ServeGen m-small
prometheus = None     # or a Prometheus base URL (the last `days` of `workload`)
days = 14.0
registry = None       # a model registry folder: show the backtest stored in its latest model card instead
workload = "m-small"
signal = "requests"
bin = "10m"
models = ["last_value", "seasonal_naive_daily", "gbm"]  # catalogue names, or "all"
horizons = ["15m", "60m"]   # the controller's lead time and lead + interval
quantile = 0.9              # the controller's quantile
objective = "pinball@0.9"   # the selection objective (mase, smape, pinball, pinball@Q)
eval_days = 2.0             # span of the backtest origins at the end of the series
refits = 2                  # fits per model (origins between reuse the fit, as the service does)'''),
    ("code", '''import pandas as pd

from forecaster import plots
from forecaster.review import leaderboard_frame, model_runs_frame, selection_frame
from forecaster.plots import show

if registry is not None:
    from forecaster.registry import Registry

    card = Registry(registry).latest(workload, signal)
    if card is None:
        raise SystemExit(f"no verified model for {workload}/{signal} in {registry}")
    evidence, choice = card.backtest, card.selection.model_dump()
    title = f"{workload}/{signal} model card {card.version}"
else:
    from forecaster.backtest import backtest
    from forecaster.review_inputs import load_review_series
    from forecaster.selection import select
    from forecaster.training import make_config, resolve_models

    source = load_review_series(trace, signal=signal, bin=bin, prometheus=prometheus, model_name=workload, days=days)
    config = make_config(horizons, objective=objective, controller_quantile=quantile, eval_days=eval_days,
                         refits=refits)
    evidence = backtest(source.series, resolve_models(models), config, native_bin_seconds=source.native_bin_seconds)
    choice = select(evidence, objective)
    title = f"{source.label} {signal}"
board = leaderboard_frame(evidence)
board.round(4)'''),
    ("md", "## Scores by model and horizon"),
    ("code", '''show(plots.leaderboard(board, metric="pinball_q", title=f"{title}: pinball loss at q{quantile:g}"))
show(plots.leaderboard(board, metric="mase", title=f"{title}: MASE of the point forecast"))'''),
    ("md", "## Why the selected model won"),
    ("code", '''chosen = selection_frame(choice)
print(choice["reason"] if isinstance(choice, dict) else choice.reason)
show(plots.selection_scores(chosen))
chosen'''),
    ("md", "## Fit and predict times"),
    ("code", '''runs = model_runs_frame(evidence)
show(plots.fit_predict_times(runs))
runs'''),
]

REPLAY = [
    ("md", "# Scaling replay\n\nThe shipped trace (or yours) replayed on the simulated vLLM cluster: replicas over "
           "time per policy against the oracle and the load, SLO misses, GPU-hours, and a small sweep of the "
           "lead time and the forecast quantile on a short slice."),
    ("parameters", '''# Parameters (papermill: override any of these)
trace = None            # a trace file with one-minute rows (timestamp, requests[, prompt_tokens, output_tokens]); None: shipped
policies = ["hpa", "prescaler", "oracle"]
model = "seasonal_naive_daily"   # the prescaler's forecast model ("auto" backtests every model: slow)
lead = "5m"             # replica cold start (scale patch to serving)
quantile = 0.9          # the forecast quantile the prescaler provisions for
replay_days = 1.0       # the window at the end of the trace
peak_replicas = 20.0    # the trace is scaled so its peak needs this many replicas
seed = 0
sweep_leads = ["2m", "10m"]       # the sweep runs on a short slice so it stays fast
sweep_quantiles = [0.5, 0.9]
sweep_days = 0.25'''),  # noqa: E501 - a notebook cell verbatim (tests/notebooks compares the committed file)
    ("code", '''from pathlib import Path

from controller.sim.replay import ReplaySettings, trace_label
from prescaler.replay_review import (outcomes_figure, outcomes_frame, replicas_figure, sweep,
                                     sweep_figure)
from prescaler.replays import replay_with_forecaster
from prescaler.traces import read_trace_csv
from forecaster.series import parse_duration
from forecaster.sources import shipped_trace_path
from forecaster.plots import show

path = Path(trace) if trace is not None else shipped_trace_path()
frame = read_trace_csv(path)
settings = ReplaySettings(policies=tuple(policies), model=model, lead_seconds=parse_duration(lead).total_seconds(),
                          quantile=quantile, replay_days=replay_days, peak_replicas=peak_replicas, seed=seed)
report = replay_with_forecaster(frame, settings, trace_name=trace_label(path))
outcomes = outcomes_frame(report)
outcomes.round(4)'''),
    ("md", "## Replicas over time against the oracle and the load"),
    ("code", '''show(replicas_figure(report))'''),
    ("md", "## SLO misses and GPU-hours"),
    ("code", '''show(outcomes_figure(report))
outcomes[["policy", "slo_misses", "slo_attainment", "gpu_hours", "gpu_hours_vs_oracle"]]'''),
    ("md", "## The effect of lead time and quantile\n\nThe same slice replayed for each lead time and quantile; "
           "hpa ignores the forecast, so it has one point per lead."),
    ("code", '''base = settings.model_copy(update={"replay_days": sweep_days})
effects = sweep(frame, base, leads=[parse_duration(x).total_seconds() for x in sweep_leads],
                quantiles=sweep_quantiles, trace_name=trace_label(path))
show(sweep_figure(effects))
effects.round(4)'''),
]

NOTEBOOKS = {
    "01_forecast_review.ipynb": FORECAST_REVIEW,
    "02_model_leaderboard.ipynb": LEADERBOARD,
    "03_scaling_replay.ipynb": REPLAY,
}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, source) in enumerate(cells):
        if kind == "md":
            cell = new_markdown_cell(source)
        else:
            cell = new_code_cell(source)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
        cell.id = f"cell-{i:02d}"  # stable ids, so regenerating changes no line that did not change
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def main(out: Path = HERE) -> list[Path]:
    sys.path.insert(0, str(HERE.parent))
    from forecaster.atomic import atomic_write_text

    written = []
    for name, cells in NOTEBOOKS.items():
        text = nbformat.writes(build(cells))
        written.append(atomic_write_text(out / name, text if text.endswith("\n") else text + "\n"))
    return written


if __name__ == "__main__":
    for path in main():
        print(path)
