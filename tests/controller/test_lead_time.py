"""`leadTime: auto`: measured from the scale-up patch to readyReplicas reaching the new count; p90 in status."""

from __future__ import annotations

import pytest

from controller.reconcile import Cycle, p90

from .conftest import autoscaler, deployment, make_reconciler, sync_pods

PA = ("prescaler.dev/v1alpha1", "predictiveautoscalers")


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        pytest.param([100.0], 100.0, id="one"),
        pytest.param([float(i) for i in range(1, 11)], 9.0, id="ten-nearest-rank"),
        pytest.param([60.0] * 19 + [900.0], 60.0, id="one-outlier-in-twenty"),
        pytest.param([60.0] * 8 + [900.0, 900.0], 900.0, id="two-slow-in-ten"),
    ],
)
def test_p90(samples, expected) -> None:
    assert p90(samples) == expected


def test_lead_time_auto_is_learned_from_readiness(kube, clock, prom) -> None:
    # The fake API server makes new replicas ready 120 s after the scale patch (conftest).
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler(forecast=None, capacity=None, leadTime="auto"))
    reconciler = make_reconciler(kube, prom, None)

    def step(per_pod: float):
        pods = sync_pods(kube)
        prom.pod_metrics["vllm:num_requests_running"] = {p: per_pod for p in pods}
        return reconciler.reconcile_one(kube.get(*PA, "chat"), clock.now(), Cycle())

    assert step(16.0).scaled
    status = kube.get(*PA, "chat")["status"]
    assert status["pendingScaleUp"]["replicas"] == 4 and status["leadTimeSeconds"] == 300.0, "default until measured"
    for _ in range(7):  # 105 s: not ready yet
        clock.advance(15)
        step(8.0)
    assert "pendingScaleUp" in kube.get(*PA, "chat")["status"]
    clock.advance(15)  # 120 s after the patch: ready
    step(8.0)
    status = kube.get(*PA, "chat")["status"]
    assert "pendingScaleUp" not in status
    assert status["leadTimeSamples"] == [120.0] and status["leadTimeSeconds"] == 120.0
    assert reconciler.metrics.lead_time.labels("default", "chat")._value.get() == 120.0


def test_a_fixed_lead_time_is_used_as_given(kube, clock, prom) -> None:
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler(forecast=None, capacity=None, leadTime="7m"))
    reconciler = make_reconciler(kube, prom, None)
    sync_pods(kube)
    reconciler.reconcile_one(kube.get(*PA, "chat"), clock.now())
    status = kube.get(*PA, "chat")["status"]
    assert status["leadTimeSeconds"] == 420.0 and "pendingScaleUp" not in status
