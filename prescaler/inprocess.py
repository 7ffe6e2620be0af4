"""Single-binary mode: the controller with the forecaster service running in its own process.

Wiring both sides is the composition root's job: the controller only knows the ForecastProvider
protocol (controller.forecast_client), this class implements it over forecaster.service.
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.errors import ForecastUnavailable
from forecaster.contract import WorkloadForecast


class InProcessForecasts:
    """Single-binary mode: the forecaster service's scheduler and cache in this process.

    A controller.forecast_client.ForecastProvider. The forecaster service is imported when this mode
    is constructed, so the controller's own path keeps working without the `forecaster` extra. Its
    errors become ForecastUnavailable, which the reconciler maps to the documented fallback (the
    predictive stage abstains).
    """

    def __init__(self, config_path: str, **kwargs):
        from forecaster.service.config import load_config
        from forecaster.service.inprocess import InProcessForecaster

        self._forecaster = InProcessForecaster(load_config(config_path), **kwargs).start()

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
