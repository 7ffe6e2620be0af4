"""Typed settings of the simulated vLLM cluster and of one replay.

One replica's defaults describe an 8B model served by vLLM on one H100; they are read from the
policy's capacity model (controller.policy.capacity, documented in configs/capacity.md) when it
provides them, so that the simulator and the capacity model the policies use agree by construction.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from controller.sim.coldstart import ColdStartModel

try:  # one source of truth: the capacity model's per-replica defaults (configs/capacity.md)
    from controller.policy.capacity import (
        DEFAULT_OUTPUT_TOKENS_PER_SECOND as DEFAULT_DECODE_TPS,
    )
    from controller.policy.capacity import (
        DEFAULT_PROMPT_TOKENS_PER_SECOND as DEFAULT_PREFILL_TPS,
    )
    from controller.policy.capacity import (
        DEFAULT_TARGET_UTILIZATION,
    )
except ImportError:  # pragma: no cover - the same numbers, for a tree without the policy package
    DEFAULT_PREFILL_TPS = 10_000.0
    DEFAULT_DECODE_TPS = 3_000.0
    DEFAULT_TARGET_UTILIZATION = 0.8
DEFAULT_MAX_NUM_SEQS = 256  # vLLM's --max-num-seqs default: the KV-cache / scheduler bound
DEFAULT_MAX_DECODE_SPEED = 80.0  # tokens/s of one sequence at small batch (about 12 ms per token)
# KV cache of the same replica, in tokens (configs/capacity.md, "KV cache"). Llama-3.1-8B keeps, per
# token, a key and a value for each of 32 layers x 8 KV heads x 128 dims in bf16:
# 2 x 32 x 8 x 128 x 2 bytes = 128 KiB. vLLM with gpu_memory_utilization 0.9 on an H100 80GB
# (79.6 GiB as the driver reports it) may use 71.7 GiB; the weights take 15.0 GiB (vLLM logs
# "Loading model weights took 14.99 GB"), and the profiling run's peak activations, the non-torch
# allocations and the CUDA graphs about 2.7 GiB more, which leaves ~54 GiB for the cache:
# 54 GiB / 128 KiB = 442,368 tokens (vLLM's "GPU KV cache size" line reports this number).
KV_BYTES_PER_TOKEN = 2 * 32 * 8 * 128 * 2
DEFAULT_KV_CACHE_TOKENS = 54 * 2**30 // KV_BYTES_PER_TOKEN


class ReplicaModel(BaseModel):
    """What one vLLM replica can do: two concurrent token budgets and a concurrency bound.

    Prefill and decode are separate budgets consumed in the same ticks because vLLM's chunked
    prefill packs prompt chunks into the decode iterations (so a replica's capacity in requests/s is
    min(prefill_tps / prompt, decode_tps / output), the `max over signals` of the capacity model).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefill_tps: float = Field(DEFAULT_PREFILL_TPS, gt=0, description="prompt tokens/s per replica")
    decode_tps: float = Field(DEFAULT_DECODE_TPS, gt=0, description="output tokens/s per replica")
    max_num_seqs: int = Field(DEFAULT_MAX_NUM_SEQS, ge=1, description="concurrent sequences (KV bound)")
    max_decode_speed: float = Field(
        DEFAULT_MAX_DECODE_SPEED, gt=0, description="tokens/s of one sequence when the batch is small"
    )
    kv_cache_tokens: int = Field(
        DEFAULT_KV_CACHE_TOKENS, ge=1,
        description="tokens the KV cache holds: the denominator of vllm:kv_cache_usage_perc",
    )

    @model_validator(mode="after")
    def _decode_speed_fits(self) -> "ReplicaModel":
        if self.max_decode_speed > self.decode_tps:
            raise ValueError(
                f"max_decode_speed ({self.max_decode_speed}) must be <= decode_tps ({self.decode_tps}): "
                "one sequence cannot decode faster than the whole replica"
            )
        return self

    def requests_per_second(self, prompt_tokens: float, output_tokens: float) -> float:
        """Sustained requests/s of one replica for requests of these mean lengths."""
        limits = []
        if prompt_tokens > 0:
            limits.append(self.prefill_tps / prompt_tokens)
        if output_tokens > 0:
            limits.append(self.decode_tps / output_tokens)
        if not limits:
            raise ValueError("a request needs prompt or output tokens to cost anything")
        return min(limits)


class SimConfig(BaseModel):
    """The cluster, the metrics pipeline and the clock of one replay."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A 1 s tick: the TTFT SLO is 2 s, so a coarser tick would blur the very thing measured; the
    # scrape (15 s), sync (15 s) and arrival minute (60 s) are whole numbers of ticks.
    tick_seconds: float = Field(1.0, gt=0, le=5)
    lead_seconds: float = Field(300.0, ge=0, description="cold start: scale request to serving")
    scrape_seconds: float = Field(15.0, gt=0, description="Prometheus scrape interval")
    metrics_delay_seconds: float = Field(
        30.0, ge=0, description="age of the newest sample a policy sees (scrape + rule + adapter)"
    )
    sync_seconds: float = Field(15.0, gt=0, description="autoscaler sync period (HPA default 15 s)")
    slo_ttft_seconds: float = Field(2.0, gt=0)
    replica: ReplicaModel = Field(default_factory=ReplicaModel)
    target_utilization: float = Field(DEFAULT_TARGET_UTILIZATION, gt=0, le=1)
    min_replicas: int = Field(1, ge=1)
    max_replicas: int = Field(80, ge=1)
    seed: int = 0
    # Realism knobs, all off by default (None: the fluid queue waits forever, nothing is shed, every
    # cold start is exactly lead_seconds).
    request_timeout_seconds: float | None = Field(
        None, gt=0, description="a request still waiting this long is abandoned by its client (an SLO miss)"
    )
    max_waiting_per_replica: float | None = Field(
        None, ge=0,
        description="the gateway rejects arrivals (HTTP 429, an SLO miss) while the waiting queue "
        "is at this x ready replicas",
    )
    cold_start: ColdStartModel | None = Field(
        None, description="draw each new replica's cold start around lead_seconds (controller/sim/coldstart.py)"
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> "SimConfig":
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})"
            )
        for name in ("scrape_seconds", "sync_seconds"):
            value = getattr(self, name)
            ratio = value / self.tick_seconds
            if abs(ratio - round(ratio)) > 1e-9:
                raise ValueError(
                    f"{name} ({value}) must be a whole number of ticks of {self.tick_seconds} s"
                )
        if 60.0 % self.tick_seconds > 1e-9:
            raise ValueError(f"tick_seconds ({self.tick_seconds}) must divide a minute")
        return self

    @property
    def ticks_per_minute(self) -> int:
        return int(round(60.0 / self.tick_seconds))
