"""The demo's files: report.json, replay.png and summary.md of a replay, written atomically.

The simulator (controller.sim.report) renders text; writing files and drawing the plot are the
composition root's I/O.
"""

from __future__ import annotations

from pathlib import Path

from controller.sim.replay import ReplayReport
from controller.sim.report import report_json, summary_markdown
from forecaster.atomic import atomic_write_bytes, atomic_write_text


def write_plot(report: ReplayReport, path: Path) -> None:
    """Load; replicas per policy against the oracle; SLO misses over time (one panel each)."""
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt
    import numpy as np

    minutes = len(report.load_per_minute)
    t = np.arange(minutes) / 1440.0
    fig, axes = plt.subplots(3, 1, figsize=(12, 9), sharex=True)
    axes[0].plot(t, np.asarray(report.load_per_minute) / 60.0, lw=0.6, color="black")
    axes[0].set_ylabel("requests/s")
    axes[0].set_title(f"{report.trace}: replayed load")
    axes[1].plot(t, report.oracle_needed, lw=0.8, color="grey", label="needed (capacity model)")
    colours = {"oracle": "tab:green", "hpa": "tab:red", "prescaler": "tab:blue", "static": "tab:purple",
               "hindsight": "tab:cyan"}
    for policy, series in report.series.items():
        axes[1].plot(t, series.requested, lw=0.8, label=f"{policy} requested", color=colours.get(policy))
    axes[1].set_ylabel("replicas")
    axes[1].legend(loc="upper left", fontsize=8, ncol=3)
    for policy, series in report.series.items():
        per_hour = np.asarray(series.slo_misses, dtype=float)
        hours = len(per_hour) // 60
        if hours:
            binned = per_hour[: hours * 60].reshape(hours, 60).sum(axis=1)
            axes[2].step(np.arange(hours) / 24.0, binned, where="post", lw=0.8,
                         label=policy, color=colours.get(policy))
    axes[2].set_yscale("symlog", linthresh=1.0)
    axes[2].set_ylabel("SLO misses per hour")
    axes[2].set_xlabel("days into the replay")
    axes[2].legend(loc="upper left", fontsize=8, ncol=4)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def write_outputs(report: ReplayReport, out: Path) -> dict[str, Path]:
    """report.json, replay.png and summary.md under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "plot": out / "replay.png", "summary": out / "summary.md"}
    atomic_write_text(paths["json"], report_json(report))
    write_plot(report, paths["plot"])
    atomic_write_text(paths["summary"], summary_markdown(report))
    return paths
