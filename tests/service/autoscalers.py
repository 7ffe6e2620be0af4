"""PredictiveAutoscalers on the fake API server, for the forecaster's discovery tests.

The fake API server (tests/fakekube) over real HTTP with the generated CRD, and the controller's own
client (controller.kube over the official kubernetes client) pointed at it: what
prescaler.discovery reads in a cluster, with nothing mocked.
"""

from __future__ import annotations

import copy
from typing import Any

from kubernetes import client as k8s

from controller.crd import build_crd
from controller.kube import KubeClient
from tests.fakekube import FakeClock, FakeKube

PA = ("prescaler.dev/v1alpha1", "predictiveautoscalers")
NS = "llm"

SPEC: dict[str, Any] = {
    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm"},
    "minReplicas": 1,
    "maxReplicas": 20,
    "metrics": [{"type": "Pods", "pods": {"metric": {"name": "vllm:num_requests_running"},
                                          "target": {"type": "AverageValue", "averageValue": "8"}}}],
    "forecast": {"signals": [{"name": "requests"}], "model": "last_value", "quantile": 0.9,
                 "horizon": "30m", "interval": "1m", "retrainInterval": "6h"},
    "capacity": {"perReplica": {"requestsPerSecond": 400}, "targetUtilization": 0.8},
    "leadTime": "5m",
}


def autoscaler(name: str, *, namespace: str = NS, workload: str | None = None, **spec_changes: Any) -> dict:
    """A PredictiveAutoscaler; `forecast={...}` and `capacity={...}` merge into SPEC's, None removes."""
    spec = copy.deepcopy(SPEC)
    for key, value in spec_changes.items():
        if value is None:
            spec.pop(key, None)
        elif isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if workload is not None:
        meta["annotations"] = {"prescaler.dev/workload": workload}
    return {"apiVersion": PA[0], "kind": "PredictiveAutoscaler", "metadata": meta, "spec": spec}


def create(server: FakeKube, obj: dict, clock: FakeClock | None = None) -> dict:
    """Store `obj` as the API server would (defaults from the CRD schema; the test's own admission is
    skipped, so a spec the CEL rules would refuse can be stored: an object written before a rule
    existed). With `clock`, one second passes first, so creation times differ."""
    if clock is not None:
        clock.advance(1)
    return server.create(*PA, obj)


def edit(server: FakeKube, name: str, namespace: str = NS, **spec_changes: Any) -> dict:
    """Change the stored object's spec (mappings merge, as in `autoscaler`)."""
    current = server.get(*PA, name, namespace)
    spec = current["spec"]
    for key, value in spec_changes.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return server.update(*PA, current)


def set_status(server: FakeKube, name: str, status: dict, namespace: str = NS) -> dict:
    current = server.get(*PA, name, namespace)
    return server.update(*PA, {**current, "status": status}, subresource="status")


def kube_client(server: FakeKube, timeout: float = 2.0) -> KubeClient:
    configuration = k8s.Configuration()
    configuration.host = server.url
    configuration.retries = False  # a failed list is the test's fault, not one urllib3 retries behind us
    return KubeClient(k8s.ApiClient(configuration), timeout=timeout)


def start_kube(clock: FakeClock) -> FakeKube:
    """The fake API server with the generated CRD, started (stop it with .stop())."""
    server = FakeKube(clock).start()
    server.create("apiextensions.k8s.io/v1", "customresourcedefinitions", build_crd())
    return server
