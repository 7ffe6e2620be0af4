"""A replay's outcome as text: the comparison table, report.json's content and summary.md's.

Pure rendering; prescaler.replay_outputs writes the files (atomically) and draws the plot.
"""

from __future__ import annotations

import json
import math

from controller.sim.replay import ReplayReport


def report_json(report: ReplayReport, *, with_series: bool = True) -> str:
    data = report.model_dump(mode="json")
    if not with_series:
        for key in ("load_per_minute", "oracle_needed", "series"):
            data.pop(key)
    return json.dumps(data, indent=1, allow_nan=False, default=str) + "\n"


def _pct(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{100 * x:.3f}%"


def _num(x: float | None, fmt: str = ".3g") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


TABLE_HEADER = ("policy", "SLO attainment", "TTFT p50 s", "TTFT p99 s", "GPU-hours", "vs oracle",
                "scale events", "at max h", "SLO misses")


def table_rows(report: ReplayReport) -> list[tuple[str, ...]]:
    return [
        (o.policy, _pct(o.slo_attainment), _num(o.ttft_p50), _num(o.ttft_p99), f"{o.gpu_hours:.1f}",
         _num(o.gpu_hours_vs_oracle, ".3f"), str(o.scale_events), f"{o.pinned_at_max_hours:.1f}",
         f"{o.slo_misses:.4g}")
        for o in report.outcomes
    ]


def markdown_table(report: ReplayReport) -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    return "\n".join(lines)


def print_table(report: ReplayReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{report.trace}: {report.window_start:%Y-%m-%d %H:%M} to "
                        f"{report.window_end:%Y-%m-%d %H:%M} UTC, lead "
                        f"{report.settings.lead_seconds:g} s, peak {report.settings.peak_replicas:g} replicas")
    for name in TABLE_HEADER:
        table.add_column(name, justify="left" if name == "policy" else "right")
    for row in table_rows(report):
        table.add_row(*row)
    Console(width=max(130, Console().width)).print(table)


def comparison_line(report: ReplayReport) -> str | None:
    """prescaler against the reactive HPA, in one sentence (None without both)."""
    by = {o.policy: o for o in report.outcomes}
    if "hpa" not in by or "prescaler" not in by:
        return None
    hpa, pre = by["hpa"], by["prescaler"]
    ratio = hpa.slo_misses / pre.slo_misses if pre.slo_misses > 0 else math.inf
    return (
        f"prescaler misses the SLO for {pre.slo_misses:.4g} requests against the reactive HPA's "
        f"{hpa.slo_misses:.4g} ({'no misses' if math.isinf(ratio) else f'{ratio:.1f}x fewer'}), "
        f"at {pre.gpu_hours / hpa.gpu_hours:.2f}x its GPU-hours."
    )


def summary_markdown(report: ReplayReport) -> str:
    s = report.settings
    days = (report.window_end - report.window_start).total_seconds() / 86400
    lines = [
        f"# Replay of {report.trace}",
        "",
        f"Window {report.window_start:%Y-%m-%d %H:%M} to {report.window_end:%Y-%m-%d %H:%M} UTC "
        f"({days:.1f} days) after {report.history_days:.1f} days of history the forecaster trained on. "
        f"The trace is scaled by {report.scale:.4g} so its peak needs {s.peak_replicas:g} replicas at "
        f"{s.target_utilization:.0%} utilisation; cold start {s.lead_seconds:g} s; TTFT SLO 2 s; seed {s.seed}; "
        f"forecast model `{s.model}` at quantile {s.quantile:g}, {s.forecast_bin_seconds // 60}-minute bins, "
        f"refit every {s.refit_seconds / 3600:g} h.",
        "",
        markdown_table(report),
        "",
    ]
    headline = comparison_line(report)
    if headline:
        lines.append(headline)
    models = report.details.get("prescaler", {}).get("models")
    if models:
        lines.append("")
        for signal, names in models.items():
            counts = {n: names.count(n) for n in dict.fromkeys(names)}
            lines.append(f"- {signal}: fitted " + ", ".join(f"{n} x{c}" for n, c in counts.items())
                         + " (initial fit plus daily refits)")
    for note in report.notes:
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"
