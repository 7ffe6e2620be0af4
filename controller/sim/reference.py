"""The two reference policies: `static` (provisioned for the peak) and `oracle` (perfect foresight).

The oracle knows the replayed load (the scaled per-minute rate and token lengths) and at every sync
asks for the replicas the capacity model says the load will need from one lead time ahead until the
next sync after that: a replica requested now is ready exactly when that load arrives. It scales in
at once (no stabilization window), so it is the lower bound on GPU-hours for this capacity model.
"""

from __future__ import annotations

import math

from controller.sim.config import SimConfig
from controller.sim.engine import MetricsSample
from controller.sim.workload import Workload, replicas_needed


def needed_per_minute(workload: Workload, config: SimConfig) -> list[int]:
    """Replicas the capacity model needs for each minute of the replay."""
    return [
        replicas_needed(rate, p, o, config)
        for rate, p, o in zip(workload.rate_per_minute, workload.prompt_mean, workload.output_mean)
    ]


class StaticScaler:
    """Provisioned at the window's peak need all the time (what a fleet without autoscaling costs)."""

    name = "static"

    def __init__(self) -> None:
        self.replicas_ = 1

    def initial(self, workload: Workload, config: SimConfig) -> int:
        self.replicas_ = max(needed_per_minute(workload, config))
        return self.replicas_

    def desired(self, tick: int, sample: MetricsSample | None, current: int, ready: int) -> int:
        return self.replicas_


class OracleScaler:
    """Starts replicas exactly one lead time before the load that needs them."""

    name = "oracle"

    def __init__(self) -> None:
        self.needed_: list[int] = []

    def initial(self, workload: Workload, config: SimConfig) -> int:
        self.needed_ = needed_per_minute(workload, config)
        self.tick_seconds_ = config.tick_seconds
        self.lead_ = config.lead_seconds
        self.sync_ = config.sync_seconds
        # Ready at the start: what the first lead time needs (nothing can be started earlier).
        return max(self.needed_[: max(1, math.ceil((self.lead_ + self.sync_) / 60.0) + 1)])

    def desired(self, tick: int, sample: MetricsSample | None, current: int, ready: int) -> int:
        now = tick * self.tick_seconds_
        # The window a replica requested now serves first: [now + lead, now + lead + sync].
        first = int((now + self.lead_) // 60)
        last = int((now + self.lead_ + self.sync_) // 60)
        window = self.needed_[first : last + 1]
        if not window:
            return self.needed_[-1]
        # Scale-in also waits for the load: a replica released now is gone for the whole lead time,
        # so keep what the load before the lead needs too (a scale-up cannot refill it in time).
        earlier = self.needed_[int(now // 60) : first + 1]
        return max(max(window), max(earlier) if earlier else 0)
