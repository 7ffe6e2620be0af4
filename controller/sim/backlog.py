"""A reactive metric that cannot wind up: replicas for the arrival rate plus a drain budget for the queue.

The HPA's in-flight metric counts a waiting request like a running one, so a queue built during a
cold start multiplies the recommendation (`ceil(current x metric / target)`) and the fleet overshoots
to replicas that arrive after the burst (configs/capacity.md, "The reactive stage and the frontier").
This metric says instead how many replicas the load needs, in replicas at 100 % utilization:

    arrivals / per_replica + backlog_at_ready / drain_seconds

- arrivals: requests per second arriving, estimated from what vLLM exposes: completions
  (`rate(vllm:request_success_total)`) plus the growth of the requests in flight
  (`deriv(vllm:num_requests_running + vllm:num_requests_waiting)`), over the last `window` seconds;
- per_replica: the requests per second one replica sustains at the workload's mean lengths (the
  capacity model's numbers);
- backlog_at_ready: the waiting work, in replica-seconds, that will still be queued when a replica
  asked for now is ready: what waits now, plus what the arrivals beyond the requested replicas add over
  one cold start. A queue the fleet already asked for drains before new replicas could help adds
  nothing, which is what removes the wind-up.

The decision still goes through decide(): in a cluster the value is a Prometheus recording rule
(configs/capacity.md gives it) read as an External metric with an AverageValue target of the
utilization, so `ceil(value / target)` replicas. Pure arithmetic here; the simulator feeds it scrapes.
"""

from __future__ import annotations

import math
from collections import deque


def replicas_needed(arrivals_per_second: float, waiting: float, per_replica_rps: float, requested: int,
                    lead_seconds: float, drain_seconds: float) -> float:
    """Replicas (at 100 %) for the arrival rate plus the queue left at the next replica's ready time.

    waiting: requests queued now (the cluster's sum). requested: replicas asked for (ready + starting).
    """
    for name, value in (("arrivals_per_second", arrivals_per_second), ("waiting", waiting),
                        ("lead_seconds", lead_seconds)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if not (math.isfinite(per_replica_rps) and per_replica_rps > 0):
        raise ValueError(f"per_replica_rps must be a finite number > 0, got {per_replica_rps!r}")
    if not (math.isfinite(drain_seconds) and drain_seconds > 0):
        raise ValueError(f"drain_seconds must be a finite number > 0, got {drain_seconds!r}")
    load = arrivals_per_second / per_replica_rps  # replicas the arrivals keep busy
    backlog = waiting / per_replica_rps  # replica-seconds of queued work
    at_ready = backlog + (load - requested) * lead_seconds
    return load + max(0.0, at_ready) / drain_seconds


class ArrivalRate:
    """Requests per second arriving, from scrapes of the completions counter and the in-flight gauge.

    arrivals = completions + growth of in flight, over the scrapes of the last `window_seconds` (as
    `rate()` and `deriv()` over a range would). A counter that goes backwards (a restart) restarts the
    window rather than reading as negative arrivals.
    """

    def __init__(self, window_seconds: float = 60.0) -> None:
        if not (math.isfinite(window_seconds) and window_seconds > 0):
            raise ValueError(f"window_seconds must be a finite number > 0, got {window_seconds!r}")
        self.window = window_seconds
        self._scrapes: deque[tuple[float, float, float]] = deque()

    def add(self, t: float, completed_total: float, in_flight: float) -> None:
        """One scrape at time t (seconds); scrapes must come in time order."""
        if self._scrapes:
            last_t, last_completed, _ = self._scrapes[-1]
            if t <= last_t:
                return  # the same scrape seen again (several syncs between two scrapes)
            if completed_total < last_completed:
                self._scrapes.clear()
        self._scrapes.append((t, completed_total, in_flight))
        while len(self._scrapes) > 1 and self._scrapes[0][0] < t - self.window - 1e-9:
            self._scrapes.popleft()

    def per_second(self) -> float | None:
        """The arrival rate over the window, or None with fewer than two scrapes."""
        if len(self._scrapes) < 2:
            return None
        t0, c0, f0 = self._scrapes[0]
        t1, c1, f1 = self._scrapes[-1]
        return max(0.0, ((c1 - c0) + (f1 - f0)) / (t1 - t0))
