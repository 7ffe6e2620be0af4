"""Cold starts drawn per new replica instead of one fixed lead time (off unless configured).

A real LLM pod's cold start (schedule, pull the image, load the weights, warm up) is mostly the
same few minutes, with a tail: a node without the image cached pulls ~10 GB first, a busy node
loads the weights slower. Two shapes, both around the replay's `lead_seconds` (what the policies
are told the lead time is, so a policy that plans for the typical cold start meets the tail):

- `lognormal`: lead x exp(sigma x Z), Z standard normal; the median is the lead, and sigma sets
  the spread (0.25: half of the pods within about -16 % / +18 % of the lead).
- `tail`: a mixture; a pod is ready exactly at the lead with probability 1 - tail_fraction, and
  otherwise at lead x U(1, max_factor) (a slow image pull: up to 3x by default).

Both are clipped to [lead / max_factor, lead x max_factor]. The draws come from their own seeded
numpy Generator (independent of the arrivals' stream) in fixed blocks, so the n-th replica any
policy starts gets the n-th draw whatever else it does: two policies that scale up in the same
order see the same cold starts.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

_BLOCK = 1024  # draws per refill; fixed so that the n-th draw never depends on when it is asked for
_STREAM = 0xC01D  # mixed into the seed: the cold starts' stream is not the arrivals' stream


class ColdStartModel(BaseModel):
    """The distribution of one new replica's cold start, relative to the replay's lead time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["lognormal", "tail"] = "tail"
    sigma: float = Field(0.25, ge=0, description="lognormal: standard deviation of log(cold start / lead)")
    tail_fraction: float = Field(
        0.1, ge=0, le=1, description="tail: share of new replicas with a slow image pull"
    )
    max_factor: float = Field(3.0, ge=1, description="cold starts are clipped to lead x [1/max_factor, max_factor]")


class ColdStartDraws:
    """Cold starts in ticks for successive new replicas, from a seeded stream."""

    def __init__(self, model: ColdStartModel, lead_seconds: float, tick_seconds: float, seed: int) -> None:
        self.model = model
        self.lead_seconds = lead_seconds
        self.tick_seconds = tick_seconds
        self._rng = np.random.default_rng([seed, _STREAM])
        self._ticks: list[int] = []
        self._next = 0
        self.drawn = 0  # replicas that got a draw (for reports and tests)

    def _refill(self) -> None:
        m, lead = self.model, self.lead_seconds
        if m.kind == "lognormal":
            factors = np.exp(m.sigma * self._rng.standard_normal(_BLOCK))
        else:
            # Two uniforms per replica, always both drawn: which pods are slow and how slow never
            # shifts the stream of the others.
            pick, size = self._rng.random(_BLOCK), self._rng.random(_BLOCK)
            factors = np.where(pick < m.tail_fraction, 1.0 + size * (m.max_factor - 1.0), 1.0)
        factors = np.clip(factors, 1.0 / m.max_factor, m.max_factor)
        seconds = lead * factors
        self._ticks = [int(math.ceil(s / self.tick_seconds - 1e-9)) for s in seconds]
        self._next = 0

    def next_ticks(self) -> int:
        """The cold start of the next new replica, in whole ticks."""
        if self._next >= len(self._ticks):
            self._refill()
        ticks = self._ticks[self._next]
        self._next += 1
        self.drawn += 1
        return ticks
