"""Reconcile 1,000 PredictiveAutoscalers in one cycle against the fake API server; target <= 5 s of CPU.

The fake API server runs in a subprocess so that its CPU is not counted; Prometheus and the
forecaster are in-process fakes with the same interface as the real clients (no network waits).
What is measured is the controller process's CPU time (time.process_time) for one Controller.step:
listing the resources, and per resource: parse and validate the spec, read /scale, list the pods,
query the (fake) live metrics and forecast, decide, patch /scale where the decision differs, write the
status, emit Events. Half the workloads are over their target and get scaled (patch + Event).

    .venv/bin/python -m bench.reconcile_speed [--n 1000]
Writes bench/results/reconcile_speed.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from forecaster.atomic import atomic_write_text  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET_CPU_SECONDS = 5.0

SPEC = {
    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
    "minReplicas": 1, "maxReplicas": 20,
    "metrics": [{"type": "Pods", "pods": {"metric": {"name": "vllm:num_requests_running"},
                                          "target": {"type": "AverageValue", "averageValue": "8"}}}],
    "forecast": {"signals": [{"name": "requests"}], "quantile": 0.9, "horizon": "30m"},
    "capacity": {"perReplica": {"requestsPerSecond": 2}, "targetUtilization": 0.8},
    "leadTime": "5m",
}


class InProcessMetrics:
    """Same methods as controller.live_metrics.PrometheusLiveMetrics, answered from memory."""

    values: dict[str, float] = {}

    def pod_values(self, metric_name, namespace, selector=None):
        return self.values

    def external_value(self, metric_name, namespace, selector=None):
        return None

    def rate(self, promql):
        return 2.0


class InProcessForecasts:
    def __init__(self, forecast):
        self.forecast = forecast

    def get(self, workload, *, horizon_seconds, quantiles, step_seconds=None):
        return self.forecast


def _forecast(now: datetime):
    from forecaster.contract import Forecast, ForecastPoint, WorkloadForecast

    points = [ForecastPoint(timestamp=now + timedelta(minutes=i), mean=2.5, quantiles={"0.9": 3.0})
              for i in range(60)]
    f = Forecast(workload="w", signal="requests", model="bench", generated_at=now, step_seconds=60, points=points)
    return WorkloadForecast(workload="w", forecasts={"requests": f})


def run(n: int) -> dict:
    from kubernetes import client as k8s

    from controller.crd import build_crd
    from controller.kube import KubeClient
    from controller.loop import Controller
    from controller.reconcile import Clients, Reconciler
    from controller.server import ControllerMetrics

    payload = json.dumps({"spec": SPEC, "crd": build_crd()})
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakekube", "--seed", str(n), "--seed-spec", payload],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("URL "):
            raise RuntimeError(f"fake API server did not start: {line!r}")
        configuration = k8s.Configuration()
        configuration.host = line.split()[1]
        configuration.retries = False
        kube = KubeClient(k8s.ApiClient(configuration), timeout=30)
        now = datetime.now(timezone.utc).replace(microsecond=0)
        live = InProcessMetrics()
        # Even-numbered workloads run at twice their target (scale up), odd ones at it; the forecast asks for 2.
        live.values = {f"vllm-{i:04d}-{p}": (16.0 if i % 2 == 0 else 8.0) for i in range(n) for p in range(2)}
        reconciler = Reconciler(Clients(kube=kube, metrics=live, forecasts=InProcessForecasts(_forecast(now))),
                                metrics=ControllerMetrics())
        controller = Controller(reconciler, kube, lambda: now)

        cpu0, wall0 = time.process_time(), time.perf_counter()
        outcomes = controller.step(force=True)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    errors = [o for o in outcomes if o.error]
    scaled = sum(o.scaled for o in outcomes)
    return {
        "autoscalers": n, "reconciled": len(outcomes), "scaled": scaled, "errors": len(errors),
        "first_error": errors[0].error if errors else None,
        "cpu_seconds": round(cpu, 3), "wall_seconds": round(wall, 3),
        "cpu_ms_per_autoscaler": round(1000 * cpu / max(1, len(outcomes)), 3),
        "target_cpu_seconds": TARGET_CPU_SECONDS, "meets_target": cpu <= TARGET_CPU_SECONDS and not errors,
        "python": sys.version.split()[0], "cpus": os.cpu_count(),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }




def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args(argv)
    result = run(args.n)
    atomic_write_text(RESULTS / "reconcile_speed.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(RESULTS / "reconcile_speed.md", (
        "# Reconcile speed\n\n"
        "One cycle over N PredictiveAutoscalers against the fake API server (in a subprocess, its CPU not\n"
        "counted); live metrics and forecasts in-process. CPU is the controller process's time.\n\n"
        "| autoscalers | scaled | errors | CPU s | wall s | CPU ms / autoscaler | target CPU s | meets |\n"
        "|---:|---:|---:|---:|---:|---:|---:|:--:|\n"
        f"| {result['autoscalers']} | {result['scaled']} | {result['errors']} | {result['cpu_seconds']} | "
        f"{result['wall_seconds']} | {result['cpu_ms_per_autoscaler']} | {TARGET_CPU_SECONDS} | "
        f"{'yes' if result['meets_target'] else 'no'} |\n"))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
