"""The capacity model as the policy reads it: a CapacitySpec's rates -> replicas.

The formula itself lives once in forecaster.contract.capacity (`replicas_for_loads`), shared with the
forecaster service's desired-replicas metric for HPA and KEDA users; this module keeps the policy's
defaults and reads a CapacitySpec into it. Formula, defaults and sources: configs/capacity.md.

    load_s    = rate_s / perReplica_s            (replicas' worth of signal s, at 100 % of capacity)
    replicas  = ceil( max_s load_s / targetUtilization )      combine: Max (default)
              = ceil( sum_s load_s / targetUtilization )      combine: Sum

Max is the default because a per-replica rate measured at the SLO under the workload's own mix is
the same saturation point seen through three signals: a replica that sustains 4 req/s of that mix
also sustains the 8,000 prompt tok/s and 1,200 output tok/s that come with them. Each load_s then
estimates the same thing and the largest one names the bottleneck when the mix drifts (longer
prompts -> prefill-bound). Adding them would count one saturation two or three times. Sum is right
only when each rate was measured alone (a prefill-only and a decode-only benchmark), where the GPU
time the signals take adds up.
"""

from __future__ import annotations

from collections.abc import Mapping

from controller.policy.spec import CapacitySpec
from forecaster.contract.capacity import replicas_for_loads, signal_load

__all__ = [
    "DEFAULT_OUTPUT_TOKENS_PER_SECOND", "DEFAULT_PROMPT_TOKENS_PER_SECOND", "DEFAULT_REQUESTS_PER_SECOND",
    "DEFAULT_TARGET_UTILIZATION", "replicas_for_loads", "replicas_for_rates", "signal_load",
]

# Defaults for one replica of an 8B model (Llama-3.1-8B-Instruct, bf16) served by vLLM on one
# H100 80GB, sustained within a 2 s TTFT SLO; the simulator's replica model uses the same numbers.
# Sources and how to measure your own: configs/capacity.md.
DEFAULT_PROMPT_TOKENS_PER_SECOND = 10_000.0
DEFAULT_OUTPUT_TOKENS_PER_SECOND = 3_000.0
DEFAULT_REQUESTS_PER_SECOND = 4.0
DEFAULT_TARGET_UTILIZATION = 0.8


def replicas_for_rates(rates: Mapping[str, float], capacity: CapacitySpec) -> tuple[int, str | None, float]:
    """(replicas, the binding signal or None, the combined load in replicas at 100 %).

    Only signals with a configured perReplica rate count; an empty mapping gives 0 replicas.
    """
    per = capacity.per_replica
    per_replica = {signal: r for signal in rates if (r := per.rate(signal)) is not None}
    return replicas_for_loads(rates, per_replica, capacity.target_utilization, capacity.combine)
