"""The capacity model, once: rates per second -> replicas. Formula and sources: configs/capacity.md.

    load_s    = max(rate_s, 0) / perReplica_s                  replicas' worth of signal s at 100 %
    replicas  = ceil( max_s load_s / target_utilization )      combine: Max (the default)
              = ceil( sum_s load_s / target_utilization )      combine: Sum

The controller's predictive stage (controller/policy/capacity.py) and the forecaster service's
`prescaler-desired-replicas` metric, which a plain HPA or KEDA scales on
(forecaster/service/cache.py), both call `replicas_for_loads`, so the two paths give the same
replicas for the same forecast and the same knobs. (Until issue 15 the service summed the loads
while the controller took their maximum.)

Max is the default because a per-replica rate measured at the SLO under the workload's own mix is
the same saturation point seen through each signal: adding the loads would count one saturation two
or three times. Sum is right only when each rate was measured alone (a prefill-only and a
decode-only benchmark), where the GPU time the signals take adds up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal, TypeVar

Combine = Literal["Max", "Sum"]
S = TypeVar("S", bound=str)  # a signal name: str, or the service's Signal literal

# ceil() of a ratio that is an integer up to float noise (10.000000000000002) must not add a replica.
FLOAT_NOISE = 1e-9


def signal_load(rate: float, per_replica: float) -> float:
    """Replicas' worth of one signal at 100 % utilization; a negative forecast counts as 0."""
    return max(rate, 0.0) / per_replica


def replicas_for_loads(rates: Mapping[S, float], per_replica: Mapping[S, float], target_utilization: float,
                       combine: Combine = "Max") -> tuple[int, S | None, float]:
    """(replicas, the binding signal or None, the combined load in replicas at 100 %).

    `per_replica` maps each signal that has a per-replica rate to it; a rate for any other signal
    does not count. The binding signal is the one with the largest load (the first of equal ones);
    None, with 0 replicas, when no rate counts. Unclamped: the caller applies its own bounds.
    """
    total = 0.0
    worst = 0.0
    binding: S | None = None
    for signal, rate in rates.items():
        per = per_replica.get(signal)
        if per is None:
            continue
        load = max(rate, 0.0) / per  # signal_load, inlined: decide() calls this at every sync
        total += load
        if binding is None or load > worst:
            worst, binding = load, signal
    load = total if combine == "Sum" else worst
    return max(0, math.ceil(load / target_utilization - FLOAT_NOISE)), binding, load
