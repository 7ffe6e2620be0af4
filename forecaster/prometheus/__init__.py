"""Prometheus as the history source: the loader, the backfill of traces into a Prometheus TSDB,
connection settings and the errors of this boundary. See loader.py for what the frame holds."""

from forecaster.prometheus.config import PrometheusConfig
from forecaster.prometheus.errors import (
    PrometheusAuthError,
    PrometheusDeadlineExceeded,
    PrometheusEmptyResult,
    PrometheusError,
    PrometheusQueryError,
    PrometheusUnreachable,
)

__all__ = [
    "PrometheusConfig",
    "PrometheusError",
    "PrometheusDeadlineExceeded",
    "PrometheusUnreachable",
    "PrometheusAuthError",
    "PrometheusQueryError",
    "PrometheusEmptyResult",
    "load_history",
    "frame_from_prometheus",
]


def __getattr__(name: str):  # lazy: importing the package does not import requests/pandas
    if name in ("load_history", "frame_from_prometheus"):
        from forecaster.prometheus import loader

        return getattr(loader, name)
    raise AttributeError(name)
