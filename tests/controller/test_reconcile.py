"""The reconcile loop against the fake API server, fake Prometheus and fake forecaster (all real HTTP)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controller.reconcile import Cycle
from forecaster.contract import WorkloadForecast
from tests.fakekube import FakeClock, FakeKube

from .conftest import NS, autoscaler, deployment, make_reconciler, sync_pods
from .fakes import FakeForecaster, FakePrometheus, flat_then_peak

PA = ("prescaler.dev/v1alpha1", "predictiveautoscalers")


def _conditions(server: FakeKube, name: str = "chat") -> dict[str, dict]:
    obj = server.get(*PA, name)
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def _events(server: FakeKube) -> list[dict]:
    return server.list("events.k8s.io/v1", "events", NS)


def _replicas(server: FakeKube) -> int:
    return server.get("apps/v1", "deployments", "vllm")["spec"]["replicas"]


def _step(server: FakeKube, reconciler, clock: FakeClock, prom: FakePrometheus, per_pod: float):
    pods = sync_pods(server)
    prom.pod_metrics["vllm:num_requests_running"] = {p: per_pod for p in pods}
    return reconciler.reconcile_one(server.get(*PA, "chat"), clock.now(), Cycle())


def _peak_forecaster(forecaster: FakeForecaster, clock: FakeClock, origin, *, base=2.0, peak=12.0,
                     peak_from_s=600, peak_to_s=1800) -> None:
    def make(workload: str) -> WorkloadForecast:
        # Regenerated "now" each time: a fresh forecast whose peak stays at fixed wall-clock times.
        now = clock.now().replace(second=0, microsecond=0)
        shift = (now - origin).total_seconds()
        f = flat_then_peak(now, base=base, peak=peak, peak_from_s=peak_from_s - shift,
                           peak_to_s=peak_to_s - shift, generated_at=clock.now(), quantile_spread=1.0,
                           workload=workload)
        return WorkloadForecast(workload=workload, forecasts={"requests": f})
    forecaster.make = make


def test_scale_up_ahead_of_forecast_peak(kube, clock, prom, forecaster) -> None:
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler())
    origin = clock.now()
    # The peak (12 req/s, 6 replicas at 2 req/s each) starts 10 minutes from now; the lead time is 5 minutes.
    _peak_forecaster(forecaster, clock, origin)
    prom.rates["vllm:request_success_total"] = 2.0
    reconciler = make_reconciler(kube, prom, forecaster)

    first = _step(kube, reconciler, clock, prom, per_pod=8.0)  # metrics exactly at target: no reactive change
    assert first.error is None, first
    assert _replicas(kube) == 2, "nothing to do while the peak is more than a lead time away"

    scaled_at = None
    for _ in range(40):  # 10 minutes of 15 s syncs
        clock.advance(15)
        outcome = _step(kube, reconciler, clock, prom, per_pod=8.0)
        assert outcome.error is None, outcome
        if _replicas(kube) > 2 and scaled_at is None:
            scaled_at = clock.now()
            # The forecast drove it (behavior's rate limit may cap the first step: ScaleUpLimit).
            assert outcome.reason in ("ScaleUpPredictive", "ScaleUpLimit"), outcome
    assert scaled_at is not None
    peak_at = origin + timedelta(seconds=600)
    assert peak_at - scaled_at >= timedelta(minutes=4), f"scaled at {scaled_at}, peak at {peak_at}"
    assert _replicas(kube) == 6
    scale_events = [e for e in _events(kube) if e["action"] == "Scale"]
    assert scale_events and all(e["regarding"]["name"] == "chat" for e in scale_events)
    # The note carries the policy's message: the forecast quantile of the signal that drove it.
    assert any("q0.9 of requests" in e["note"] for e in scale_events), [e["note"] for e in scale_events]
    status = kube.get(*PA, "chat")["status"]
    assert status["desiredReplicas"] == 6 and status["lastScaleTime"]
    assert _conditions(kube)["ForecastHealthy"]["status"] == "True"


def test_forecast_outage_falls_back_and_recovers_with_events(kube, clock, prom, forecaster) -> None:
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler())
    _peak_forecaster(forecaster, clock, clock.now(), peak=2.0)  # flat: nothing to scale for
    prom.rates["vllm:request_success_total"] = 2.0
    reconciler = make_reconciler(kube, prom, forecaster)

    assert _step(kube, reconciler, clock, prom, per_pod=8.0).error is None
    assert _conditions(kube)["ForecastHealthy"]["status"] == "True"

    forecaster.down = True
    clock.advance(15)
    outcome = _step(kube, reconciler, clock, prom, per_pod=8.0)
    assert outcome.error is None, "a forecaster outage is a fallback, not a failed sync"
    healthy = _conditions(kube)["ForecastHealthy"]
    assert healthy["status"] == "False" and healthy["reason"] == "ForecastMissing"
    fallback = [e for e in _events(kube) if e["action"] == "Fallback"]
    assert len(fallback) == 1 and fallback[0]["type"] == "Warning" and fallback[0]["reason"] == "ForecastMissing"

    clock.advance(15)  # still down: no second Event for the same state
    _step(kube, reconciler, clock, prom, per_pod=20.0)  # reactive still works as a plain HPA
    assert len([e for e in _events(kube) if e["action"] == "Fallback"]) == 1
    assert _replicas(kube) > 2

    forecaster.down = False
    clock.advance(15)
    _step(kube, reconciler, clock, prom, per_pod=8.0)
    assert _conditions(kube)["ForecastHealthy"]["status"] == "True"
    recovered = [e for e in _events(kube) if e["reason"] == "ForecastRecovered"]
    assert len(recovered) == 1 and recovered[0]["type"] == "Normal"
    assert reconciler.metrics.errors.labels("ForecastUnavailable")._value.get() == 2


def test_conflict_on_scale_patch_is_retried_after_a_fresh_read(kube, clock, prom) -> None:
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler(forecast=None, capacity=None))
    reconciler = make_reconciler(kube, prom, None)
    kube.fail_next(r"/deployments/vllm/scale$", 1, status=409, method="PATCH")
    outcome = _step(kube, reconciler, clock, prom, per_pod=16.0)  # twice the target: scale up
    assert outcome.scaled and outcome.error is None, outcome
    assert _replicas(kube) == 4
    scale_calls = [m for m, p in kube.requests if p.endswith("/deployments/vllm/scale")]
    assert scale_calls == ["GET", "PATCH", "GET", "PATCH"]
    assert reconciler.metrics.errors.labels("ScaleConflict")._value.get() == 1


def test_a_second_conflict_gives_up_until_the_next_period(kube, clock, prom) -> None:
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler(forecast=None, capacity=None))
    reconciler = make_reconciler(kube, prom, None)
    kube.fail_next(r"/deployments/vllm/scale$", 2, status=409, method="PATCH")
    outcome = _step(kube, reconciler, clock, prom, per_pod=16.0)
    assert not outcome.scaled and outcome.reason == "FailedUpdateScale"
    assert _replicas(kube) == 2
    assert _conditions(kube)["AbleToScale"]["reason"] == "FailedUpdateScale"
    # The failed patch is not remembered as a scale event: the next period may scale at full rate.
    state = kube.get(*PA, "chat")["status"]["policyState"]
    assert state["scaleEvents"] == []
    clock.advance(15)
    assert _step(kube, reconciler, clock, prom, per_pod=16.0).scaled
    assert _replicas(kube) == 4


def test_restart_inside_the_scale_down_window_keeps_it(kube, clock, prom) -> None:
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler(forecast=None, capacity=None))
    first = make_reconciler(kube, prom, None)
    assert _step(kube, first, clock, prom, per_pod=16.0).scaled
    assert _replicas(kube) == 4
    clock.advance(120)
    kube.settle()
    # Load drops to a quarter: the reactive stage wants 1, the 300 s scale-down window holds 4.
    assert _step(kube, first, clock, prom, per_pod=2.0).desired == 4

    restarted = make_reconciler(kube, prom, None)  # a new process: only the status remembers
    clock.advance(60)
    outcome = _step(kube, restarted, clock, prom, per_pod=2.0)
    assert outcome.desired == 4 and _replicas(kube) == 4, outcome
    assert outcome.reason == "ScaleDownStabilized"
    clock.advance(125)  # 305 s after the last high recommendation
    outcome = _step(kube, restarted, clock, prom, per_pod=2.0)
    assert _replicas(kube) < 4, outcome


@pytest.mark.parametrize(
    ("overrides", "field_text"),
    [
        pytest.param({"minReplicas": 3, "maxReplicas": 2}, "maxReplicas (2) must be >= minReplicas (3)",
                     id="max-below-min"),
        pytest.param({"forecast": {"signals": [{"name": "requests"}], "quantile": 1.5}}, "spec.forecast.quantile",
                     id="quantile-out-of-range"),
        pytest.param({"leadTime": "five minutes"}, "spec.leadTime", id="bad-duration"),
        pytest.param({"metrics": [{"type": "Pods", "pods": {"metric": {"name": "x"},
                                                            "target": {"type": "Value", "value": "1"}}}]},
                     "spec.metrics[0]", id="pods-metric-with-value-target"),
    ],
)
def test_a_bad_spec_gets_a_condition_naming_the_field(kube, clock, prom, overrides, field_text) -> None:
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler(**overrides))
    reconciler = make_reconciler(kube, prom, None)
    outcome = _step(kube, reconciler, clock, prom, per_pod=16.0)
    assert outcome.reason == "InvalidSpec"
    condition = _conditions(kube)["SpecValid"]
    assert condition["status"] == "False" and field_text in condition["message"], condition["message"]
    assert _conditions(kube)["ScalingActive"]["status"] == "False"
    assert _replicas(kube) == 2, "an invalid spec acts on nothing"
    assert [e["reason"] for e in _events(kube)] == ["InvalidSpec"]
    clock.advance(15)
    _step(kube, reconciler, clock, prom, per_pod=16.0)
    assert len(_events(kube)) == 1, "one Event per transition, not per sync"


def test_a_missing_target_gets_a_condition(kube, clock, prom) -> None:
    kube.create(*PA, autoscaler())
    reconciler = make_reconciler(kube, prom, None)
    outcome = reconciler.reconcile_one(kube.get(*PA, "chat"), clock.now())
    assert outcome.reason == "FailedGetScale"
    condition = _conditions(kube)["AbleToScale"]
    assert condition["status"] == "False" and "Deployment/vllm" in condition["message"]
    warnings = [(e["reason"], e["type"]) for e in _events(kube)]
    assert warnings == [("FailedGetScale", "Warning")], "a condition alone is easy to miss: an Event too"
    clock.advance(15)
    reconciler.reconcile_one(kube.get(*PA, "chat"), clock.now())
    assert len(_events(kube)) == 1, "one Event per transition, not per sync"


@pytest.mark.parametrize(
    ("api_version", "plural", "obj"),
    [
        pytest.param("autoscaling/v2", "horizontalpodautoscalers", {
            "metadata": {"name": "vllm-hpa", "namespace": NS},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm"},
                     "minReplicas": 1, "maxReplicas": 5}}, id="hpa"),
        pytest.param("keda.sh/v1alpha1", "scaledobjects", {
            "metadata": {"name": "vllm-keda", "namespace": NS},
            "spec": {"scaleTargetRef": {"name": "vllm"}, "triggers": []}}, id="keda-default-kind"),
    ],
)
def test_another_autoscaler_on_the_target_means_hands_off(kube, clock, prom, api_version, plural, obj) -> None:
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(api_version, plural, obj)
    kube.create(*PA, autoscaler(forecast=None, capacity=None))
    reconciler = make_reconciler(kube, prom, None)
    outcome = _step(kube, reconciler, clock, prom, per_pod=40.0)
    assert outcome.reason == "AnotherAutoscaler" and not outcome.scaled
    assert _replicas(kube) == 2
    owned = _conditions(kube)["OwnedByAnotherAutoscaler"]
    assert owned["status"] == "True" and obj["metadata"]["name"] in owned["message"]
    assert [e["reason"] for e in _events(kube)] == ["AnotherAutoscaler"]


@pytest.mark.parametrize(("first", "second", "gap_s", "winner"), [
    pytest.param("zeta", "alpha", 5, "zeta", id="the-older-wins-whatever-its-name"),
    pytest.param("beta", "alpha", 0, "alpha", id="same-second-the-name-decides"),
])
def test_two_predictive_autoscalers_on_one_target_one_acts(kube, clock, prom, first, second, gap_s, winner) -> None:
    """Two PAs on one Deployment flapped its replicas (13 -> 5 -> 10 -> 5) with OwnedByAnotherAutoscaler
    False. Now the older keeps the target and the newer gets the condition and an Event."""
    from controller.loop import Controller

    def running_target(value: str) -> list[dict]:
        return [{"type": "Pods", "pods": {"metric": {"name": "vllm:num_requests_running"},
                                          "target": {"type": "AverageValue", "averageValue": value}}}]

    kube.create("apps/v1", "deployments", deployment(replicas=2))
    # 32 requests in flight in all: the winner's target (8 per pod) wants 4 replicas, the other's 8.
    targets = {winner: "8", (second if winner == first else first): "4"}
    kube.create(*PA, autoscaler(first, forecast=None, capacity=None, metrics=running_target(targets[first])))
    clock.advance(gap_s)
    kube.create(*PA, autoscaler(second, forecast=None, capacity=None, metrics=running_target(targets[second])))
    reconciler = make_reconciler(kube, prom, None)
    controller = Controller(reconciler, reconciler.clients.kube, clock)
    seen = []
    for _ in range(4):
        pods = sync_pods(kube)
        prom.pod_metrics["vllm:num_requests_running"] = {p: 32.0 / len(pods) for p in pods}
        outcomes = {o.key.split("/")[1]: o for o in controller.step(force=True)}
        seen.append(_replicas(kube))
        clock.advance(15)
    loser = second if winner == first else first
    assert outcomes[loser].reason == "AnotherAutoscaler" and not outcomes[loser].scaled
    assert outcomes[winner].reason != "AnotherAutoscaler"
    owned = {c["type"]: c for c in kube.get(*PA, loser)["status"]["conditions"]}["OwnedByAnotherAutoscaler"]
    assert owned["status"] == "True" and f"PredictiveAutoscaler {winner}" in owned["message"]
    assert {c["type"]: c for c in kube.get(*PA, winner)["status"]["conditions"]}[
        "OwnedByAnotherAutoscaler"]["status"] == "False"
    assert [e["regarding"]["name"] for e in _events(kube) if e["reason"] == "AnotherAutoscaler"] == [loser]
    assert seen == [4, 4, 4, 4], f"one controller of the scale, the winner's answer, no flapping: {seen}"


def test_an_hpa_on_another_workload_is_not_a_conflict(kube, clock, prom) -> None:
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create("autoscaling/v2", "horizontalpodautoscalers", {
        "metadata": {"name": "other", "namespace": NS},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "other"},
                 "maxReplicas": 3}})
    kube.create(*PA, autoscaler(forecast=None, capacity=None))
    outcome = _step(kube, make_reconciler(kube, prom, None), clock, prom, per_pod=16.0)
    assert outcome.scaled and _conditions(kube)["OwnedByAnotherAutoscaler"]["status"] == "False"


@pytest.mark.parametrize(
    ("path", "fault"),
    [
        pytest.param(r"/deployments/vllm/scale$", "500", id="scale-read-500"),
        pytest.param(r"/predictiveautoscalers/chat/status$", "500", id="status-write-500"),
        pytest.param(r"/horizontalpodautoscalers$", "500", id="hpa-list-500"),
        pytest.param(r"/deployments/vllm/scale$", "hang", id="scale-read-timeout"),
    ],
)
def test_api_errors_are_counted_and_retried_next_period(kube, clock, prom, path, fault) -> None:
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler(forecast=None, capacity=None))
    reconciler = make_reconciler(kube, prom, None)
    reconciler.clients.kube.timeout = 0.3
    if fault == "hang":
        kube.hang_next(path, 1, seconds=1.0, method="GET")
    else:
        kube.fail_next(path, 1, status=500)
    outcome = _step(kube, reconciler, clock, prom, per_pod=16.0)
    assert outcome.error is not None and outcome.reason == "Error"
    errors = {s.labels["type"]: s.value for m in reconciler.metrics.registry.collect()
              if m.name == "prescaler_reconcile_errors" for s in m.samples if s.name.endswith("_total")}
    assert errors == ({"KubeUnavailable": 1.0} if fault == "hang" else {"KubeUnavailable500": 1.0}), errors
    clock.advance(15)
    outcome = _step(kube, reconciler, clock, prom, per_pod=16.0)
    assert outcome.error is None and _replicas(kube) == 4


def test_single_binary_mode_reads_forecasts_in_process(kube, clock, prom) -> None:
    """An injected provider (no HTTP) feeds the same predictive stage."""
    from controller.reconcile import Clients, Reconciler

    from .conftest import kube_client

    class InProcess:
        calls: list[tuple[str, float, tuple[float, ...]]] = []

        def get(self, workload, *, horizon_seconds, quantiles, step_seconds=None):
            self.calls.append((workload, horizon_seconds, tuple(quantiles)))
            f = flat_then_peak(clock.now(), base=12.0, peak=12.0, peak_from_s=0, peak_to_s=0, quantile_spread=1.0,
                               workload=workload)
            return WorkloadForecast(workload=workload, forecasts={"requests": f})

    kube.create("apps/v1", "deployments", deployment(replicas=2))
    pa = autoscaler()
    pa["metadata"]["annotations"] = {"prescaler.dev/workload": "m-small"}
    kube.create(*PA, pa)
    provider = InProcess()
    from controller.live_metrics import PrometheusLiveMetrics

    reconciler = Reconciler(Clients(kube=kube_client(kube), metrics=PrometheusLiveMetrics(prom.url),
                                    forecasts=provider))
    outcome = _step(kube, reconciler, clock, prom, per_pod=8.0)
    assert outcome.scaled and outcome.desired > 2
    assert provider.calls == [("m-small", 1800.0, (0.9,))], "the workload annotation names the forecaster's workload"


def test_any_scalable_kind_through_the_scale_subresource(kube, clock, prom) -> None:
    sts = deployment("vllm-sts", replicas=2)
    sts["apiVersion"], sts["kind"] = "apps/v1", "StatefulSet"
    sts["spec"]["serviceName"] = "vllm-sts"
    kube.create("apps/v1", "statefulsets", sts)
    for i in range(2):
        pod = kube.create("v1", "pods", {"metadata": {"name": f"vllm-sts-{i}", "namespace": NS,
                                                      "labels": {"app": "vllm-sts"}}, "spec": {"containers": []}})
        pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        kube.update("v1", "pods", pod, subresource="status")
    prom.pod_metrics["vllm:num_requests_running"] = {"vllm-sts-0": 16.0, "vllm-sts-1": 16.0}
    kube.create(*PA, autoscaler(forecast=None, capacity=None,
                                scaleTargetRef={"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "vllm-sts"}))
    outcome = make_reconciler(kube, prom, None).reconcile_one(kube.get(*PA, "chat"), clock.now())
    assert outcome.scaled and outcome.desired == 4
    assert kube.get("apps/v1", "statefulsets", "vllm-sts")["spec"]["replicas"] == 4
