"""The replay part of the review (notebook 03 and `prescaler report`): tables, a lead-time and
quantile sweep, and figures over controller.sim's ReplayReport.

pandas and matplotlib load inside the functions, so importing this module (as the `prescaler`
command does) costs nothing; controller.sim loads on the first replay.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from controller.sim.replay import ReplayReport, ReplaySettings

OUTCOME_COLUMNS = ("policy", "slo_attainment", "slo_misses", "gpu_hours", "gpu_hours_vs_oracle",
                   "scale_events", "ttft_p99", "requests")
SWEEP_COLUMNS = ("lead_seconds", "quantile", "policy", "slo_attainment", "slo_misses", "gpu_hours",
                 "gpu_hours_vs_oracle", "scale_events")
# Policies whose outcome does not depend on the forecast quantile: replayed once per lead time.
_QUANTILE_FREE = ("hpa", "static")


def outcomes_frame(report: "ReplayReport") -> "pd.DataFrame":
    """One row per policy: SLO attainment and misses, GPU-hours (and against the oracle), events."""
    import pandas as pd

    rows = [{c: getattr(o, c) for c in OUTCOME_COLUMNS} for o in report.outcomes]
    return pd.DataFrame(rows, columns=list(OUTCOME_COLUMNS))


def replicas_frame(report: "ReplayReport") -> "pd.DataFrame":
    """Per-minute series on a UTC index: load (requests/s), `needed` (the capacity model's replicas
    for the actual load, what the oracle provisions ahead of), and `<policy>_requested`,
    `<policy>_ready`, `<policy>_slo_misses` for each policy."""
    import numpy as np
    import pandas as pd

    minutes = len(report.load_per_minute)
    index = pd.date_range(pd.Timestamp(report.window_start), periods=minutes, freq="1min", name="timestamp")
    data: dict[str, np.ndarray] = {
        "load": np.asarray(report.load_per_minute, dtype="float64") / 60.0,
        "needed": np.asarray(report.oracle_needed[:minutes], dtype="float64"),
    }
    for policy, series in report.series.items():
        for field in ("requested", "ready", "slo_misses"):
            values = np.asarray(getattr(series, field), dtype="float64")[:minutes]
            if len(values) != minutes:
                raise ValueError(
                    f"replay series {policy}.{field} has {len(values)} minutes, the load has {minutes}"
                )
            data[f"{policy}_{field}"] = values
    return pd.DataFrame(data, index=index)


def sweep(
    frame: "pd.DataFrame",
    base: "ReplaySettings",
    *,
    leads: Sequence[float],
    quantiles: Sequence[float],
    replay: Callable | None = None,
    trace_name: str = "trace",
) -> "pd.DataFrame":
    """Replay `frame` for every lead time (seconds) and forecast quantile: the effect of each.

    Every run shares `base`'s window, seed and model, so only lead and quantile differ. The oracle
    runs with each, so `gpu_hours_vs_oracle` compares like with like (a longer lead costs the oracle
    too). Policies that ignore the forecast (hpa, static) run once per lead and are reported with
    quantile NaN. `replay` defaults to prescaler.replays.replay_with_forecaster (tests pass a fake).
    """
    import math

    import pandas as pd

    if not leads or not quantiles:
        raise ValueError(f"sweep needs at least one lead and one quantile (got leads={list(leads)}, "
                         f"quantiles={list(quantiles)})")
    bad = [q for q in quantiles if not 0.0 < float(q) < 1.0]
    if bad:
        raise ValueError(f"sweep quantiles must be in (0, 1), got {bad}")
    if any(float(lead) < 0 for lead in leads):
        raise ValueError(f"sweep leads must be >= 0 seconds, got {list(leads)}")
    if replay is None:
        from prescaler.replays import replay_with_forecaster

        replay = replay_with_forecaster
    forecast_policies = tuple(p for p in base.policies if p not in _QUANTILE_FREE and p != "oracle")
    free_policies = tuple(p for p in base.policies if p in _QUANTILE_FREE)
    rows = []
    for lead in leads:
        for i, quantile in enumerate(quantiles):
            policies = ("oracle", *forecast_policies, *(free_policies if i == 0 else ()))
            settings = base.model_copy(update={
                "lead_seconds": float(lead), "quantile": float(quantile), "policies": policies,
            })
            report = replay(frame, settings, trace_name=trace_name)
            for o in report.outcomes:
                rows.append({
                    "lead_seconds": float(lead),
                    "quantile": math.nan if o.policy in _QUANTILE_FREE or o.policy == "oracle" else float(quantile),
                    "policy": o.policy,
                    "slo_attainment": o.slo_attainment,
                    "slo_misses": o.slo_misses,
                    "gpu_hours": o.gpu_hours,
                    "gpu_hours_vs_oracle": o.gpu_hours_vs_oracle,
                    "scale_events": o.scale_events,
                })
    table = pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))
    # The oracle does not use the quantile: keep one oracle row per lead.
    oracle = table["policy"] == "oracle"
    table = pd.concat([table[~oracle], table[oracle].drop_duplicates(subset=["lead_seconds"])])
    return table.sort_values(["lead_seconds", "policy", "quantile"], ignore_index=True)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: tests, CI and the report run without a display
    import matplotlib.pyplot as plt

    return plt


_COLOURS = {"oracle": "tab:green", "hpa": "tab:red", "prescaler": "tab:blue", "static": "tab:purple"}


def replicas_figure(report: "ReplayReport", *, title: str = "") -> "Figure":
    """Load; replicas requested per policy against what the load needed; SLO misses per hour."""
    plt = _pyplot()
    table = replicas_frame(report)
    policies = list(report.series)
    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True, height_ratios=(1, 2, 1))
    axes[0].plot(table.index, table["load"], color="black", lw=0.6)
    axes[0].set_ylabel("requests/s")
    axes[0].set_title(title or f"{report.trace}: replay, lead {report.settings.lead_seconds:g} s, "
                               f"quantile {report.settings.quantile:g}")
    axes[1].plot(table.index, table["needed"], color="0.5", lw=1.2, label="needed by the load")
    for policy in policies:
        axes[1].plot(table.index, table[f"{policy}_requested"], lw=0.8, color=_COLOURS.get(policy),
                     label=f"{policy}")
    axes[1].set_ylabel("replicas requested")
    axes[1].legend(loc="upper left", fontsize=8, ncols=len(policies) + 1)
    hourly = table[[f"{p}_slo_misses" for p in policies]].resample("1h").sum()
    for policy in policies:
        axes[2].step(hourly.index, hourly[f"{policy}_slo_misses"], where="post", lw=0.8,
                     color=_COLOURS.get(policy), label=policy)
    axes[2].set_yscale("symlog", linthresh=1.0)
    axes[2].set_ylabel("SLO misses / hour")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def sweep_figure(table: "pd.DataFrame", *, title: str = "") -> "Figure":
    """SLO attainment and GPU-hours against lead time, one line per (policy, quantile)."""
    import math

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for (policy, quantile), part in table.groupby(["policy", "quantile"], dropna=False, sort=True):
        label = policy if isinstance(quantile, float) and math.isnan(quantile) else f"{policy} q{quantile:g}"
        part = part.sort_values("lead_seconds")
        style = {"color": _COLOURS.get(policy), "marker": "o", "lw": 1.0}
        if policy == "prescaler" and not math.isnan(quantile):
            style["alpha"] = 0.4 + 0.6 * float(quantile)
        minutes = part["lead_seconds"] / 60.0
        axes[0].plot(minutes, 100 * part["slo_attainment"], label=label, **style)
        axes[1].plot(minutes, part["gpu_hours"], label=label, **style)
    axes[0].set_ylabel("SLO attainment %")
    axes[1].set_ylabel("GPU-hours")
    for ax in axes:
        ax.set_xlabel("lead time (minutes)")
    axes[1].legend(fontsize=8)
    fig.suptitle(title or "effect of lead time and forecast quantile")
    fig.tight_layout()
    return fig


def outcomes_figure(report: "ReplayReport", *, title: str = "") -> "Figure":
    """GPU-hours and SLO attainment per policy, side by side (the trade the policies make)."""
    plt = _pyplot()
    table = outcomes_frame(report)
    colours = [_COLOURS.get(p, "tab:gray") for p in table["policy"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    axes[0].bar(table["policy"], table["gpu_hours"], color=colours)
    axes[0].set_ylabel("GPU-hours")
    axes[1].bar(table["policy"], 100 * table["slo_attainment"], color=colours)
    low = float(100 * table["slo_attainment"].min()) if len(table) else 0.0
    axes[1].set_ylim(max(0.0, low - 2.0), 100.2)
    axes[1].set_ylabel("SLO attainment %")
    fig.suptitle(title or "cost and service per policy")
    fig.tight_layout()
    return fig
