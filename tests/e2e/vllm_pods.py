"""Real vLLM replicas behind the fake API server: the kubelet and Deployment controller of the e2e.

No kubelet runs here, so this runner plays one Deployment: it watches `spec.replicas` (what the
controller patches through the scale subresource) and keeps that many `vllm serve` processes
(tests/vllm/replica.py), each a Pod object named as a Deployment names its pods
(`<name>-<template-hash>-<suffix>`) with the Deployment's template labels. A pod is `Pending` until its
process starts, `Running` with `Ready=False` until `/health` answers, then `Ready=True`; a process
that dies is restarted and its `restartCount` grows, and the pod is unready meanwhile (the controller
must see an unready pod, never zero load). Scale-down deletes the newest pods first (the ReplicaSet
controller's preference for the youngest) and terminates their processes. The Deployment's status
(`replicas`, `readyReplicas`, `availableReplicas`) is written through the status subresource, and
every process, ready or not, is a scrape target in a file_sd file that the real Prometheus watches.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakekube import FakeKube
from tests.vllm.replica import VllmReplica, log_tail

TEMPLATE_HASH = "7d9c5b6f4"  # a ReplicaSet hash: pod names carry hyphens, as every real Deployment's do
POLL_SECONDS = 0.5
# The kubelet's CrashLoopBackOff: 10 s after the first exit, doubling, at most 5 minutes.
BACKOFF_FIRST_S, BACKOFF_MAX_S = 10.0, 300.0


@dataclass
class PodRecord:
    name: str
    index: int
    replica: VllmReplica
    requested_at: float  # time.monotonic() when spec.replicas first asked for this pod
    ready_at: float | None = None
    restarts: int = 0
    ready: bool = False
    restart_at: float | None = None  # exited; restarted at this time.monotonic() (back-off)


@dataclass
class Timeline:
    """What happened, on time.monotonic(): the e2e's assertions read it."""

    replicas_requested: list[tuple[float, int]] = field(default_factory=list)  # spec.replicas changes
    ready: list[tuple[float, str, float]] = field(default_factory=list)  # (at, pod, seconds since its start)
    stopped: list[tuple[float, str]] = field(default_factory=list)
    restarted: list[tuple[float, str, int]] = field(default_factory=list)  # (at, pod, exit code)

    def cold_starts(self) -> list[float]:
        return [seconds for _, _, seconds in self.ready]


class VllmDeploymentRunner:
    """`start()` a thread that plays Deployment `namespace/name` with real vLLM processes; `stop()`."""

    def __init__(self, kube: FakeKube, namespace: str, name: str, *, model_dir: Path, workdir: Path,
                 targets_file: Path, cores: int | None = None, kv_cache_gib: int = 1):
        self.kube, self.namespace, self.name = kube, namespace, name
        self.model_dir, self.workdir, self.targets_file = model_dir, workdir, targets_file
        self.cores = cores or os.cpu_count() or 1
        self.kv_cache_gib = kv_cache_gib
        self.pods: list[PodRecord] = []
        self.timeline = Timeline()
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pods-{name}", daemon=True)
        self._next_suffix = 0
        self._last_want: int | None = None

    # ---- what the router and the test read --------------------------------------------------
    def ready_urls(self) -> list[str]:
        with self._lock:
            return [p.replica.url for p in self.pods if p.ready]

    def pod_names(self) -> list[str]:
        with self._lock:
            return [p.name for p in self.pods]

    def log_tails(self) -> str:
        with self._lock:
            return "\n".join(f"--- {p.name} ---\n{log_tail(p.replica.log_path, 1500)}" for p in self.pods)

    # ---- the loop ---------------------------------------------------------------------------
    def start(self) -> "VllmDeploymentRunner":
        self._write_targets()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        with self._lock:
            pods, self.pods = self.pods, []
        for pod in pods:
            pod.replica.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception as exc:  # noqa: BLE001 - a runner fault must fail the test, not hang it
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(POLL_SECONDS)

    def _step(self) -> None:
        deployment = self.kube.get("apps/v1", "deployments", self.name, self.namespace)
        want = int(deployment["spec"].get("replicas", 1))
        now = time.monotonic()
        if want != self._last_want:
            self.timeline.replicas_requested.append((now, want))
            self._last_want = want
        labels = dict(deployment["spec"]["template"]["metadata"].get("labels") or {})
        changed = False
        while len(self.pods) < want:
            self._add_pod(labels, now)
            changed = True
        while len(self.pods) > want:
            self._remove_pod(self.pods[-1])
            changed = True
        for pod in list(self.pods):
            changed |= self._check(pod)
        if changed:
            self._write_targets()
            self._write_status(deployment, want)

    def _add_pod(self, labels: dict[str, str], now: float) -> None:
        suffix = f"{self._next_suffix:05x}"
        self._next_suffix += 1
        name = f"{self.name}-{TEMPLATE_HASH}-{suffix}"
        index = len(self.pods)
        replica = VllmReplica(self.model_dir, self.workdir / f"{name}.log", core=index % self.cores,
                              kv_cache_gib=self.kv_cache_gib).start()
        pod = PodRecord(name, index, replica, requested_at=now)
        self.kube.create("v1", "pods", {
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "spec": {"containers": [{"name": "vllm", "image": "vllm-cpu:0.32.0"}]}})
        self._pod_status(pod)
        with self._lock:
            self.pods.append(pod)

    def _remove_pod(self, pod: PodRecord) -> None:
        with self._lock:
            self.pods.remove(pod)
        self.kube.delete("v1", "pods", pod.name, self.namespace)
        # Terminate in the background: vLLM's shutdown takes seconds, and the loop must keep
        # writing status for the others meanwhile.
        threading.Thread(target=pod.replica.stop, daemon=True).start()
        self.timeline.stopped.append((time.monotonic(), pod.name))

    def _check(self, pod: PodRecord) -> bool:
        now = time.monotonic()
        if pod.restart_at is not None:
            if now < pod.restart_at:
                return False
            pod.restart_at = None
            pod.replica.process = None
            pod.replica.start()
            return False
        code = pod.replica.exited()
        if code is not None:
            # The kubelet restarts a container that exits, after a back-off that doubles; until it is
            # healthy again the pod is unready (and still a pod: the controller must not read it as
            # a replica with no load).
            pod.restarts += 1
            pod.ready = False
            pod.restart_at = now + min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (pod.restarts - 1))
            self.timeline.restarted.append((now, pod.name, code))
            self._pod_status(pod)
            return True
        if not pod.ready and pod.replica.healthy(timeout=0.5):
            pod.ready = True
            pod.ready_at = time.monotonic()
            assert pod.replica.started_at is not None
            self.timeline.ready.append((pod.ready_at, pod.name, pod.ready_at - pod.replica.started_at))
            self._pod_status(pod)
            return True
        return False

    def _pod_status(self, pod: PodRecord) -> None:
        obj = self.kube.get("v1", "pods", pod.name, self.namespace)
        obj["status"] = {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True" if pod.ready else "False"}],
            "containerStatuses": [{"name": "vllm", "ready": pod.ready, "restartCount": pod.restarts,
                                   "image": "vllm-cpu:0.32.0", "imageID": "", "started": True}],
        }
        self.kube.update("v1", "pods", obj, subresource="status")

    def _write_status(self, deployment: dict[str, Any], want: int) -> None:
        ready = sum(p.ready for p in self.pods)
        fresh = self.kube.get("apps/v1", "deployments", self.name, self.namespace)
        fresh["status"] = {**(fresh.get("status") or {}), "replicas": len(self.pods), "readyReplicas": ready,
                           "availableReplicas": ready, "updatedReplicas": len(self.pods),
                           "observedGeneration": fresh["metadata"].get("generation", 1)}
        self.kube.update("apps/v1", "deployments", fresh, subresource="status")

    def _write_targets(self) -> None:
        """Prometheus file_sd: every process is a target, labelled as kubernetes_sd relabelling would."""
        with self._lock:
            groups = [{"targets": [f"127.0.0.1:{p.replica.port}"],
                       "labels": {"pod": p.name, "namespace": self.namespace}} for p in self.pods]
        tmp = self.targets_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(groups))
        os.replace(tmp, self.targets_file)  # atomic: Prometheus never reads half a file
