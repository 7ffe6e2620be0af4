"""prescaler's controller scaling real vLLM replicas, read through a real Prometheus (issue 11).

The parts are real except the API server (tests/fakekube, over real HTTP) and the kubelet (the pod
runner, tests/e2e/vllm_pods.py): vLLM's CPU build serving a tiny Llama, Debian's Prometheus scraping
every replica through file_sd, `prescaler controller run` as its own process, and an open-loop load
through a least-request router. One run walks one load shape and asserts, from what the API server
and Prometheus recorded:
- the live metrics are real vLLM output, read under both spellings (`vllm:` and `vllm_`);
- load above one replica's measured capacity makes the controller ask for a second replica, which
  the runner starts and which becomes Ready;
- `leadTime: auto` learns the measured cold start within 20 %;
- Prometheus stopped for 60 s under load causes no scale-down and a ScalingActive=False condition
  naming the failed metric;
- load falling makes it scale back in, and a process is terminated;
- every request sent is accounted for: completed, or answered with a status, none lost silently.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest

from controller.crd import build_crd
from controller.live_metrics import PrometheusLiveMetrics
from tests.e2e.loadgen import LoadGenerator, Outcome, Shape
from tests.e2e.router import Router
from tests.e2e.vllm_pods import VllmDeploymentRunner
from tests.fakekube import FakeKube
from tests.promfixture import _require_binaries, start_prometheus
from tests.vllm.replica import MAX_NUM_SEQS, ROOT, VllmReplica, free_port, log_tail

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.prometheus, pytest.mark.timeout(900)]

NS, NAME = "llm", "m-small"
SYNC_PERIOD_S = 5
DOWN_WINDOW_S = 10
SHAPE = Shape(prompt_words=24, max_tokens=48)
MAX_LOAD_S = 900.0  # the load runs until the test stops it; this only bounds a test gone wrong


def _scrape_configs(targets: Path) -> str:
    """Every replica twice: as scraped (`vllm:`), and renamed to `vllm_` (what some remote-write
    paths and prometheus_client >= 0.23 exporters store) under another namespace label."""
    return (f"  - job_name: vllm\n    scrape_interval: 1s\n    file_sd_configs:\n"
            f"      - files: ['{targets}']\n        refresh_interval: 1s\n"
            f"  - job_name: vllm-underscore\n    scrape_interval: 1s\n    file_sd_configs:\n"
            f"      - files: ['{targets}']\n        refresh_interval: 1s\n"
            f"    relabel_configs:\n      - target_label: namespace\n        replacement: {NS}-underscore\n"
            f"    metric_relabel_configs:\n      - source_labels: [__name__]\n        regex: 'vllm:(.*)'\n"
            f"        target_label: __name__\n        replacement: 'vllm_$1'\n")


def _deployment() -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": NAME}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": NAME, "namespace": NS},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "vllm", "image": "vllm-cpu:0.32.0"}]}}}}


def _autoscaler(running_target: float) -> dict[str, Any]:
    return {"apiVersion": "prescaler.dev/v1alpha1", "kind": "PredictiveAutoscaler",
            "metadata": {"name": NAME, "namespace": NS},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
                     "minReplicas": 1, "maxReplicas": 2,
                     "metrics": [
                         {"type": "Pods", "pods": {"metric": {"name": "vllm:num_requests_running"},
                                                   "target": {"type": "AverageValue",
                                                              "averageValue": f"{running_target:g}"}}},
                         {"type": "Pods", "pods": {"metric": {"name": "vllm:num_requests_waiting"},
                                                   "target": {"type": "AverageValue", "averageValue": "2"}}}],
                     "leadTime": "auto", "syncPeriod": f"{SYNC_PERIOD_S}s",
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": DOWN_WINDOW_S}}}}


def _kubeconfig(path: Path, url: str) -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "e2e",
        "clusters": [{"name": "e2e", "cluster": {"server": url}}],
        "users": [{"name": "e2e", "user": {"token": "e2e"}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "e2e"}}]}))
    return path


def _measure_capacity(replica: VllmReplica, seconds: float = 8.0) -> float:
    """Completions per second of one replica kept saturated (twice its batch in flight)."""
    body = json.dumps({"model": NAME, "prompt": "the quick brown fox " * (SHAPE.prompt_words // 4),
                       "max_tokens": SHAPE.max_tokens, "ignore_eos": True}).encode()
    done: list[float] = []
    deadline = time.monotonic() + seconds

    def worker() -> None:
        while time.monotonic() < deadline:
            request = urllib.request.Request(f"{replica.url}/v1/completions", body,
                                             {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
            done.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(2 * MAX_NUM_SEQS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    return len(done) / (time.monotonic() - started)


def _wait(predicate: Callable[[], bool], timeout: float, what: str, explain: Callable[[], str]) -> float:
    """Poll until `predicate()`; the seconds it took, or fail naming `what` with `explain()`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.5)  # real processes on a real clock: nothing to inject
    pytest.fail(f"{what} not within {timeout:.0f} s\n{explain()}")


def test_controller_scales_real_vllm_from_real_metrics(tiny_model: Path, tmp_path: Path) -> None:
    _require_binaries()
    import subprocess
    import sys

    targets = tmp_path / "targets.json"
    kube = FakeKube(simulate_rollouts=False).start()
    processes: list[subprocess.Popen] = []
    runner = router = prometheus = None
    try:
        kube.create("apiextensions.k8s.io/v1", "customresourcedefinitions", build_crd())
        kube.create("v1", "namespaces", {"metadata": {"name": NS}})
        kube.create("apps/v1", "deployments", _deployment())
        runner = VllmDeploymentRunner(kube, NS, NAME, model_dir=tiny_model, workdir=tmp_path / "pods",
                                      targets_file=targets).start()
        prom_port = free_port()
        prometheus = start_prometheus(tmp_path / "prom-data", tmp_path, scrape_configs=_scrape_configs(targets),
                                      port=prom_port)
        router = Router(runner.ready_urls).start()

        def explain() -> str:
            found = kube.store.objects.get(("prescaler.dev", "predictiveautoscalers", NS, NAME)) or {}
            pa = {"status": found.get("status")}
            return (f"runner errors: {runner.errors}\ntimeline: {runner.timeline}\nPA status: "
                    f"{json.dumps(pa.get('status'), indent=1)[-3000:]}\ncontroller log:\n"
                    f"{log_tail(tmp_path / 'controller.log')}\n{runner.log_tails()}")

        def first_ready() -> bool:
            if runner.timeline.restarted:
                pytest.fail(f"the first replica exited: {runner.timeline.restarted}\n{runner.log_tails()}")
            return bool(runner.ready_urls())

        cold_start_0 = _wait(first_ready, 300, "the first replica Ready", explain)
        capacity = _measure_capacity(runner.pods[0].replica)
        assert capacity > 1.0, f"one replica completed {capacity:.2f} requests/s: the engine is not serving"

        # Real vLLM output, both spellings, through the controller's own reader.
        live = PrometheusLiveMetrics(prometheus.url, timeout=2.0)
        pod0 = runner.pod_names()[0]
        _wait(lambda: pod0 in live.pod_values("vllm:num_requests_running", f"{NS}-underscore")
              and pod0 in live.pod_values("vllm:kv_cache_usage_perc", NS), 30,
              "the replica's metrics in Prometheus under vllm: and vllm_", explain)
        names = {s["__name__"] for s, _ in live.query('{__name__=~"vllm[:_]num_requests_running"}')}
        assert names == {"vllm:num_requests_running", "vllm_num_requests_running"}, names
        # The capacity probe's full batch must be gone from Prometheus before the controller starts, or
        # its first sync scales up on the probe (seen: the second replica asked 1.5 s into the load).
        _wait(lambda: live.pod_values("vllm:num_requests_running", NS).get(pod0) == 0
              and live.pod_values("vllm:num_requests_waiting", NS).get(pod0) == 0, 30,
              "the probe's requests gone from the metrics", explain)

        # Requests in flight per pod at half the batch: one replica's load up to ~0.6x its capacity.
        kube.create("prescaler.dev/v1alpha1", "predictiveautoscalers", _autoscaler(MAX_NUM_SEQS * 0.6))
        log = (tmp_path / "controller.log").open("wb")
        processes.append(subprocess.Popen(
            [str(Path(sys.executable).parent / "prescaler"), "controller", "run",
             "--kubeconfig", str(_kubeconfig(tmp_path / "kubeconfig", kube.url)),
             "--prometheus-url", prometheus.url, "--metrics-port", "0", "--tick", "0.5"],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))

        # The load's shape follows what happened, not a fixed clock: a cold start took 48-252 s here
        # depending on what else the two cores ran. Low, a 15 s ramp to 1.4x one replica's measured
        # capacity, that peak until the second replica has served and the Prometheus outage is over,
        # then low again for the scale-in.
        falling = threading.Event()
        fell_at: list[float] = []

        def rate(t: float) -> float:  # requests/s at t s after the load starts
            low, peak = 0.3 * capacity, 1.4 * capacity
            if falling.is_set():
                return 0.25 * capacity
            if t < 20:
                return low
            if t < 35:
                return low + (peak - low) * (t - 20) / 15
            return peak

        load = LoadGenerator(router.url, model=NAME, seed=1, shape=lambda _t: SHAPE)
        load_started = time.monotonic()
        load_thread = threading.Thread(target=load.run, args=(rate, MAX_LOAD_S), daemon=True)
        load_thread.start()

        def replicas() -> int:
            return int(kube.get("apps/v1", "deployments", NAME, NS)["spec"]["replicas"])

        # Scale-up from real metrics, and the second replica Ready.
        _wait(lambda: replicas() == 2, 90, "the controller asking for a second replica", explain)
        asked_at = time.monotonic() - load_started
        # Asked for by the load, not by what came before it: the low phase (0.3x capacity) holds
        # about half the per-pod target in flight, so it is the ramp (from 20 s) that crosses it.
        assert asked_at > 10, f"a second replica asked {asked_at:.1f} s into the low phase\n{explain()}"
        _wait(lambda: len(runner.ready_urls()) == 2, 300, "the second replica Ready", explain)
        cold_start_1 = runner.timeline.ready[-1][2]

        # leadTime: auto learns the measured cold start (the controller's sample also holds up to one
        # sync period of its own reaction, hence the 20 % the issue allows).
        def samples() -> list[float]:
            status = kube.get("prescaler.dev/v1alpha1", "predictiveautoscalers", NAME, NS).get("status") or {}
            return list(status.get("leadTimeSamples") or [])

        _wait(lambda: bool(samples()), 2 * SYNC_PERIOD_S + 10, "a leadTimeSamples entry", explain)
        learned = samples()[-1]
        assert abs(learned - cold_start_1) <= 0.2 * cold_start_1, (learned, cold_start_1)

        # Prometheus down for 60 s under load: no scale-down, and the condition says why.
        prometheus.stop()
        outage_end = time.monotonic() + 60
        seen_condition = None
        while time.monotonic() < outage_end:
            assert replicas() == 2, f"scaled to {replicas()} while Prometheus was down\n{explain()}"
            status = kube.get("prescaler.dev/v1alpha1", "predictiveautoscalers", NAME, NS).get("status") or {}
            for c in status.get("conditions") or []:
                if c["type"] == "ScalingActive" and c["status"] == "False":
                    seen_condition = c
            time.sleep(1.0)
        assert seen_condition is not None and seen_condition["reason"] == "FailedGetPodsMetric", explain()
        prometheus = start_prometheus(tmp_path / "prom-data", tmp_path, scrape_configs=_scrape_configs(targets),
                                      port=prom_port)

        # Load falls: back to one replica, its process terminated.
        falling.set()
        fell_at.append(time.monotonic())
        _wait(lambda: replicas() == 1 and bool(runner.timeline.stopped), DOWN_WINDOW_S + 6 * SYNC_PERIOD_S + 60,
              "the scale-in to one replica", explain)
        # Some low load on the one replica left (at least 10 s past the queue's 15 s), to check it serves.
        time.sleep(max(5.0, fell_at[0] + 25 - time.monotonic()))
        load.stop.set()
        load_thread.join(timeout=120)
        assert not load_thread.is_alive(), "the load generator did not finish"

        counts = load.accounted()
        answered = sum(router.answered.values())
        assert counts["missing"] == 0, counts
        # Every request the router answered is one the client saw answered, status for status; what
        # the client saw fail without an answer is only a client-side timeout.
        seen = {k: v for k, v in counts.items() if k.startswith("rejected_")}
        assert answered >= counts["completed"] + sum(seen.values()), (counts, dict(router.answered))
        # A request with no answer may only be one the client gave up on (CLIENT_TIMEOUT_S).
        assert set(load.errors()) <= {"TimeoutError"}, (load.errors(), counts)
        # Once the load has fallen (and the queue of the peak had 15 s to clear), the service serves:
        # while under-provisioned, clients giving up is what a reactive scale-up costs, not a fault.
        after = [o for o in load.outcomes if o.sent_at > fell_at[0] + 15]
        assert after and sum(o.status == 200 for o in after) >= 0.95 * len(after), load.accounted()
        assert not runner.errors, runner.errors
        _report(tmp_path, capacity, cold_start_0, cold_start_1, learned, asked_at, counts, load.outcomes)
    finally:
        for p in processes:
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        if runner is not None:
            runner.stop()
        if router is not None:
            router.stop()
        if prometheus is not None:
            prometheus.stop()
        kube.stop()


def _report(tmp_path: Path, capacity: float, cold_0: float, cold_1: float, learned: float, asked_at: float,
            counts: dict[str, int], outcomes: list[Outcome]) -> None:
    """What the run measured, printed for the log (pytest -s) and kept beside the run."""
    latencies = sorted(o.latency for o in outcomes if o.status == 200)
    p50 = latencies[len(latencies) // 2] if latencies else float("nan")
    p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan")
    summary = {"capacity_rps": round(capacity, 2), "cold_start_first_s": round(cold_0, 1),
               "cold_start_second_s": round(cold_1, 1), "learned_lead_time_s": round(learned, 1),
               "second_replica_asked_at_s": round(asked_at, 1), "requests": counts,
               "latency_p50_s": round(p50, 2), "latency_p99_s": round(p99, 2)}
    (tmp_path / "e2e-summary.json").write_text(json.dumps(summary, indent=2))
    print("e2e:", json.dumps(summary))
