"""The clock seam: the one place the forecaster and the controller read wall time.

Everything else receives a `Clock` (or `now` itself), as kopf passes its clock through one seam, so
tests run the real code against a fake clock (docs/architecture.md, "Fakes at the edges"). Stdlib only: the
controller imports this without the statistics libraries.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

__all__ = ["Clock", "system_clock"]

# A clock returns the current time, timezone-aware (UTC for the system clock). Tests pass a fake one.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The current wall time, timezone-aware UTC."""
    return datetime.now(timezone.utc)
