"""Figures for the forecast review (notebooks and `prescaler report`): matplotlib, plain images.

Each function returns a Figure and draws only what it is given; callers save it (`save_png`).
matplotlib is imported lazily so importing this module costs nothing where no figure is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: tests, CI and the report run without a display
    import matplotlib.pyplot as plt

    return plt


def forecast_bands(history: pd.Series, frame: pd.DataFrame, *, title: str = "") -> "Figure":
    """History (grey) and the forecast's median with its 0.9 and 0.95 bands over the review window."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.plot(history.index, history.to_numpy(), color="0.6", lw=0.8, label="history")
    if {"0.05", "0.95"} <= set(frame.columns):
        ax.fill_between(frame.index, frame["0.05"], frame["0.95"], color="tab:blue", alpha=0.15,
                        label="0.05-0.95")
    if "0.9" in frame.columns:
        ax.plot(frame.index, frame["0.9"], color="tab:orange", lw=0.9, label="q0.9 (scaled on)")
    ax.plot(frame.index, frame["0.5"], color="tab:blue", lw=1.0, label="median")
    ax.plot(frame.index, frame["actual"], color="black", lw=0.8, label="actual")
    ax.set_ylabel("rate per second")
    ax.set_title(title or "forecast against what happened")
    ax.legend(loc="upper left", fontsize=8, ncols=5)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def residual_profile(profile: pd.DataFrame, *, title: str = "") -> "Figure":
    """Bias and MAE of the median by hour of day and by day of week (UTC)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    for ax, period, label in zip(axes, ("hour", "weekday"), ("hour of day (UTC)", "day of week (Mon=0)")):
        part = profile[profile["period"] == period]
        ax.bar(part["key"], part["bias"], color="tab:red", alpha=0.7, label="bias (actual - median)")
        ax.plot(part["key"], part["mae"], color="black", marker=".", lw=0.8, label="MAE")
        ax.axhline(0, color="0.5", lw=0.5)
        ax.set_xlabel(label)
    axes[0].legend(fontsize=8)
    fig.suptitle(title or "residuals by time")
    fig.tight_layout()
    return fig


def leaderboard(scores: pd.DataFrame, *, metric: str = "mase", title: str = "") -> "Figure":
    """One bar per model and horizon for `metric` (a frame with columns model, horizon, metric)."""
    plt = _pyplot()
    table = scores.pivot(index="model", columns="horizon", values=metric).sort_values(
        by=list(scores["horizon"].unique())[-1]
    )
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(table) + 1.5))
    table.plot.barh(ax=ax)
    ax.set_xlabel(metric)
    ax.set_title(title or f"backtest {metric} by model (lower is better)")
    fig.tight_layout()
    return fig


def calibration(table: pd.DataFrame, *, coverage: float | None = None, title: str = "") -> "Figure":
    """Observed share of actuals at or below each quantile against its nominal level (the diagonal is
    perfect calibration; below it, the model under-forecasts at that level)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--", label="calibrated")
    ax.plot(table["nominal"], table["observed"], marker="o", color="tab:blue", label="observed")
    for _, row in table.iterrows():
        ax.annotate(f"{row['observed']:.2f}", (row["nominal"], row["observed"]), fontsize=8,
                    xytext=(4, -10), textcoords="offset points")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("quantile level")
    ax.set_ylabel("share of actuals at or below it")
    suffix = f" (0.05-0.95 covers {coverage:.1%})" if coverage is not None else ""
    ax.set_title(title or f"quantile calibration{suffix}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def under_forecast(frame: pd.DataFrame, episodes: pd.DataFrame, *, quantile: float = 0.9,
                   title: str = "") -> "Figure":
    """Actual against the quantile the controller scales on, the under-forecast episodes shaded."""
    from forecaster.contract import quantile_key

    plt = _pyplot()
    key = quantile_key(quantile)
    fig, ax = plt.subplots(figsize=(11, 3.5))
    ax.plot(frame.index, frame["actual"], color="black", lw=0.8, label="actual")
    ax.plot(frame.index, frame[key], color="tab:orange", lw=0.9, label=f"q{key}")
    step = frame.index[1] - frame.index[0] if len(frame.index) > 1 else pd.Timedelta(0)
    for i, (_, row) in enumerate(episodes.iterrows()):
        ax.axvspan(row["start"], row["end"] + step, color="tab:red", alpha=0.25, lw=0,
                   label="actual above q" if i == 0 else None)
    ax.set_ylabel("rate per second")
    ax.set_title(title or f"where the load exceeded q{key}: {len(episodes)} episodes (the SLO risk)")
    ax.legend(loc="upper left", fontsize=8, ncols=3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def selection_scores(table: pd.DataFrame, *, title: str = "") -> "Figure":
    """Each model's selection objective (a selection_frame), the selected one highlighted."""
    plt = _pyplot()
    table = table.dropna(subset=["score"]).iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(table) + 1.5))
    colours = ["tab:green" if "selected" in role else "tab:gray" for role in table["role"]]
    ax.barh(table["model"], table["score"], color=colours)
    objective = table["objective"].iloc[0] if len(table) else ""
    ax.set_xlabel(f"{objective} (lower is better)")
    ax.set_title(title or "why the selected model won (green)")
    fig.tight_layout()
    return fig


def fit_predict_times(runs: pd.DataFrame, *, title: str = "") -> "Figure":
    """Mean seconds per fit and per predict for each model (a model_runs_frame), log scale."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.4 * len(runs) + 1.8), sharey=True)
    import math

    from matplotlib.ticker import NullFormatter

    for ax, column, label in zip(axes, ("fit_seconds", "predict_seconds"), ("fit", "predict")):
        values = runs[column].fillna(0.0).clip(lower=1e-6)  # log scale: a baseline's ~0 s fit still shows
        # Bars start a decade below the smallest value, so their lengths compare on the log scale.
        left = 10.0 ** (math.floor(math.log10(float(values.min()))) - 1) if len(values) else 1e-6
        ax.barh(runs["model"], values, left=left, color="tab:blue")
        ax.set_xscale("log")
        ax.set_xlim(left, float(values.max()) * 20 if len(values) else 1.0)
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap inside one decade
        for y, value in enumerate(values):
            text = f"{value:.3g} s" if value >= 0.1 else f"{value * 1000:.3g} ms"
            ax.annotate(text, (value, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_xlabel(f"seconds per {label} (log)")
    fig.suptitle(title or "fit and predict times (mean per call)")
    fig.tight_layout()
    return fig


def png_bytes(fig: "Figure", dpi: int = 110) -> bytes:
    """The figure as PNG bytes, then closed (notebooks display these; the report writes them)."""
    import io

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=dpi, format="png")
    finally:
        _pyplot().close(fig)
    return buffer.getvalue()


def show(fig: "Figure", dpi: int = 110) -> None:
    """Display the figure in a notebook as a plain PNG (image/png output whatever the backend) and
    close it, so headless runs (nbclient) and Jupyter show the same image."""
    from IPython.display import Image, display

    display(Image(png_bytes(fig, dpi=dpi)))


def save_png(fig: "Figure", path: str | Path, dpi: int = 110) -> Path:
    """Write the figure atomically (temp file then rename) and close it."""
    from forecaster.atomic import atomic_write_bytes

    return atomic_write_bytes(path, png_bytes(fig, dpi))
