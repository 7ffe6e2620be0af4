"""Run the fake API server alone (for bench/reconcile_speed.py): `python -m tests.fakekube --seed 1000`.

Prints `URL <address>` once it listens, then serves until stdin closes or it is terminated.
--seed N creates N vLLM-like Deployments (2 ready pods each) and N PredictiveAutoscalers on them.
"""

from __future__ import annotations

import argparse
import copy
import sys

from .server import FakeKube


def seed(kube: FakeKube, n: int, pa_spec: dict, crd: dict, namespace: str = "bench") -> None:
    kube.create("apiextensions.k8s.io/v1", "customresourcedefinitions", crd)
    for i in range(n):
        name = f"vllm-{i:04d}"
        labels = {"app": name}
        kube.create("apps/v1", "deployments", {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "v", "image": "x"}]}}}})
        for p in range(2):
            pod = kube.create("v1", "pods", {
                "metadata": {"name": f"{name}-{p}", "namespace": namespace, "labels": labels},
                "spec": {"containers": [{"name": "v", "image": "x"}]}})
            pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
            kube.update("v1", "pods", pod, subresource="status")
        spec = copy.deepcopy(pa_spec)
        spec["scaleTargetRef"]["name"] = name
        kube.create("prescaler.dev/v1alpha1", "predictiveautoscalers", {
            "metadata": {"name": f"pa-{i:04d}", "namespace": namespace}, "spec": spec})


def main() -> None:
    import json

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seed-spec", default="", help="JSON: {'spec': PA spec, 'crd': CRD object}")
    args = parser.parse_args()
    kube = FakeKube(port=args.port).start()
    if args.seed:
        payload = json.loads(args.seed_spec)
        seed(kube, args.seed, payload["spec"], payload["crd"])
    print(f"URL {kube.url}", flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin (or kills us)
    finally:
        kube.stop()


if __name__ == "__main__":
    main()
