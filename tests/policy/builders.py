"""Small builders for specs and inputs, so each table row states only what it tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from controller.policy.spec import PredictiveAutoscalerSpec
from controller.policy.types import MetricObservation, PredictiveInputs, ReactiveInputs
from forecaster.contract import Forecast, ForecastPoint

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


def pods_metric(name: str = "vllm:num_requests_running", average_value: Any = 10) -> dict:
    return {"type": "Pods", "pods": {"metric": {"name": name},
                                     "target": {"type": "AverageValue", "averageValue": average_value}}}


def cpu_metric(utilization: int = 50) -> dict:
    return {"type": "Resource", "resource": {"name": "cpu",
                                             "target": {"type": "Utilization", "averageUtilization": utilization}}}


def external_metric(target_type: str = "Value", target: Any = 10, name: str = "queue_length") -> dict:
    key = "value" if target_type == "Value" else "averageValue"
    return {"type": "External", "external": {"metric": {"name": name}, "target": {"type": target_type, key: target}}}


def object_metric(target_type: str = "Value", target: Any = 10) -> dict:
    key = "value" if target_type == "Value" else "averageValue"
    return {"type": "Object", "object": {"describedObject": {"apiVersion": "v1", "kind": "Service", "name": "llm"},
                                         "metric": {"name": "requests_per_second"},
                                         "target": {"type": target_type, key: target}}}


def make_spec(metrics: list[dict] | None = None, **fields: Any) -> PredictiveAutoscalerSpec:
    data: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llm"},
        "minReplicas": 1,
        "maxReplicas": 100,
        "metrics": metrics if metrics is not None else [pods_metric()],
    }
    data.update(fields)
    return PredictiveAutoscalerSpec.model_validate(data)


def forecast_spec(**fields: Any) -> dict:
    base = {"signals": [{"name": "requests"}], "quantile": 0.9, "maxAge": "10m", "interval": "1m"}
    base.update(fields)
    return base


CAPACITY = {"perReplica": {"requestsPerSecond": 4, "promptTokensPerSecond": 10000,
                           "outputTokensPerSecond": 3000}, "targetUtilization": 0.8}


def predictive_spec(metrics: list[dict] | None = None, **fields: Any) -> PredictiveAutoscalerSpec:
    fields.setdefault("forecast", forecast_spec())
    fields.setdefault("capacity", CAPACITY)
    return make_spec(metrics, **fields)


def ready_pods(n: int, prefix: str = "p") -> dict[str, str]:
    return {f"{prefix}{i}": "Ready" for i in range(n)}


def pod_values(values: list[float | None], prefix: str = "p") -> dict[str, float]:
    return {f"{prefix}{i}": v for i, v in enumerate(values) if v is not None}


def reactive(current: int, per_pod: list[float | None] | None = None, *, pods: dict[str, str] | None = None,
             observations: list[MetricObservation | None] | None = None,
             status_replicas: int | None = None) -> ReactiveInputs:
    """current replicas, all Ready, one Pods metric with these per-pod values (None: no sample)."""
    if pods is None:
        pods = ready_pods(current)
    if observations is None:
        observations = [MetricObservation(pod_values=pod_values(per_pod or []))]
    return ReactiveInputs(current_replicas=current, pods=pods, metrics=observations, status_replicas=status_replicas)


def flat_forecast(level: float, *, signal: str = "requests", generated_at: datetime = NOW, minutes: int = 60,
                  spread: float = 1.2, start: datetime | None = None, step: int = 60) -> Forecast:
    start = start or generated_at
    points = [ForecastPoint(timestamp=start + timedelta(seconds=i * step), mean=level,
                            quantiles={"0.5": level, "0.9": level * spread})
              for i in range(minutes * 60 // step)]
    return Forecast(workload="llm", signal=signal, model="test", generated_at=generated_at, step_seconds=step,
                    points=points)


def shaped_forecast(levels: list[float], *, signal: str = "requests", generated_at: datetime = NOW,
                    step: int = 60) -> Forecast:
    points = [ForecastPoint(timestamp=generated_at + timedelta(seconds=i * step), mean=v,
                            quantiles={"0.5": v, "0.9": v}) for i, v in enumerate(levels)]
    return Forecast(workload="llm", signal=signal, model="test", generated_at=generated_at, step_seconds=step,
                    points=points)


def predictive(forecasts: dict[str, Forecast | None], observed: dict[str, float | None] | None = None,
               lead: float = 300.0) -> PredictiveInputs:
    return PredictiveInputs(forecasts=forecasts, observed_rates=observed or {}, lead_time_seconds=lead)
