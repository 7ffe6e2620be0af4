"""Named replica profiles (`--replica`) and the calibration fit, with no real vLLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from controller.sim.config import ReplicaModel
from controller.sim.profiles import (
    PROFILES,
    Level,
    Measurements,
    UnknownProfile,
    fit_replica_model,
    resolve_replica,
)
from tests.sim.conftest import daily_frame


def test_profiles_resolve_and_the_default_stays_gpu_sized() -> None:
    assert resolve_replica("default") == ReplicaModel()
    tiny = resolve_replica("vllm-cpu-tiny")
    assert tiny is PROFILES["vllm-cpu-tiny"]
    assert tiny.max_num_seqs == 8  # tests/vllm/replica.py's --max-num-seqs
    assert tiny.decode_tps < ReplicaModel().decode_tps  # one CPU core is no H100


def test_an_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(UnknownProfile, match="'h100-70b' unknown; choose one of default, vllm-cpu-tiny"):
        resolve_replica("h100-70b")
    assert issubclass(UnknownProfile, ValueError)


def synthetic(truth: ReplicaModel, prompt: float, output: float, concurrencies: tuple[int, ...]) -> Measurements:
    """What the simulator's own replica would measure in closed loop (no queueing delay at the levels)."""
    levels = []
    for c in concurrencies:
        running = min(c, truth.max_num_seqs)
        speed = min(truth.max_decode_speed, truth.decode_tps / running)
        levels.append(Level(c, output_tps=running * speed, e2e_p50=output / speed,
                            ttft_p50=prompt / truth.prefill_tps))
    return Measurements(levels=levels, prompt_tokens=prompt, output_tokens=output,
                        max_num_seqs=truth.max_num_seqs, kv_cache_tokens=truth.kv_cache_tokens)


@pytest.mark.parametrize(
    ("truth", "prompt", "output", "concurrencies"),
    [
        pytest.param(ReplicaModel(prefill_tps=1_500, decode_tps=900, max_num_seqs=8, max_decode_speed=170,
                                  kv_cache_tokens=1_048_576), 30, 48, (1, 2, 4, 8, 16), id="cpu-tiny"),
        pytest.param(ReplicaModel(), 2_000, 300, (1, 4, 16, 64, 256, 512), id="gpu-default"),
        pytest.param(ReplicaModel(prefill_tps=500, decode_tps=50, max_num_seqs=4, max_decode_speed=50,
                                  kv_cache_tokens=4096), 100, 20, (1, 2, 4, 8), id="no-batching-gain"),
        pytest.param(ReplicaModel(prefill_tps=2_000, decode_tps=1_000, max_num_seqs=16, max_decode_speed=100,
                                  kv_cache_tokens=10_000), 50, 64, (4, 1, 32, 16), id="unsorted-levels"),
    ],
)
def test_the_fit_recovers_known_parameters(truth: ReplicaModel, prompt: float, output: float,
                                           concurrencies: tuple[int, ...]) -> None:
    fitted = fit_replica_model(synthetic(truth, prompt, output, concurrencies))
    for name in ("prefill_tps", "decode_tps", "max_decode_speed"):
        assert getattr(fitted, name) == pytest.approx(getattr(truth, name), rel=1e-9), name
    assert (fitted.max_num_seqs, fitted.kv_cache_tokens) == (truth.max_num_seqs, truth.kv_cache_tokens)


def test_the_fit_refuses_no_levels() -> None:
    with pytest.raises(ValueError, match="at least one concurrency level"):
        fit_replica_model(Measurements(levels=(), prompt_tokens=30, output_tokens=48, max_num_seqs=8,
                                       kv_cache_tokens=1))


@pytest.fixture
def app() -> typer.Typer:
    from prescaler.simulate import register

    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    frame = daily_frame(2, noise=0.05)
    path = tmp_path / "synthetic_1min.csv"
    frame.index = frame.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame.to_csv(path, index_label="timestamp")
    return path


def simulate_json(app: typer.Typer, trace: Path, out: Path, *extra: str) -> dict:
    result = CliRunner().invoke(app, ["simulate", str(trace), "--policy", "static", "--replay-days", "0.25",
                                      "--peak-replicas", "4", "--json", str(out), *extra])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def test_replica_option_reaches_the_simulation(app: typer.Typer, trace: Path, tmp_path: Path) -> None:
    default = simulate_json(app, trace, tmp_path / "default.json")
    tiny = simulate_json(app, trace, tmp_path / "tiny.json", "--replica", "vllm-cpu-tiny")
    assert tiny["settings"]["replica"] == PROFILES["vllm-cpu-tiny"].model_dump()
    assert default["settings"]["replica"] is None
    # An unqueued request's TTFT is its prompt / prefill_tps (same prompts in both runs): the
    # replica's prefill speed shows in the TTFT, as the ratio of the two profiles' speeds.
    fast, slow = default["outcomes"][0]["ttft_p50"], tiny["outcomes"][0]["ttft_p50"]
    assert slow / fast == pytest.approx(ReplicaModel().prefill_tps / PROFILES["vllm-cpu-tiny"].prefill_tps,
                                        rel=0.15)


def test_a_bad_replica_name_is_a_clear_error(app: typer.Typer, trace: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", str(trace), "--replica", "a100"])
    assert result.exit_code == 2
    assert "--replica: replica profile 'a100' unknown; choose one of default, vllm-cpu-tiny" in result.output


def test_frontier_takes_the_replica_option_too(tmp_path: Path, trace: Path) -> None:
    from prescaler.frontier import register

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, [str(trace), "--replica", "a100"])  # one command: typer runs it bare
    assert result.exit_code == 2 and "choose one of default, vllm-cpu-tiny" in result.output
