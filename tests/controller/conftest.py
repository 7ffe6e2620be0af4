"""Fixtures: a fake API server with the generated CRD installed, fake Prometheus and forecaster, a clock."""

from __future__ import annotations

import copy
from typing import Any, Iterator

import pytest
from kubernetes import client as k8s

from controller.crd import build_crd
from controller.kube import KubeClient
from controller.reconcile import Clients, Reconciler
from controller.server import ControllerMetrics
from tests.fakekube import FakeClock, FakeKube

from .fakes import FakeForecaster, FakePrometheus

NS = "default"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def kube(clock: FakeClock) -> Iterator[FakeKube]:
    with FakeKube(clock, ready_delay_seconds=120) as server:
        server.create("apiextensions.k8s.io/v1", "customresourcedefinitions", build_crd())
        yield server


def kube_client(server: FakeKube, timeout: float = 1.0) -> KubeClient:
    configuration = k8s.Configuration()
    configuration.host = server.url
    configuration.retries = False  # the fault tests count requests; urllib3 must not retry behind us
    return KubeClient(k8s.ApiClient(configuration), timeout=timeout)


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    server = FakePrometheus()
    yield server
    server.stop()


@pytest.fixture
def forecaster() -> Iterator[FakeForecaster]:
    server = FakeForecaster()
    yield server
    server.stop()


def make_reconciler(server: FakeKube, prom: FakePrometheus | None, forecaster: FakeForecaster | None,
                    **kwargs: Any) -> Reconciler:
    from controller.forecast_client import HttpForecastClient
    from controller.live_metrics import PrometheusLiveMetrics

    clients = Clients(
        kube=kube_client(server),
        metrics=PrometheusLiveMetrics(prom.url, timeout=1.0) if prom else None,
        forecasts=HttpForecastClient(forecaster.url, timeout=1.0) if forecaster else None,
    )
    return Reconciler(clients, metrics=ControllerMetrics(), **kwargs)


def deployment(name: str = "vllm", replicas: int = 2) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.6.3"}]}}}}


BASE_SPEC: dict[str, Any] = {
    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm"},
    "minReplicas": 1,
    "maxReplicas": 20,
    "metrics": [{"type": "Pods", "pods": {"metric": {"name": "vllm:num_requests_running"},
                                          "target": {"type": "AverageValue", "averageValue": "8"}}}],
    "forecast": {"signals": [{"name": "requests"}], "quantile": 0.9, "horizon": "30m", "maxAge": "10m"},
    "capacity": {"perReplica": {"requestsPerSecond": 2}, "targetUtilization": 1.0},
    "leadTime": "5m",
}


def autoscaler(name: str = "chat", **spec_overrides: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE_SPEC)
    spec.update(spec_overrides)
    spec = {k: v for k, v in spec.items() if v is not None}  # None removes a field
    return {"apiVersion": "prescaler.dev/v1alpha1", "kind": "PredictiveAutoscaler",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


def sync_pods(server: FakeKube, name: str = "vllm") -> list[str]:
    """Make the Deployment's pods exist: spec.replicas pods, the first readyReplicas of them Ready."""
    dep = server.get("apps/v1", "deployments", name)
    want, ready = dep["spec"]["replicas"], dep["status"].get("readyReplicas", 0)
    existing = {p["metadata"]["name"]: p for p in server.list("v1", "pods", NS)
                if p["metadata"].get("labels", {}).get("app") == name}
    names = [f"{name}-{i}" for i in range(want)]
    for pod_name in list(existing):
        if pod_name not in names:
            server.delete("v1", "pods", pod_name, NS)
    for i, pod_name in enumerate(names):
        is_ready = i < ready
        status = {"phase": "Running" if is_ready else "Pending",
                  "conditions": [{"type": "Ready", "status": "True" if is_ready else "False"}]}
        if pod_name in existing:
            pod = existing[pod_name]
            if pod.get("status") != status:
                pod["status"] = status
                server.update("v1", "pods", pod, subresource="status")
        else:
            pod = server.create("v1", "pods", {"metadata": {"name": pod_name, "namespace": NS,
                                                            "labels": {"app": name}},
                                               "spec": {"containers": [{"name": "vllm", "image": "x"}]}})
            pod["status"] = status
            server.update("v1", "pods", pod, subresource="status")
    return names[:ready]
