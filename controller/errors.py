"""The controller's own errors, one per boundary, each mapped to a documented fallback in reconcile.py."""

from __future__ import annotations


class ControllerError(Exception):
    """Base of every error the controller raises on purpose."""


class KubeError(ControllerError):
    """The API server answered with an error status (or not at all: status 0)."""

    def __init__(self, status: int, reason: str, message: str, *, verb: str = "", path: str = ""):
        self.status, self.reason, self.verb, self.path = status, reason, verb, path
        super().__init__(f"{verb} {path}: {status} {reason}: {message}".strip())


class NotFound(KubeError):
    """404: the object (or the kind) does not exist. Reconcile: condition, no action."""


class ScaleConflict(KubeError):
    """409 on a write: someone changed the object since we read it. Reconcile: re-read, retry once."""


class KubeUnavailable(KubeError):
    """5xx, a timeout or a refused connection. Reconcile: count the error, retry next period."""


class MetricsUnavailable(ControllerError):
    """Prometheus could not answer the live-metrics query. Policy: no metrics, no scale-down."""


class ForecastUnavailable(ControllerError):
    """The forecaster could not be reached or answered an error. Policy: predictive stage abstains."""
