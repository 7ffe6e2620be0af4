"""The contract: what the forecaster and the controller share, and the only forecaster package the
controller imports.

Plain pydantic types and pure functions over them, no statistics libraries, so the controller installs
and imports without Prophet or statsmodels. The forecaster service serialises the forecast types over
HTTP; the controller and the simulator read them back with the same types. Rules that both sides apply
(the capacity model, the scaling window's maximum, the duration grammar, the clock seam) live here
once, so an HPA reading the external metrics API gets the replicas the controller would compute.
"""

from forecaster.contract.clock import Clock, system_clock
from forecaster.contract.forecast import (
    DEFAULT_QUANTILES,
    SIGNALS,
    Forecast,
    ForecastPoint,
    Signal,
    WorkloadForecast,
    quantile_key,
)

__all__ = [
    "DEFAULT_QUANTILES",
    "Clock",
    "SIGNALS",
    "Forecast",
    "ForecastPoint",
    "Signal",
    "WorkloadForecast",
    "quantile_key",
    "system_clock",
]
