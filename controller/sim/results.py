"""The outcome of a replay per policy: the numbers compared, and the series plotted."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from controller.sim.engine import RunResult, hist_quantile

# The keys `prescaler simulate --json` promises for every policy (tests hold the CLI to them).
OUTCOME_KEYS = (
    "policy", "slo_attainment", "ttft_p50", "ttft_p99", "gpu_hours", "gpu_hours_vs_oracle",
    "scale_events", "pinned_at_max_hours", "requests", "slo_misses", "rejected", "abandoned", "wall_seconds",
)


class PolicyOutcome(BaseModel):
    """One policy on one replay."""

    model_config = ConfigDict(frozen=True)

    policy: str
    slo_attainment: float = Field(description="share of requests with TTFT <= SLO")
    ttft_p50: float = Field(description="seconds, weighted by requests")
    ttft_p99: float
    gpu_hours: float = Field(description="replica-hours from each scale-up request to the end of the replica")
    gpu_hours_vs_oracle: float | None = Field(description="gpu_hours / the oracle's (None without an oracle)")
    scale_events: int
    pinned_at_max_hours: float = Field(description="hours with the requested replicas at maxReplicas")
    requests: float
    slo_misses: float = Field(
        description="requests whose TTFT exceeded the SLO (or still waiting past it), rejected or abandoned"
    )
    rejected: float = Field(0.0, description="requests the gateway turned away (HTTP 429), part of slo_misses")
    abandoned: float = Field(0.0, description="requests their clients gave up on while queued, part of slo_misses")
    wall_seconds: float = Field(description="how long the replay took to simulate")


class PolicySeries(BaseModel):
    """Per-minute series of one policy for plotting."""

    model_config = ConfigDict(frozen=True)

    ready: list[int]
    requested: list[int]
    slo_misses: list[float]


def summarise(result: RunResult, wall_seconds: float, oracle_gpu_hours: float | None) -> PolicyOutcome:
    # Every arrival: served, still queued, or turned away / given up (those two are misses).
    requests = result.admitted + result.queued_at_end + result.rejected + result.abandoned
    gpu_hours = result.gpu_seconds / 3600.0
    ratio = None
    if oracle_gpu_hours is not None and oracle_gpu_hours > 0:
        ratio = gpu_hours / oracle_gpu_hours
    attainment = 1.0 - result.slo_misses / requests if requests > 0 else math.nan
    return PolicyOutcome(
        policy=result.policy,
        slo_attainment=max(0.0, attainment),
        ttft_p50=hist_quantile(result.hist, 0.5),
        ttft_p99=hist_quantile(result.hist, 0.99),
        gpu_hours=gpu_hours,
        gpu_hours_vs_oracle=ratio,
        scale_events=result.scale_events,
        pinned_at_max_hours=result.pinned_seconds / 3600.0,
        requests=requests,
        slo_misses=result.slo_misses,
        rejected=result.rejected,
        abandoned=result.abandoned,
        wall_seconds=wall_seconds,
    )


def series_of(result: RunResult) -> PolicySeries:
    return PolicySeries(
        ready=result.series.ready, requested=result.series.requested, slo_misses=result.series.misses
    )
