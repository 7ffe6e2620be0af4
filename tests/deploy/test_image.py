"""The Dockerfile builds what the manifests run (no container daemon runs here, so the build itself
is `make image`'s, untested here; hadolint lints the Dockerfile in `make lint`)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.deploy.podrunner import dockerfile_entrypoint

ROOT = Path(__file__).resolve().parents[2]


def _deployments() -> list[dict]:
    out = []
    for path in sorted((ROOT / "configs").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Deployment" and doc["metadata"]["name"].startswith("prescaler-"):
                out.append(doc)
    return out


def test_the_manifests_run_the_image_make_image_builds() -> None:
    image = re.search(r"^IMAGE\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    deployments = _deployments()
    assert {d["metadata"]["name"] for d in deployments} >= {"prescaler-controller", "prescaler-forecaster"}
    for d in deployments:
        for c in d["spec"]["template"]["spec"]["containers"]:
            assert c["image"] == image, f"{d['metadata']['name']} runs {c['image']}, make image builds {image}"


def test_the_image_runs_as_the_user_the_pods_require() -> None:
    text = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\d+)(?::(\d+))?", text, re.M)
    assert users, "the runtime stage sets a numeric USER (runAsNonRoot cannot check a name)"
    uid = int(users[-1][0])
    for d in _deployments():
        security = d["spec"]["template"]["spec"].get("securityContext", {})
        assert security.get("runAsNonRoot") is True and security.get("runAsUser") == uid, d["metadata"]["name"]


def test_the_entrypoint_is_the_console_script_the_args_continue() -> None:
    assert dockerfile_entrypoint() == ["prescaler"]
    scripts = re.search(r"\[project\.scripts\]\s*\n(.*?)\n\n", (ROOT / "pyproject.toml").read_text(), re.S).group(1)
    assert re.search(r"^prescaler\s*=", scripts, re.M)
    for d in _deployments():
        args = d["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[:2] in (["controller", "run"], ["forecaster", "serve"]), args[:2]


def test_the_build_context_holds_what_the_wheel_needs() -> None:
    ignore = (ROOT / ".dockerignore").read_text().split()
    copied = re.findall(r"^COPY (?!--from)(.+?) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    sources = {s for line in copied for s in line.split()}
    for source in sources:
        assert f"!{source.rstrip('/')}/" in ignore or f"!{source}" in ignore, f"{source} is excluded from the context"
    # Package data the service reads at run time is inside a copied package.
    assert (ROOT / "forecaster" / "data").is_dir() and "forecaster" in sources


def test_the_example_vllm_exposes_the_metrics_its_autoscaler_reads() -> None:
    """vllm:kv_cache_usage_perc exists from vLLM 0.10 (vllm-project/vllm#18354); 0.6.3 only had
    vllm:gpu_cache_usage_perc, so the example's KV-cache metric was never found."""
    examples = ROOT / "configs" / "examples"
    (deployment,) = [d for d in yaml.safe_load_all((examples / "vllm-deployment.yaml").read_text())
                     if d and d["kind"] == "Deployment"]
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    major, minor = map(int, re.search(r":v(\d+)\.(\d+)", image).groups())
    autoscalers = [d for d in yaml.safe_load_all((examples / "predictiveautoscaler.yaml").read_text()) if d]
    read = {m["pods"]["metric"]["name"] for d in autoscalers for m in d["spec"]["metrics"] if m["type"] == "Pods"}
    if "vllm:kv_cache_usage_perc" in read:
        assert (major, minor) >= (0, 10), f"{image} predates vllm:kv_cache_usage_perc"
    assert not read & {"vllm:gpu_cache_usage_perc"}, "the name vLLM removed (vllm-project/vllm#29330)"
