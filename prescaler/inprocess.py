"""Single-binary mode: the controller with the forecaster service running in its own process.

Wiring both sides is the composition root's job: the controller only knows the ForecastProvider
protocol (controller.forecast_client), this class implements it over forecaster.service.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from controller.errors import ForecastUnavailable
from forecaster.contract import WorkloadForecast

if TYPE_CHECKING:
    from controller.kube import KubeClient


class InProcessForecasts:
    """Single-binary mode: the forecaster service's scheduler and cache in this process.

    A controller.forecast_client.ForecastProvider. The forecaster service is imported when this mode
    is constructed, so the controller's own path keeps working without the `forecaster` extra. Its
    errors become ForecastUnavailable, which the reconciler maps to the documented fallback (the
    predictive stage abstains).
    """

    def __init__(self, config_path: str, *, kube: KubeClient | None = None, **kwargs):
        """`kube`: the controller's own API client, which discovery (`discovery.enabled`) then lists
        the PredictiveAutoscalers through, so one binary talks to one API server with one identity."""
        from forecaster.service.config import load_config
        from forecaster.service.inprocess import InProcessForecaster
        from prescaler.discovery import workload_source

        config = load_config(config_path)
        source = workload_source(config, kube=kube)
        self._forecaster = InProcessForecaster(config, workloads=source, **kwargs).start()

    def close(self) -> None:
        self._forecaster.close()

    def get(self, workload: str, *, horizon_seconds: float, quantiles: Sequence[float],
            step_seconds: int | None = None) -> WorkloadForecast:
        from forecaster.errors import ForecasterError

        try:
            return self._forecaster.get(workload, horizon_seconds=horizon_seconds, quantiles=quantiles,
                                        step_seconds=step_seconds)
        except ForecasterError as exc:
            raise ForecastUnavailable(str(exc)) from exc
