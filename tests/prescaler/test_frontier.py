"""`prescaler frontier`: the JSON the benchmark reads, sweep errors, dominance and the Pareto front.

The replays run on a synthetic two-day frame, a 0.15-day window and a few points per family, so the
whole file takes seconds; the rules (dominance, pareto, the reduced grids) run on hand-made points.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from bench.frontier import reduced_grids
from controller.sim.frontier import FrontierError, FrontierPoint, FrontierResult, dominance, pareto
from prescaler.frontier import (
    best_points,
    build_sweep,
    count,
    dominance_lines,
    frontier_data,
    pct,
    point_config,
    register,
    times,
)
from tests.sim.conftest import daily_frame

POINT_KEYS = {  # issue 16's shape, and the types the benchmark and CI rely on
    "family": str, "config": dict, "default": bool, "gpu_hours": float, "gpu_hours_vs_oracle": float,
    "slo_attainment": float, "slo_misses": float, "scale_events": int,
}
SWEEP = """\
families: [hpa-inflight, hpa-running, static, prescaler]
grids:
  hpa-inflight: {target: [0.7, 1.0], scale_down_window_seconds: [300]}
  hpa-running: {target: [0.8], scale_down_window_seconds: [900]}
  static: {fraction: [1.0]}
  prescaler: {quantile: [0.9], target_utilization: [0.8]}
"""
BASE_ARGS = ["--replay-days", "0.15", "--peak-replicas", "8", "--model", "seasonal_naive_daily"]


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)  # a group, as in prescaler.cli: `frontier` stays a subcommand
    register(app)
    return app


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = daily_frame(2, noise=0.05)
    frame.index = frame.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    path = tmp_path_factory.mktemp("trace") / "synthetic_1min.csv"
    frame.to_csv(path, index_label="timestamp")
    return path


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "sweep.yaml"
    path.write_text(SWEEP)
    return path


@pytest.fixture(scope="module")
def swept(app: typer.Typer, trace: Path, sweep_file: Path,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any], Path]:
    """One end-to-end run of the command: (its CliRunner result, the JSON it wrote, the PNG's path)."""
    out = tmp_path_factory.mktemp("out")
    result = CliRunner().invoke(app, ["frontier", str(trace), *BASE_ARGS, "--sweep", str(sweep_file),
                                      "--json", str(out / "f.json"), "--png", str(out / "f.png")])
    assert result.exit_code == 0, result.output
    return result, json.loads((out / "f.json").read_text()), out / "f.png"


def test_the_json_has_issue_16s_shape(swept) -> None:
    _, data, _ = swept
    assert data["trace"] == "synthetic"
    assert isinstance(data["oracle_gpu_hours"], float) and data["oracle_gpu_hours"] > 0
    families = [p["family"] for p in data["points"]]
    # 2 + 1 + 1 swept, hpa-inflight's default (no behavior: not in the swept grid), prescaler's one,
    # and the three references.
    assert sorted(families) == sorted(["hpa-inflight"] * 3 + ["hpa-running", "static", "prescaler",
                                                             "oracle", "hindsight", "hindsight-peak"])
    for point in data["points"]:
        for key, kind in POINT_KEYS.items():
            assert isinstance(point[key], kind), (point["family"], key, point[key])
        assert 0.0 <= point["slo_attainment"] <= 1.0 and point["slo_misses"] >= 0
    defaults = {p["family"]: p for p in data["points"] if p["default"] and not p["reference"]}
    assert set(defaults) == {"hpa-inflight", "prescaler"}
    assert defaults["hpa-inflight"]["config"] == {"target": 1.0, "scale_down_window_seconds": None}
    assert defaults["prescaler"]["config"]["quantile"] == 0.9
    oracle = next(p for p in data["points"] if p["family"] == "oracle")
    assert oracle["gpu_hours_vs_oracle"] == 1.0 and oracle["gpu_hours"] == data["oracle_gpu_hours"]
    assert oracle["reference"] and oracle["slo_attainment"] == 1.0


def test_the_json_carries_the_dominance_targets(swept) -> None:
    _, data, _ = swept
    d = data["dominance"]
    assert d["prescaler"]["family"] == "prescaler" and d["prescaler"]["default"]
    assert d["miss_ratio_target"] == 5.0 and d["cost_ratio_target"] == 1.25
    pre, best, cheapest = d["prescaler"], d["best_at_equal_cost"], d["cheapest_at_equal_slo"]
    reactive = [p for p in data["points"] if p["family"] in ("hpa-inflight", "hpa-running", "static")]
    cheaper = [p for p in reactive if p["gpu_hours"] <= pre["gpu_hours"]]
    reaching = [p for p in reactive if p["slo_attainment"] >= pre["slo_attainment"]]
    assert (best is None) == (not cheaper) and (cheapest is None) == (not reaching)
    if best is not None and pre["slo_misses"] > 0:
        assert d["miss_ratio"] == pytest.approx(best["slo_misses"] / pre["slo_misses"])
    if cheapest is not None:
        assert cheapest["gpu_hours"] == min(p["gpu_hours"] for p in reaching)
        assert d["cost_ratio"] == pytest.approx(cheapest["gpu_hours"] / pre["gpu_hours"])


def test_the_png_is_a_png_and_the_table_is_printed(swept) -> None:
    result, _, png = swept
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "hpa-inflight" in result.output and "prescaler" in result.output
    assert "cheapest reactive at >= prescaler's SLO" in result.output or "no reactive point" in result.output
    assert "replayed 9 points" in result.output  # the progress on stderr (CliRunner mixes it in)


def test_realism_flags_reach_the_replay_and_the_json(app, trace, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, ["frontier", str(trace), *BASE_ARGS, "--families", "hpa-inflight,prescaler",
                                      "--timeout", "60s", "--max-waiting-per-replica", "64", "--cold-start", "tail",
                                      "--capacity-error", "-0.2", "--scaling", "poisson", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["scaling"] == "poisson"
    assert data["realism"]["request_timeout_seconds"] == 60.0
    assert data["realism"]["max_waiting_per_replica"] == 64.0
    assert data["realism"]["cold_start"]["kind"] == "tail"
    assert data["realism"]["capacity_error"] == -0.2
    prescaler = [p for p in data["points"] if p["family"] == "prescaler"]
    assert prescaler and all(p["config"]["capacity_error"] == -0.2 for p in prescaler)
    assert sum(p["default"] for p in prescaler) == 1  # the default keeps its flag under the error


# ---------------------------------------------------------------------------------------------------
# Bad sweeps: a clear error naming the family and the knob, exit code 2 from the command
# ---------------------------------------------------------------------------------------------------

BAD_SWEEPS = [
    pytest.param({"families": ["hpa-inflight", "magic"]}, "families: unknown family magic", id="unknown-family"),
    pytest.param({"grids": {"magic": {"target": [1.0]}}}, "grids: unknown family 'magic'", id="unknown-grid-family"),
    pytest.param({"grids": {"hpa-inflight": {"target": [0.7, -1.0]}}},
                 "hpa-inflight.target: Input should be greater than 0 (got -1.0)", id="negative-target"),
    pytest.param({"grids": {"kpa": {"scale_down_delay_seconds": [-5]}}},
                 "kpa.scale_down_delay_seconds: Input should be greater than or equal to 0 (got -5)",
                 id="negative-delay"),
    pytest.param({"grids": {"hpa-running": {"target": 0.5}}}, "grids.hpa-running.target: Input should be a valid",
                 id="grid-not-a-list"),
    pytest.param({"grids": {"static": {"fraction": []}}}, "static.fraction: expected a non-empty list",
                 id="empty-grid"),
    pytest.param({"grids": {"prescaler": {"headroom": [0.5]}}},
                 "prescaler.headroom: Extra inputs are not permitted (got 0.5)", id="unknown-knob"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SWEEPS)
def test_a_bad_sweep_names_the_family_and_the_knob(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(FrontierError) as caught:
        build_sweep(spec)
    assert message in str(caught.value)


@pytest.mark.parametrize(("spec", "message"), BAD_SWEEPS)
def test_the_command_refuses_a_bad_sweep_file_with_exit_2(app, trace, tmp_path: Path, spec, message) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec))
    result = CliRunner().invoke(app, ["frontier", str(trace), "--sweep", str(path)])
    assert result.exit_code == 2, result.output
    assert f"error: --sweep {path}: " in result.output and message in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--families", "hpa-inflight,magic"], "families: unknown family magic", id="unknown-family"),
        pytest.param(["--capacity-error", "-1.5"], "prescaler.capacity_error: Input should be greater than -1 "
                     "(got -1.5)", id="capacity-error-out-of-range"),
        pytest.param(["--cold-start", "slow"], "--cold-start 'slow' unknown; choose one of tail, lognormal",
                     id="unknown-cold-start"),
        pytest.param(["--timeout", "soon"], "--timeout: duration 'soon'", id="bad-timeout"),
        pytest.param(["--max-waiting-per-replica", "-1"],
                     "max_waiting_per_replica: Input should be greater than or equal to 0 (got -1.0)",
                     id="negative-admission-limit"),
        pytest.param(["--scaling", "sqrt"], "--scaling 'sqrt' unknown", id="unknown-scaling"),
        pytest.param(["--sweep", "grid.toml"], "expected a .yaml, .yml or .json file", id="sweep-not-yaml"),
    ],
)
def test_the_command_refuses_bad_options_with_exit_2(app, trace, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["frontier", str(trace), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_capacity_error_and_a_capacity_error_grid_conflict(app, trace, tmp_path: Path) -> None:
    path = tmp_path / "cap.yaml"
    path.write_text("grids:\n  prescaler: {capacity_error: [0.1]}\n")
    result = CliRunner().invoke(app, ["frontier", str(trace), "--sweep", str(path), "--capacity-error", "0.2"])
    assert result.exit_code == 2 and "prescaler.capacity_error: set by both" in result.output


def test_a_sweep_file_that_is_not_yaml_is_named(app, trace, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("families: [kpa\n")
    result = CliRunner().invoke(app, ["frontier", str(trace), "--sweep", str(path)])
    assert result.exit_code == 2 and f"--sweep {path}: not valid YAML" in result.output


# ---------------------------------------------------------------------------------------------------
# dominance() and pareto() on hand-made points
# ---------------------------------------------------------------------------------------------------


def point(family: str, gpu_hours: float, misses: float, slo: float, *, default: bool = False,
          reference: bool = False, **config: Any) -> FrontierPoint:
    return FrontierPoint(family=family, config=config, default=default, reference=reference, gpu_hours=gpu_hours,
                         gpu_hours_vs_oracle=gpu_hours / 50.0, slo_attainment=slo, slo_misses=misses,
                         scale_events=10, wall_seconds=0.1)


def result_of(*points: FrontierPoint) -> FrontierResult:
    # A hindsight reference cheaper and better than everything: dominance must never count it.
    peeking = point("hindsight", 60.0, 1.0, 0.99999, default=True, reference=True)
    oracle = point("oracle", 50.0, 0.0, 1.0, default=True, reference=True)
    return FrontierResult(trace="hand-made", oracle_gpu_hours=50.0, replay_days=1.0, scaling="counts", realism={},
                          points=[*points, peeking, oracle], wall_seconds=1.0)


PRESCALER = {"quantile": 0.9, "target_utilization": 0.8}


@pytest.mark.parametrize(
    ("points", "best", "miss_ratio", "cheapest", "cost_ratio", "met"),
    [
        pytest.param(
            [point("prescaler", 100, 1000, 0.99, default=True, **PRESCALER),
             point("hpa-running", 90, 800, 0.992, target=0.8), point("kpa", 95, 900, 0.991, target=0.7)],
            "hpa-running", 0.8, "hpa-running", 0.9, (False, False), id="prescaler-dominated"),
        pytest.param(
            [point("prescaler", 100, 100, 0.999, default=True, **PRESCALER),
             point("hpa-inflight", 95, 800, 0.99, target=0.7), point("kpa", 90, 2000, 0.98, target=1.0),
             point("static", 150, 0, 1.0, fraction=1.0), point("hpa-kv", 170, 50, 0.9995, target=0.5)],
            "hpa-inflight", 8.0, "static", 1.5, (True, True), id="prescaler-dominates"),
        pytest.param(
            [point("prescaler", 100, 500, 0.995, default=True, **PRESCALER),
             point("hpa-inflight", 120, 100, 0.999, target=0.5), point("hpa-kv", 110, 900, 0.99, target=0.7)],
            None, None, "hpa-inflight", 1.2, (True, False), id="no-rival-cheaper"),
        pytest.param(
            [point("prescaler", 100, 10, 0.9999, default=True, **PRESCALER),
             point("hpa-running", 80, 5000, 0.95, target=1.0), point("keda-waiting", 100, 60, 0.999, target=0.25)],
            "keda-waiting", 6.0, None, None, (True, True), id="no-rival-reaches-its-slo"),
        pytest.param(
            [point("prescaler", 100, 0, 1.0, default=True, **PRESCALER),
             point("hpa-running", 90, 30, 0.9999, target=0.8)],
            "hpa-running", math.inf, None, None, (True, True), id="prescaler-misses-none"),
    ],
)
def test_dominance(points, best, miss_ratio, cheapest, cost_ratio, met) -> None:
    d = dominance(result_of(*points))
    assert (d.best_at_equal_cost.family if d.best_at_equal_cost else None) == best
    assert (d.cheapest_at_equal_slo.family if d.cheapest_at_equal_slo else None) == cheapest
    assert d.miss_ratio == (None if miss_ratio is None else pytest.approx(miss_ratio))
    assert d.cost_ratio == (None if cost_ratio is None else pytest.approx(cost_ratio))
    assert (d.miss_target_met, d.cost_target_met) == met
    lines = dominance_lines(d)
    assert [("NOT MET" not in line) for line in lines] == list(met)


def test_dominance_in_words_and_in_json() -> None:
    result = result_of(point("prescaler", 100, 1000, 0.9811, default=True, **PRESCALER),
                       point("hpa-running", 90, 1800, 0.97, target=0.8, scale_down_window_seconds=900.0),
                       point("kpa", 110, 500, 0.99, target=0.7, scale_down_delay_seconds=0.0))
    first, second = dominance_lines(dominance(result))
    assert first == ("best reactive at <= prescaler's GPU-hours: hpa-running (target 0.8x, down window 900 s) "
                     "misses 1.80x prescaler's (1,800 vs 1,000; target >= 5x) NOT MET: prescaler would need "
                     "2.8x fewer misses")
    assert second == ("cheapest reactive at >= prescaler's SLO: kpa (target 0.7x, down delay 0 s) uses 1.10x its "
                      "GPU-hours (99.00 %; target >= 1.25x) NOT MET: prescaler would need 12 % fewer GPU-hours")
    data = frontier_data(result)
    assert data["dominance"]["miss_ratio"] == pytest.approx(1.8) and not data["dominance"]["miss_target_met"]
    assert data["dominance"]["best_at_equal_cost"]["family"] == "hpa-running"
    json.dumps(data, allow_nan=False)
    # Prescaler without misses: the ratio is infinite, written as null next to its rival, the target met.
    clean = frontier_data(result_of(point("prescaler", 100, 0, 1.0, default=True, **PRESCALER),
                                    point("hpa-running", 90, 30, 0.9999, target=0.8)))
    assert clean["dominance"]["miss_ratio"] is None and clean["dominance"]["miss_target_met"]
    json.dumps(clean, allow_nan=False)


def test_without_a_reactive_family_there_is_no_dominance_to_claim() -> None:
    result = result_of(point("prescaler", 100, 10, 0.999, default=True, **PRESCALER))
    assert frontier_data(result)["dominance"] is None


def test_pareto_keeps_the_points_nothing_beats_on_both() -> None:
    points = [point("hpa-inflight", 1.0, 100, 0.9, target=1.0), point("hpa-inflight", 2.0, 50, 0.95, target=0.7),
              point("kpa", 2.5, 60, 0.94, target=1.0), point("static", 3.0, 10, 0.99, fraction=1.0),
              point("hpa-kv", 0.5, 200, 0.8, target=1.5), point("hpa-running", 2.0, 40, 0.96, target=0.8),
              point("static", 4.0, 10, 0.99, fraction=2.0)]
    front = pareto(points)
    assert [(p.family, p.gpu_hours, p.slo_misses) for p in front] == [
        ("hpa-kv", 0.5, 200), ("hpa-inflight", 1.0, 100), ("hpa-running", 2.0, 40), ("static", 3.0, 10)]
    assert pareto([]) == []


# ---------------------------------------------------------------------------------------------------
# The table, the numbers, and the benchmark's reduced grids
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(pct(0.9811), "98.11 %", id="pct"),
        pytest.param(pct(0.99996), "99.996 %", id="pct-never-rounds-up-to-100"),
        pytest.param(pct(1.0), "100.00 %", id="pct-all"),
        pytest.param(count(9.1e6), "9.1e6", id="count-large"),
        pytest.param(count(1151618.2522), "1.2e6", id="count-not-raw"),
        pytest.param(count(9.96e6), "1.0e7", id="count-rounds-into-the-next-decade"),
        pytest.param(count(812.4), "812", id="count-small"),
        pytest.param(times(1.3909), "1.39x", id="times"),
        pytest.param(times(math.inf), "inf", id="times-inf"),
        pytest.param(point_config(point("prescaler", 1, 1, 1, quantile=0.95, target_utilization=0.7,
                                        scale_down_window_seconds=900.0, reactive_metric="inflight",
                                        reactive_target=0.8, capacity_error=-0.2)),
                     "q0.95, util 0.7, down window 900 s, capacity error -20 %", id="prescaler-config"),
        # the old reactive stage (queue weight 1, target 1x) is named where a point sets it
        pytest.param(point_config(point("prescaler", 1, 1, 1, quantile=0.9, target_utilization=0.8,
                                        reactive_target=1.0, queue_weight=1.0)),
                     "q0.9, util 0.8, reactive target 1x, queue weight 1", id="prescaler-old-reactive-stage"),
        pytest.param(point_config(point("keda-waiting", 1, 1, 1, target=0.25, scale_down_window_seconds=300.0,
                                        use_cached_metrics=True)),
                     "target 0.25x, down window 300 s, cached metrics", id="keda-config"),
    ],
)
def test_numbers_are_formatted_for_people(text: str, expected: str) -> None:
    assert text == expected


def test_the_table_shows_each_familys_answers_to_prescaler() -> None:
    pre = point("prescaler", 100, 1000, 0.99, default=True, **PRESCALER)
    result = result_of(
        pre, point("prescaler", 120, 400, 0.995, quantile=0.95, target_utilization=0.8),
        point("hpa-inflight", 200, 5000, 0.9, default=True, target=1.0, scale_down_window_seconds=300.0),
        point("hpa-inflight", 95, 1500, 0.985, target=0.7, scale_down_window_seconds=300.0),
        point("hpa-inflight", 110, 900, 0.991, target=0.5, scale_down_window_seconds=900.0),
        point("hpa-inflight", 300, 100, 0.999, target=0.3, scale_down_window_seconds=900.0),
        point("keda-waiting", 500, 9000, 0.5, target=1.0, scale_down_window_seconds=300.0),
        point("keda-waiting", 520, 8000, 0.6, target=0.5, scale_down_window_seconds=300.0))
    rows = [(role, p.family, p.gpu_hours) for role, p in best_points(result)]
    assert rows == [
        ("default", "prescaler", 100), ("fewest misses", "prescaler", 120),
        ("default", "hpa-inflight", 200), ("best at <= prescaler GPU-h", "hpa-inflight", 95),
        ("cheapest at >= prescaler SLO", "hpa-inflight", 110), ("fewest misses", "keda-waiting", 520),
        ("reference (peeks)", "hindsight", 60), ("reference (peeks)", "oracle", 50)]
    grids = reduced_grids(result)
    # Every knob listed (one left out would take the family's whole default grid).
    assert grids["hpa-inflight"] == {"target": [1.0, 0.7, 0.5], "scale_down_window_seconds": [300.0, 900.0]}
    assert grids["keda-waiting"] == {"target": [0.5], "scale_down_window_seconds": [300.0]}
    assert grids["prescaler"] == {"quantile": [0.9, 0.95], "target_utilization": [0.8]}
    assert "oracle" not in grids and "hindsight" not in grids
    spec = build_sweep({"families": list(grids), "grids": grids})
    assert sum(f == "hpa-inflight" for f, _, _ in spec.points()) == 7  # 3 x 2, and the default (no behavior)
