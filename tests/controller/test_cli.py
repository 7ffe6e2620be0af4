"""`prescaler controller run --once [--dry-run]` against the fake API server through a kubeconfig."""

from __future__ import annotations

import typer
import yaml
from typer.testing import CliRunner

from prescaler.controller_run import register

from .conftest import autoscaler, deployment, sync_pods

PA = ("prescaler.dev/v1alpha1", "predictiveautoscalers")


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # a group, as in controller/cli.py
        pass
    return app


def _kubeconfig(tmp_path, url: str):
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}],
    }))
    return path


def test_once_reconciles_and_dry_run_writes_nothing(kube, prom, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler(forecast=None, capacity=None))
    pods = sync_pods(kube)
    prom.pod_metrics["vllm:num_requests_running"] = {p: 16.0 for p in pods}
    config = _kubeconfig(tmp_path, kube.url)
    args = ["controller", "run", "--kubeconfig", str(config), "--prometheus-url", prom.url, "--once"]

    dry = CliRunner().invoke(_app(), args + ["--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "default/chat" in dry.output and "desired=4" in dry.output and "(dry run)" in dry.output
    assert kube.get("apps/v1", "deployments", "vllm")["spec"]["replicas"] == 2
    assert "status" not in kube.get(*PA, "chat")
    assert kube.list("events.k8s.io/v1", "events") == []

    real = CliRunner().invoke(_app(), args)
    assert real.exit_code == 0, real.output
    assert kube.get("apps/v1", "deployments", "vllm")["spec"]["replicas"] == 4
    assert kube.get(*PA, "chat")["status"]["desiredReplicas"] == 4


def test_once_exits_non_zero_when_a_sync_fails(kube, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler(forecast=None, capacity=None))
    kube.fail_next(r"/scale$", 5, status=503)
    result = CliRunner().invoke(_app(), ["controller", "run", "--kubeconfig", str(_kubeconfig(tmp_path, kube.url)),
                                         "--once"])
    assert result.exit_code == 1 and "1 failed" in result.output


def test_once_exits_non_zero_when_a_spec_is_invalid(kube, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler(leadTime="five minutes"))  # the schema admits it; the controller does not
    result = CliRunner().invoke(_app(), ["controller", "run", "--kubeconfig", str(_kubeconfig(tmp_path, kube.url)),
                                         "--once"])
    assert result.exit_code == 1, result.output
    assert "InvalidSpec" in result.output and "spec.leadTime" in result.output and "1 failed" in result.output


def test_once_exits_non_zero_when_the_api_server_is_unreachable(tmp_path, monkeypatch) -> None:
    import socket

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = CliRunner().invoke(_app(), ["controller", "run", "--kubeconfig", str(_kubeconfig(tmp_path, url)),
                                         "--once", "--request-timeout", "1"])
    assert result.exit_code == 1, result.output
    assert "cannot list PredictiveAutoscalers" in result.output and "0 autoscalers" not in result.output


def test_a_missing_kubeconfig_is_named(tmp_path) -> None:
    result = CliRunner().invoke(_app(), ["controller", "run", "--kubeconfig", str(tmp_path / "nope"), "--once"])
    # click's error panel wraps at 80 columns, and a pytest-xdist tmp path is long enough to split
    # "nope" across two lines: compare the panel's text with its borders and all whitespace taken out.
    text = "".join("".join(line.strip(" │").split()) for line in result.output.splitlines())
    assert result.exit_code != 0 and f"{tmp_path / 'nope'}doesnotexist" in text


def test_run_leads_and_releases_the_lease_on_sigterm(kube, tmp_path) -> None:
    """The long-running mode end to end: a subprocess takes the Lease, reconciles, and on SIGTERM
    clears holderIdentity so a standby can take over at once."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create(*PA, autoscaler(forecast=None, capacity=None))
    code = ("import typer, sys\nfrom prescaler.controller_run import register\napp = typer.Typer()\nregister(app)\n"
            "@app.callback()\ndef _r(): pass\napp()\n")
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "controller", "run", "--kubeconfig", str(_kubeconfig(tmp_path, kube.url)),
         "--leader-elect", "--lease-namespace", "default", "--identity", "ctl-a", "--metrics-port", "0",
         "--tick", "0.1"], cwd=Path(__file__).resolve().parents[2], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pa = kube.get(*PA, "chat")
            if pa.get("status", {}).get("lastSyncTime"):
                break
            time.sleep(0.05)  # waiting on a real subprocess: no clock to inject across processes
        assert kube.get("coordination.k8s.io/v1", "leases", "prescaler-controller")["spec"]["holderIdentity"] == "ctl-a"
        assert kube.get(*PA, "chat")["status"].get("lastSyncTime"), "the leader reconciled"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    lease = kube.get("coordination.k8s.io/v1", "leases", "prescaler-controller")["spec"]
    assert lease["holderIdentity"] == "" and lease["leaseDurationSeconds"] == 1, proc.stdout.read()[-2000:]
    assert proc.returncode == 0
