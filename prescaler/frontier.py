"""`prescaler frontier`: every policy family's knobs swept on one replay, the cost-SLO frontier out.

controller.sim.frontier runs the sweep; this module is its composition root and its outputs:
the JSON the benchmark and CI read (issue 16's shape, plus the dominance targets), the table people
read (numbers formatted for them: 98.11 %, 1.39x, 9.1e6), and the frontier plot.

Realism flags (`--timeout`, `--max-waiting-per-replica`, `--cold-start`) change the simulated
cluster for every point; `--capacity-error e` changes what prescaler believes: its capacity model's
per-replica rates are (1 + e) x the simulated replica's, for every prescaler point of the sweep.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from prescaler.simulate import REPLICA_HELP, _fail, _load, _replica, _seconds, _settings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from controller.sim.config import SimConfig
    from controller.sim.frontier import Dominance, FrontierPoint, FrontierResult, SweepSpec
    from controller.sim.replay import ReplaySettings

# issue 16's dominance targets: a rival at <= prescaler's GPU-hours misses >= 5x as many requests;
# a rival at >= prescaler's SLO attainment uses >= 1.25x its GPU-hours.
MISS_RATIO_TARGET = 5.0
COST_RATIO_TARGET = 1.25
COLD_START_KINDS = ("tail", "lognormal")


# ---------------------------------------------------------------------------------------------------
# Numbers for people
# ---------------------------------------------------------------------------------------------------


def pct(x: float | None) -> str:
    """98.11 %; as many decimals as it takes not to show 100.00 % for something below 1."""
    if x is None or math.isnan(x):
        return "-"
    for decimals in range(2, 6):
        text = f"{100 * x:.{decimals}f}"
        if x >= 1.0 or float(text) < 100.0:
            return f"{text} %"
    return f"{100 * x:.5f} %"


def times(x: float | None) -> str:
    """1.39x (inf where the rival misses and prescaler does not)."""
    if x is None or math.isnan(x):
        return "-"
    return "inf" if math.isinf(x) else f"{x:.2f}x"


def count(x: float) -> str:
    """9.1e6 for large counts, 8,120 for small ones (the fluid queue makes misses fractional)."""
    if math.isnan(x):
        return "-"
    if abs(x) < 10_000:
        return f"{x:,.0f}"
    exponent = math.floor(math.log10(abs(x)))
    mantissa = round(x / 10**exponent, 1)
    if abs(mantissa) >= 10:  # 9.96e6 rounds to 10.0e6
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.1f}e{exponent}"


def days(x: float) -> str:
    return f"{x:.3g} day{'' if x == 1 else 's'}"


def hours(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


_KNOB_LABELS: dict[str, str] = {
    "target": "target {:g}x",
    "scale_down_window_seconds": "down window {:g} s",
    "scale_down_delay_seconds": "down delay {:g} s",
    "fraction": "{:g} of peak",
    "quantile": "q{:g}",
    "target_utilization": "util {:g}",
    "reactive_target": "reactive target {:g}x",
}


def config_label(config: Mapping[str, Any], *, omit: Mapping[str, Any] | None = None) -> str:
    """A point's knobs in a few words: `target 0.7x, down window 900 s`; knobs whose value is the
    one in `omit` are left out."""
    parts = []
    for knob, value in config.items():
        if omit is not None and knob in omit and omit[knob] == value:
            continue
        if knob == "use_cached_metrics":
            parts.append("cached metrics" if value else "")
        elif knob == "reactive_metric":
            parts.append(f"reactive {value}")
        elif knob == "scale_down_window_seconds" and value is None:
            parts.append("no behavior")
        elif knob == "peak_quantile":
            parts.append(f"peak q{value:g}" if value is not None else "")
        elif knob == "queue_weight":
            parts.append(f"queue weight {value:g}")
        elif knob == "capacity_error":
            parts.append(f"capacity error {100 * value:+.0f} %" if value else "")
        elif knob in _KNOB_LABELS and isinstance(value, (int, float)):
            parts.append(_KNOB_LABELS[knob].format(value))
        else:
            parts.append(f"{knob} {value}")
    return ", ".join(p for p in parts if p) or "-"


# prescaler's knobs beyond quantile and headroom are shown only where a point changes them.
_PRESCALER_UNSHOWN = {"scale_down_window_seconds": None, "reactive_metric": "inflight", "reactive_target": 0.8,
                      "capacity_error": 0.0, "queue_weight": 0.2, "peak_quantile": None}


def point_config(point: FrontierPoint) -> str:
    omit = _PRESCALER_UNSHOWN if point.family in ("prescaler", "hindsight", "hindsight-peak") else None
    return config_label(point.config, omit=omit) if point.config else "-"


def point_label(point: FrontierPoint) -> str:
    return f"{point.family} ({point_config(point)})" if point.config else point.family


# ---------------------------------------------------------------------------------------------------
# Dominance, as data and as sentences
# ---------------------------------------------------------------------------------------------------


def _finite(x: float | None) -> float | None:
    # JSON has no infinity: an infinite miss ratio (prescaler misses nothing, the rival does) is
    # written as null next to a rival point and miss_target_met true.
    return None if x is None or math.isinf(x) else x


def dominance_json(d: Dominance) -> dict[str, Any]:
    """The two ratios, their targets, and the two rival points (null: no such rival)."""
    return {
        "prescaler": d.prescaler.model_dump(mode="json"),
        "best_at_equal_cost": None if d.best_at_equal_cost is None else d.best_at_equal_cost.model_dump(mode="json"),
        "miss_ratio": _finite(d.miss_ratio),
        "miss_ratio_target": MISS_RATIO_TARGET,
        "miss_target_met": d.miss_target_met,
        "cheapest_at_equal_slo": (None if d.cheapest_at_equal_slo is None
                                  else d.cheapest_at_equal_slo.model_dump(mode="json")),
        "cost_ratio": _finite(d.cost_ratio),
        "cost_ratio_target": COST_RATIO_TARGET,
        "cost_target_met": d.cost_target_met,
    }


def frontier_data(result: FrontierResult) -> dict[str, Any]:
    """issue 16's JSON: {"trace", "oracle_gpu_hours", "points": [...]} plus "dominance" and the settings."""
    from controller.sim.frontier import dominance

    data = result.model_dump(mode="json")
    data["dominance"] = dominance_json(dominance(result)) if _has_dominance(result) else None
    return data


def frontier_json(result: FrontierResult) -> str:
    return json.dumps(frontier_data(result), indent=1, allow_nan=False) + "\n"


def _prescaler_default(result: FrontierResult) -> FrontierPoint | None:
    return next((p for p in result.points if p.family == "prescaler" and p.default), None)


def _has_dominance(result: FrontierResult) -> bool:
    """Dominance needs prescaler's default point and at least one reactive rival: without rivals
    both targets would be met by default, which says nothing."""
    from controller.sim.frontier import REACTIVE_FAMILIES

    return _prescaler_default(result) is not None and any(
        p.family in REACTIVE_FAMILIES and not p.reference for p in result.points)


def miss_shortfall(d: Dominance) -> str:
    """How far the miss ratio is from its target, as what prescaler would have to change."""
    if d.miss_target_met or d.miss_ratio is None:
        return ""
    if d.prescaler.slo_misses <= 0:
        return "neither misses a request (a tie at zero)"
    return f"prescaler would need {MISS_RATIO_TARGET / d.miss_ratio:.1f}x fewer misses"


def cost_shortfall(d: Dominance) -> str:
    if d.cost_target_met or d.cost_ratio is None:
        return ""
    return f"prescaler would need {100 * (1 - d.cost_ratio / COST_RATIO_TARGET):.0f} % fewer GPU-hours"


def dominance_lines(d: Dominance) -> list[str]:
    """The two targets of issue 16 as sentences, each MET or NOT MET with its shortfall."""
    pre = d.prescaler
    if d.best_at_equal_cost is None:
        first = (f"no reactive point at <= prescaler's GPU-hours ({hours(pre.gpu_hours)}): "
                 f"target >= {MISS_RATIO_TARGET:g}x MET")
    else:
        ratio = "inf (prescaler misses none)" if d.miss_ratio is not None and math.isinf(d.miss_ratio) \
            else times(d.miss_ratio)
        verdict = "MET" if d.miss_target_met else f"NOT MET: {miss_shortfall(d)}"
        first = (f"best reactive at <= prescaler's GPU-hours: {point_label(d.best_at_equal_cost)} misses "
                 f"{ratio} prescaler's ({count(d.best_at_equal_cost.slo_misses)} vs {count(pre.slo_misses)}; "
                 f"target >= {MISS_RATIO_TARGET:g}x) {verdict}")
    if d.cheapest_at_equal_slo is None:
        second = (f"no reactive point reaches prescaler's SLO ({pct(pre.slo_attainment)}): "
                  f"target >= {COST_RATIO_TARGET:g}x MET")
    else:
        verdict = "MET" if d.cost_target_met else f"NOT MET: {cost_shortfall(d)}"
        second = (f"cheapest reactive at >= prescaler's SLO: {point_label(d.cheapest_at_equal_slo)} uses "
                  f"{times(d.cost_ratio)} its GPU-hours ({pct(d.cheapest_at_equal_slo.slo_attainment)}; "
                  f"target >= {COST_RATIO_TARGET:g}x) {verdict}")
    return [first, second]


# ---------------------------------------------------------------------------------------------------
# The table: each family's best points
# ---------------------------------------------------------------------------------------------------


def best_points(result: FrontierResult) -> list[tuple[str, FrontierPoint]]:
    """(role, point) per family: its default, and the points that decide the dominance targets.

    A reactive family shows its fewest-misses point at <= prescaler default's GPU-hours and its
    cheapest point at >= prescaler default's SLO attainment (its best answers to prescaler), or,
    with neither, its fewest-misses point; prescaler shows its default and its fewest-misses point.
    Then the references (they peek).
    """
    pre = _prescaler_default(result)

    def fewest(points: list[FrontierPoint]) -> FrontierPoint:
        return min(points, key=lambda p: (p.slo_misses, p.gpu_hours))

    rows: list[tuple[str, FrontierPoint]] = []
    for family in dict.fromkeys(p.family for p in result.points if not p.reference):
        points = [p for p in result.points if p.family == family and not p.reference]
        picked = [("default", p) for p in points if p.default]
        rivals: list[tuple[str, FrontierPoint]] = []
        if family != "prescaler" and pre is not None:
            cheaper = [p for p in points if p.gpu_hours <= pre.gpu_hours]
            reaching = [p for p in points if p.slo_attainment >= pre.slo_attainment]
            if cheaper:
                rivals.append(("best at <= prescaler GPU-h", fewest(cheaper)))
            if reaching:
                rivals.append(("cheapest at >= prescaler SLO", min(reaching, key=lambda p: p.gpu_hours)))
        picked += rivals or [("fewest misses", fewest(points))]
        shown: list[FrontierPoint] = []
        for role, point in picked:
            if not any(point is other for other in shown):
                shown.append(point)
                rows.append((role, point))
    rows += [("reference (peeks)", p) for p in result.points if p.reference]
    return rows


TABLE_HEADER = ("family", "config", "role", "SLO attainment", "GPU-h", "vs oracle", "SLO misses",
                "scale events")


def table_rows(result: FrontierResult) -> list[tuple[str, ...]]:
    return [
        (p.family, point_config(p), role, pct(p.slo_attainment), hours(p.gpu_hours),
         times(p.gpu_hours_vs_oracle), count(p.slo_misses), str(p.scale_events))
        for role, p in best_points(result)
    ]


def print_table(result: FrontierResult) -> None:
    from rich.console import Console
    from rich.table import Table

    from controller.sim.frontier import dominance

    realism = ", ".join(f"{k} {v}" for k, v in result.realism.items()) or "none"
    table = Table(title=f"{result.trace}: frontier of {len(result.points)} points over {days(result.replay_days)}, "
                        f"{result.scaling} scaling, realism {realism}; oracle "
                        f"{hours(result.oracle_gpu_hours)} GPU-h")
    for name in TABLE_HEADER:
        table.add_column(name, justify="left" if name in ("family", "config", "role") else "right")
    for row in table_rows(result):
        table.add_row(*row)
    console = Console(width=max(150, Console().width))
    console.print(table)
    if _has_dominance(result):
        for line in dominance_lines(dominance(result)):
            console.print(line, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------------------------------------
# The plot
# ---------------------------------------------------------------------------------------------------

FAMILY_STYLE: dict[str, tuple[str, str]] = {  # marker, colour
    "hpa-inflight": ("o", "tab:red"),
    "hpa-running": ("s", "tab:orange"),
    "hpa-kv": ("D", "tab:brown"),
    "keda-waiting": ("v", "tab:pink"),
    "kpa": ("^", "tab:olive"),
    "static": ("X", "tab:purple"),
    "prescaler": ("o", "tab:blue"),
    "oracle": ("*", "black"),
    "hindsight": ("P", "tab:cyan"),
    "hindsight-peak": ("P", "tab:olive"),
}
DEFAULT_NOTES = {"hpa-inflight": "default HPA (make demo's)", "prescaler": "prescaler default"}
# Where each default's label goes (points): apart, since the defaults often sit close together.
LABEL_OFFSETS = {"hpa-inflight": (8, 8), "prescaler": (8, -26), "oracle": (8, -12), "hindsight": (8, 10),
                 "hindsight-peak": (8, -14)}


def frontier_figure(result: FrontierResult) -> Figure:
    """GPU-hours vs oracle (x) against SLO misses (log y), one marker per family.

    Each family's default point is ringed and named; oracle and hindsight are reference markers
    named as such (they peek); the reactive families' Pareto frontier is a staircase line. A log
    axis has no zero: points without misses sit on a dotted floor line a decade below the fewest
    misses of any point that has some.
    """
    from controller.sim.frontier import REACTIVE_FAMILIES, pareto
    from forecaster.plots import _pyplot

    plt = _pyplot()
    positive = [p.slo_misses for p in result.points if p.slo_misses > 0]
    floor = 10 ** (math.floor(math.log10(min(positive))) - 1) if positive else 1.0

    def y(point: FrontierPoint) -> float:
        return point.slo_misses if point.slo_misses > 0 else floor

    def x(point: FrontierPoint) -> float:
        return point.gpu_hours_vs_oracle if point.gpu_hours_vs_oracle is not None else math.nan

    fig, ax = plt.subplots(figsize=(13, 6.5))
    for family in dict.fromkeys(p.family for p in result.points):
        points = result.family(family)
        marker, colour = FAMILY_STYLE.get(family, ("o", "grey"))
        reference = all(p.reference for p in points)
        label = f"{family} (reference: peeks)" if reference else family
        ax.scatter([x(p) for p in points], [y(p) for p in points], marker=marker, color=colour,
                   s=120 if reference else 36, alpha=1.0 if reference else 0.75, label=label, zorder=3)
        for p in points:
            if p.default and not p.reference:
                ax.scatter([x(p)], [y(p)], marker=marker, s=180, facecolors="none", edgecolors="black",
                           linewidths=1.6, zorder=4)
                ax.annotate(f"{DEFAULT_NOTES.get(family, family + ' default')}\n{pct(p.slo_attainment)}, "
                            f"{times(p.gpu_hours_vs_oracle)}", (x(p), y(p)), xytext=LABEL_OFFSETS.get(family, (8, 8)),
                            textcoords="offset points", fontsize=8, zorder=5,
                            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85})
            elif p.reference:
                ax.annotate(f"{family} (peeks)", (x(p), y(p)), xytext=LABEL_OFFSETS.get(family, (8, -12)),
                            textcoords="offset points",
                            fontsize=8, zorder=5)
    front = pareto([p for p in result.points if p.family in REACTIVE_FAMILIES and not p.reference])
    if front:
        ax.plot([x(p) for p in front], [y(p) for p in front], drawstyle="steps-post", color="dimgrey",
                lw=1.2, ls="-", label="reactive Pareto frontier", zorder=2)
    if any(p.slo_misses <= 0 for p in result.points):
        ax.axhline(floor, color="grey", ls=":", lw=0.8)
        ax.annotate("no misses", (0.995, floor), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                    fontsize=8, color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("GPU-hours vs oracle")
    ax.set_ylabel("SLO misses (requests, log)")
    ax.set_title(f"{result.trace}: cost-SLO frontier, {days(result.replay_days)}, {result.scaling} scaling")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside: never over a point
    fig.tight_layout()
    return fig


def write_png(result: FrontierResult, path: Path) -> Path:
    from forecaster.plots import save_png

    return save_png(frontier_figure(result), path)


def write_json(result: FrontierResult, path: Path) -> Path:
    from forecaster.atomic import atomic_write_text

    return atomic_write_text(path, frontier_json(result))


# ---------------------------------------------------------------------------------------------------
# Building a sweep: a spec file, families, the capacity error, the realism config
# ---------------------------------------------------------------------------------------------------


def read_sweep_file(path: Path) -> dict[str, Any]:
    """A sweep spec's mapping from YAML (.yaml, .yml) or JSON (.json); ValueError naming the file."""
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise ValueError(f"--sweep {path}: expected a .yaml, .yml or .json file")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"--sweep {path}: cannot read it ({exc.strerror or exc})") from exc
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--sweep {path}: not valid JSON ({exc})") from exc
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"--sweep {path}: not valid YAML ({exc})") from exc
    if data is None:  # an empty file: every family at its default grid
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"--sweep {path}: expected a mapping with families and grids, got {type(data).__name__}")
    return data


def build_sweep(data: Mapping[str, Any], *, families: Sequence[str] | None = None,
                capacity_error: float | None = None) -> SweepSpec:
    """The sweep spec, with `families` replacing the spec's and every prescaler point misestimating
    its capacity by `capacity_error`. FrontierError names the family and the knob."""
    from controller.sim.frontier import FrontierError, parse_sweep

    merged = dict(data)
    if families is not None:
        merged["families"] = tuple(families)
    spec = parse_sweep(merged)
    if capacity_error is None:
        return spec
    if "capacity_error" in spec.grids.get("prescaler", {}):
        raise FrontierError("prescaler.capacity_error: set by both --capacity-error and the sweep's grid; "
                            "choose one")
    sweep = capacity_error_sweep().model_validate({**spec.model_dump(), "capacity_error": capacity_error})
    sweep.points()  # the error checked now (PrescalerKnobs bounds it), not in the middle of a sweep
    return sweep


@functools.cache
def capacity_error_sweep() -> type[SweepSpec]:
    """SweepSpec whose prescaler points all carry one capacity error (built on first use, so that
    importing this module, as `prescaler --help` does, does not import the simulator)."""
    from pydantic import ValidationError

    from controller.sim.frontier import FrontierError, PrescalerKnobs, SweepSpec, _Knobs

    class CapacityErrorSweep(SweepSpec):
        """Every prescaler point believes a replica sustains (1 + e) x what it does.

        The error is a condition of the replay, not a knob: each point, the default included, keeps
        its place and its `default` flag and carries the error. hindsight, which frontier()
        configures itself, keeps the true capacity.
        """

        capacity_error: float = 0.0

        def points(self) -> list[tuple[str, _Knobs, bool]]:
            out: list[tuple[str, _Knobs, bool]] = []
            for family, knobs, is_default in super().points():
                if isinstance(knobs, PrescalerKnobs):
                    try:
                        knobs = PrescalerKnobs(**{**knobs.model_dump(), "capacity_error": self.capacity_error})
                    except ValidationError as exc:
                        raise FrontierError(f"prescaler.capacity_error: {exc.errors()[0]['msg']} "
                                            f"(got {self.capacity_error!r})") from exc
                out.append((family, knobs, is_default))
            return out

    return CapacityErrorSweep


def realism_config(settings: ReplaySettings, *, timeout_seconds: float | None = None,
                   max_waiting_per_replica: float | None = None, cold_start: str | None = None) -> SimConfig:
    """The replay's SimConfig with the realism knobs set (ValueError naming the field and the value)."""
    from pydantic import ValidationError

    from controller.sim.coldstart import ColdStartModel
    from controller.sim.config import SimConfig

    base = settings.sim_config()
    updates: dict[str, Any] = {}
    if timeout_seconds is not None:
        updates["request_timeout_seconds"] = timeout_seconds
    if max_waiting_per_replica is not None:
        updates["max_waiting_per_replica"] = max_waiting_per_replica
    if cold_start is not None:
        if cold_start not in COLD_START_KINDS:
            raise ValueError(f"--cold-start {cold_start!r} unknown; choose one of {', '.join(COLD_START_KINDS)}")
        updates["cold_start"] = ColdStartModel(kind=cold_start)
    if not updates:
        return base
    try:
        return SimConfig.model_validate({**base.model_dump(), **updates})
    except ValidationError as exc:
        raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})"
                                   for e in exc.errors())) from exc


def with_capacity_error(result: FrontierResult, capacity_error: float | None) -> FrontierResult:
    """The result with the capacity error recorded among its realism conditions."""
    if capacity_error is None:
        return result
    return result.model_copy(update={"realism": {**result.realism, "capacity_error": capacity_error}})


# ---------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------


def frontier(
    trace: Path = typer.Argument(..., help="a *_1min.csv trace: timestamp, requests[, prompt_tokens, output_tokens]"),
    lead: str = typer.Option("5m", "--lead", help="cold start of a replica (scale request to serving)"),
    replay_days: Optional[float] = typer.Option(None, "--replay-days", help="replay the last N days"),
    tokens: str = typer.Option("trace", "--tokens", help="trace, azure-conv, azure-code or mooncake"),
    peak_replicas: float = typer.Option(40.0, "--peak-replicas", help="replicas the trace's peak needs"),
    seed: int = typer.Option(0, "--seed"),
    scaling: str = typer.Option("counts", "--scaling", help="counts (scale the trace's counts) or poisson "
                                "(draw arrivals at the scaled rate: a small trace's counting noise removed)"),
    sweep_file: Optional[Path] = typer.Option(None, "--sweep", help="YAML or JSON: families, grids per family"),
    families: Optional[str] = typer.Option(None, "--families", help="comma-separated families to sweep "
                                           "(default all): hpa-inflight, hpa-running, hpa-kv, keda-waiting, "
                                           "kpa, static, prescaler"),
    timeout: Optional[str] = typer.Option(None, "--timeout", help="clients abandon a request waiting this long "
                                          "(an SLO miss), e.g. 60s"),
    max_waiting_per_replica: Optional[float] = typer.Option(
        None, "--max-waiting-per-replica", help="the gateway rejects arrivals (429, an SLO miss) while the queue "
        "holds this many per ready replica"),
    cold_start: Optional[str] = typer.Option(None, "--cold-start", help="draw each cold start around --lead: "
                                             "tail (slow image pulls) or lognormal"),
    capacity_error: Optional[float] = typer.Option(
        None, "--capacity-error", help="prescaler's capacity model is off by this fraction: its per-replica "
        "rates are (1 + e) x the simulated replica's (e.g. -0.2 or 0.2)"),
    model: str = typer.Option("auto", "--model", help="forecast model: auto or a catalogue name"),
    forecast_bin: str = typer.Option("10m", "--forecast-bin", help="forecast bin (the trace's native bin or coarser)"),
    jobs: int = typer.Option(1, "--jobs", min=1, help="points replayed in parallel (processes)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write every point as JSON here"),
    png_out: Optional[Path] = typer.Option(None, "--png", help="draw the frontier here"),
    replica: str = typer.Option("default", "--replica", help=REPLICA_HELP),
) -> None:
    """Sweep every policy family's knobs on one replay of TRACE and show the cost-SLO frontier."""
    from controller.sim.frontier import FrontierError
    from controller.sim.frontier import frontier as sweep_frontier
    from controller.sim.replay import trace_label
    from forecaster.replay import EstimatorForecasting

    def log(message: str) -> None:
        typer.echo(message, err=True)

    settings = _settings(lead_seconds=_seconds(lead, "--lead"), peak_replicas=peak_replicas,
                         replay_days=replay_days, seed=seed, tokens=tokens, model=model,
                         forecast_bin_seconds=int(_seconds(forecast_bin, "--forecast-bin")),
                         replica=_replica(replica))
    if scaling not in ("counts", "poisson"):
        _fail(f"--scaling {scaling!r} unknown; choose counts or poisson")
    try:
        data = read_sweep_file(sweep_file) if sweep_file is not None else {}
        chosen = None if families is None else tuple(f.strip() for f in families.split(",") if f.strip())
        spec = build_sweep(data, families=chosen, capacity_error=capacity_error)
        config = realism_config(settings, timeout_seconds=None if timeout is None else _seconds(timeout, "--timeout"),
                                max_waiting_per_replica=max_waiting_per_replica, cold_start=cold_start)
    except ValueError as exc:  # FrontierError is one
        where = f"--sweep {sweep_file}: " if sweep_file is not None and isinstance(exc, FrontierError) else ""
        _fail(f"{where}{exc}")
    frame = _load(trace)
    forecasts = "prescaler" in spec.families
    count_points = len(spec.points()) + 1 + (
        sum(r in spec.references for r in ("hindsight", "hindsight-peak")) if forecasts else 0)
    log(f"frontier of {trace_label(trace)}: {count_points} points of {', '.join(spec.families)}, "
        f"{jobs} job{'s' if jobs > 1 else ''}" + ("; recording prescaler's forecasts first" if forecasts else ""))
    started = time.perf_counter()
    try:
        result = sweep_frontier(frame, settings, forecasting=EstimatorForecasting(settings.model), sweep=spec,
                                trace_name=trace_label(trace), scaling=scaling, config=config, jobs=jobs, log=log)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    result = with_capacity_error(result, capacity_error)
    slowest = max(result.points, key=lambda p: p.wall_seconds)
    log(f"replayed {len(result.points)} points of {days(result.replay_days)} in "
        f"{time.perf_counter() - started:.0f} s (slowest: {point_label(slowest)}, {slowest.wall_seconds:.1f} s)")
    print_table(result)
    if json_out is not None:
        write_json(result, json_out)
        log(f"wrote {json_out}")
    if png_out is not None:
        write_png(result, png_out)
        log(f"wrote {png_out}")


def register(app: typer.Typer) -> None:
    app.command("frontier")(frontier)
