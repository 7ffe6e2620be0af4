"""The shipped manifests, applied as a user applies them, give a working prescaler (issue 10).

What a user does, in order, with only what no test machine has replaced:
1. `kubectl kustomize configs/overlays/minimal` (test_overlays.render);
2. the README's "Deploying" commands make the two Secrets (run as written, in a shell, with
   `--dry-run=client -o yaml`: the token is the README's own `$(openssl rand -hex 32)`), the TLS one
   from a CA and a serving certificate made here with openssl for the forecaster's Service name;
3. every rendered object, then configs/examples (the vLLM Deployment, only a scale target, and its
   PredictiveAutoscaler), is created over HTTP on the fake API server (tests/fakekube), the CRD first,
   so the PredictiveAutoscaler passes the CRD's schema and CEL rules as at `kubectl apply`;
4. a real Prometheus holds m-small's history (the shipped trace, as tests/promfixture.py backfills it);
5. the forecaster and controller Deployments run as local processes (tests/deploy/podrunner.py: the
   image's ENTRYPOINT, the manifests' args, Secret and ConfigMap volumes as files, cluster DNS names
   to loopback). The forecaster serves HTTPS with the certificate and requires the token; the
   controller calls it with the CA and the token where the manifests mount them.

Then, read from the fake API server: the PredictiveAutoscaler's first decision used the forecast
(ForecastHealthy=True, the predictive stage asked for the scale-up) and the controller scaled the
vLLM Deployment to what it decided. And the negative: the forecaster answers 401 to a wrong or
missing token, and once the controller's token no longer matches, the controller reports the
forecast missing (ForecastHealthy=False, ForecastMissing) and holds the replicas instead of acting
on a forecast it did not get.

The one deviation from the fixture the brief names: promfixture's `prometheus_server` holds the
trace at its recorded dates (January 2025), and the pods run on the wall clock (no clock crosses a
process boundary), so a 14-day history window ending now would find nothing there. This test
backfills the same shipped trace through the same helpers, shifted to end now.
"""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy.podrunner import LocalPod, Objects, dockerfile_entrypoint, pods_for
from tests.deploy.test_overlays import USER_SECRETS, _readme_commands, render
from tests.fakekube import FakeKube, ResourceType
from tests.promfixture import SHIPPED_TRACE, PromServer, _require_binaries, start_prometheus

ROOT = Path(__file__).resolve().parents[2]
PA = ("prescaler.dev/v1alpha1", "predictiveautoscalers")
FORECASTER, CONTROLLER = "prescaler-forecaster", "prescaler-controller"
# The names a client in the cluster may use for the forecaster's Service; the controller's flag uses
# the first. 127.0.0.1 is where podrunner's hosts table sends them here (the one name added).
SERVICE_NAMES = ("prescaler-forecaster.prescaler.svc", "prescaler-forecaster.prescaler.svc.cluster.local",
                 "prescaler-forecaster.prescaler", "prescaler-forecaster")
DEADLINE_S = 240.0  # a bound for a badly overloaded machine, not the expected time (under a minute)

# Kinds of the rendered manifests the fake API server does not serve by default: stored, not acted on
# (no kubelet, no RBAC enforcement), as a cluster stores them for the pods to reference.
EXTRA_KINDS = (
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount"),
    ResourceType("", "v1", "services", "Service", status_subresource=True),
    ResourceType("", "v1", "configmaps", "ConfigMap"),
    ResourceType("", "v1", "secrets", "Secret"),
    ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", status_subresource=True),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
)


# ---- certificates and Secrets ---------------------------------------------------------------------
def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr}"


def make_ca_and_serving_cert(where: Path, dns_names: tuple[str, ...], ips: tuple[str, ...]) -> None:
    """ca.crt (a CA) and tls.crt/tls.key (a server certificate for `dns_names` and `ips`, signed by
    it) in `where`: what the README asks the user to bring. P-256 keys: quick to make."""
    where.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=prescaler-e2e-ca", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=where)
    _openssl("req", *ec, "-keyout", "tls.key", "-out", "tls.csr", "-subj", f"/CN={dns_names[0]}", cwd=where)
    san = ",".join([f"DNS:{n}" for n in dns_names] + [f"IP:{ip}" for ip in ips])
    (where / "server.ext").write_text(
        f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    _openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "tls.crt", "-days", "2", "-extfile", "server.ext", cwd=where)


def readme_secrets(cert_dir: Path) -> list[dict[str, Any]]:
    """The Secrets the README's commands make for the pods (USER_SECRETS; the README's others
    belong to other overlays, e.g. KEDA's client certificate), run as written by a shell in
    `cert_dir` (so `$(openssl rand -hex 32)` makes the token), with `--dry-run=client -o yaml`."""
    secrets = []
    commands = [c for c in _readme_commands() if set(c.split()) & USER_SECRETS]
    for command in commands:
        done = subprocess.run(["bash", "-c", f"{command} --dry-run=client -o yaml"], cwd=cert_dir,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{command}: {done.stderr}"
        secrets.append(yaml.safe_load(done.stdout))
    assert {s["metadata"]["name"] for s in secrets} == USER_SECRETS
    return secrets


def secret_value(secret: dict[str, Any], key: str) -> bytes:
    return base64.b64decode(secret["data"][key])


# ---- the fake API server ----------------------------------------------------------------------------
def _path_of(kube: FakeKube, obj: dict[str, Any]) -> str:
    group, _, version = obj["apiVersion"].rpartition("/")
    rtype = next((t for t in kube.store.types.values()
                  if t.group == group and t.version == version and t.kind == obj["kind"]), None)
    assert rtype is not None, f"the fake API server serves no {obj['apiVersion']} {obj['kind']}"
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    namespace = obj["metadata"].get("namespace", "default")
    return f"{prefix}/namespaces/{namespace}/{rtype.plural}" if rtype.namespaced else f"{prefix}/{rtype.plural}"


def apply_all(kube: FakeKube, objects: list[dict[str, Any]]) -> None:
    """POST every object over HTTP, as `kubectl apply` creates what does not exist yet: CRDs first
    (their kinds are served once created), then the rest in the order given."""
    ordered = [o for o in objects if o["kind"] == "CustomResourceDefinition"] + \
        [o for o in objects if o["kind"] != "CustomResourceDefinition"]
    for obj in ordered:
        request = urllib.request.Request(f"{kube.url}{_path_of(kube, obj)}", data=json.dumps(obj).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 201, (obj["kind"], obj["metadata"]["name"], response.status)
        except urllib.error.HTTPError as err:
            pytest.fail(f"the API server refused {obj['kind']} {obj['metadata']['name']}: "
                        f"{err.code} {err.read().decode(errors='replace')}")


def kubeconfig(path: Path, url: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "sa", "user": {"token": "fake-service-account-token"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "sa"}}],
    }))
    return path


# ---- the one change a user makes here ---------------------------------------------------------------
# The shipped config lets m-small's backtest choose among holt_winters and gbm as well as the two
# seasonal-naive baselines: minutes of training on a loaded 2-core machine. A user who wants a fast
# first model does what this test does, a kustomize overlay on `minimal` that patches the forecaster's
# ConfigMap with `candidates` for the workload (a field of its `workloads:` entry, config.py). Nothing
# else changes (the test checks every other object is the shipped one); the backtest, the selection,
# the registry and the serving path are the same code whatever the candidates.
FAST_CANDIDATES = ["seasonal_naive_daily", "seasonal_naive_weekly"]


def fast_training_overlay(where: Path) -> list[dict[str, Any]]:
    """`minimal` with the forecaster's config patched to FAST_CANDIDATES, rendered by kubectl kustomize."""
    import os

    (config_map,) = [d for d in render("minimal") if d["kind"] == "ConfigMap"
                     and d["metadata"]["name"] == "prescaler-forecaster-config"]
    config = yaml.safe_load(config_map["data"]["forecaster.yaml"])
    (m_small,) = [w for w in config["workloads"] if w["name"] == "m-small"]
    m_small["candidates"] = FAST_CANDIDATES
    patch = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "prescaler-forecaster-config", "namespace": "prescaler"},
             "data": {"forecaster.yaml": yaml.safe_dump(config, sort_keys=False)}}
    where.mkdir(parents=True, exist_ok=True)
    (where / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        # kustomize takes a base only by a relative path.
        "resources": [os.path.relpath(ROOT / "configs" / "overlays" / "minimal", where)],
        "patches": [{"patch": yaml.safe_dump(patch)}],
    }))
    # render() joins its argument to configs/overlays; an absolute path stays itself.
    return render(str(where))


# ---- Prometheus ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recent_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromServer]:
    """Prometheus with m-small's shipped trace backfilled as vLLM counters (as promfixture's
    `prometheus_server` does), shifted by whole minutes to end a quarter hour from now, so the
    forecaster's window ending at the wall clock reads all 14 days (see the module docstring)."""
    _require_binaries()
    import pandas as pd

    from forecaster.prometheus.backfill import backfill
    from forecaster.sources import read_trace

    frame = read_trace(SHIPPED_TRACE)
    step = frame.index[1] - frame.index[0]
    wanted_end = pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=15)
    frame.index = frame.index + step * math.ceil((wanted_end - (frame.index[-1] + step)) / step)
    workdir = tmp_path_factory.mktemp("prometheus-now")
    backfill([("m-small", frame)], workdir / "data", prefix="vllm:")
    server = start_prometheus(workdir / "data", workdir)
    server.frames = {"m-small": frame}
    server.prefixes = {"m-small": "vllm:"}
    try:
        yield server
    finally:
        server.stop()


# ---- pods ----------------------------------------------------------------------------------------
@pytest.fixture
def manifest_ports() -> Iterator[None]:
    """Hold a machine-wide lock while the pods bind their manifests' fixed ports (6443, 9090, 8080):
    two runs of this test at once (pytest-xdist, or two checkouts on one machine) wait for each other
    instead of one calling the other's forecaster."""
    import fcntl
    import tempfile

    with open(Path(tempfile.gettempdir()) / "prescaler-deploy-e2e.lock", "w") as lock:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another run of the deploy e2e test held {lock.name} for {DEADLINE_S:.0f}s")
                time.sleep(0.5)  # waiting on another process: nothing to inject
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# ---- pods ------------------------------------------------------------------------------------------
def _port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
        return True


def container_ports(deployment: dict[str, Any]) -> dict[str, int]:
    """name -> containerPort of the Deployment's first container."""
    return {p.get("name", str(p["containerPort"])): int(p["containerPort"])
            for p in deployment["spec"]["template"]["spec"]["containers"][0].get("ports", [])}


def service_hosts(objects: Objects, service: str, namespace: str) -> dict[str, str]:
    """What kube-proxy does for a Service, as podrunner's hosts table: `name.ns.svc:port` -> the
    backing pod's targetPort on loopback (a named targetPort looked up in the pod's ports)."""
    svc = objects.find("Service", service, namespace)
    assert svc is not None, f"no Service {namespace}/{service}"
    selector = svc["spec"]["selector"]
    (backend,) = [d for d in objects.of_kind("Deployment")
                  if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
    ports = container_ports(backend)
    hosts = {}
    for port in svc["spec"]["ports"]:
        target = port.get("targetPort", port["port"])
        target = ports[target] if isinstance(target, str) else int(target)
        for name in SERVICE_NAMES if service == FORECASTER else (f"{service}.{namespace}.svc",):
            hosts[f"{name}:{port['port']}"] = f"127.0.0.1:{target}"
    return hosts


_PROBE_LINE = re.compile(r'"GET /(readyz|healthz) HTTP')


def log_tails(pods: list[LocalPod], logs: dict[str, Path], chars: int = 3000) -> str:
    parts = []
    for pod in pods:
        path = logs[pod.pod_name]
        code = pod.process.poll() if pod.process is not None else None
        lines = path.read_text(errors="replace").splitlines() if path.exists() else ["(no log)"]
        # The readiness polls' access lines say nothing a failure needs; the rest is kept.
        text = "\n".join(line for line in lines if not _PROBE_LINE.search(line))[-chars:]
        parts.append(f"--- {pod.pod_name} (exit code {code}) ---\n{text}")
    return "\n".join(parts)


def wait_for(what: str, check: Callable[[], Any], pods: list[LocalPod], logs: dict[str, Path],
             deadline: float, explain: Callable[[], str] = lambda: "") -> Any:
    """Poll `check` until it returns something truthy; fail with the pods' log tails past `deadline`
    or when a pod exited. Polling real processes: no clock to inject across a process boundary."""
    last: Any = None
    while time.monotonic() < deadline:
        for pod in pods:
            if pod.process is not None and pod.process.poll() is not None:
                pytest.fail(f"{pod.pod_name} exited while waiting for {what}\n{log_tails(pods, logs)}")
        last = check()
        if last:
            return last
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}; last seen: {last!r}\n{explain()}\n{log_tails(pods, logs)}")


def recommended_replicas(port: int) -> dict[str, float]:
    """stage -> prescaler_recommended_replicas of llm/m-small, from the controller's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {sample.labels["stage"]: sample.value
            for family in text_string_to_metric_families(text) if family.name == "prescaler_recommended_replicas"
            for sample in family.samples
            if sample.labels.get("namespace") == "llm" and sample.labels.get("name") == "m-small"}


def condition(pa: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in pa.get("status", {}).get("conditions", []) if c["type"] == type_), {})


# ---- the tests -------------------------------------------------------------------------------------
def test_podrunner_rewrites_each_path_once(tmp_path: Path) -> None:
    """A pod that mounts /tmp, run from a root under /tmp: a path rewritten into the root is not
    rewritten again, and only whole paths and names are rewritten."""
    pod = LocalPod({"metadata": {"name": "p"}, "spec": {"template": {"spec": {"containers": [{}]}}}},
                   Objects([]), root=Path("/tmp/r"), entrypoint=["x"], kubeconfig=tmp_path / "k",
                   hosts={"svc.ns.svc:443": "127.0.0.1:6443", "svc.ns.svc": "127.0.0.1"})
    pod.mounts = {"/tmp": Path("/tmp/r/pod/p/tmp"), "/etc/prescaler": Path("/tmp/r/pod/p/etc/prescaler")}
    assert pod.rewrite("--config /etc/prescaler/f.yaml --cache=/tmp/c") == \
        "--config /tmp/r/pod/p/etc/prescaler/f.yaml --cache=/tmp/r/pod/p/tmp/c"
    assert pod.rewrite("/var/tmp/x /tmpfs /etc/prescaler-old") == "/var/tmp/x /tmpfs /etc/prescaler-old"
    assert pod.rewrite("https://svc.ns.svc:443/v1 http://svc.ns.svc/ x.svc.ns.svc") == \
        "https://127.0.0.1:6443/v1 http://127.0.0.1/ x.svc.ns.svc"


# ---- the e2e test --------------------------------------------------------------------------------------
@pytest.mark.prometheus
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed")
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make the TLS Secret")
@pytest.mark.timeout(600)  # the lock may wait for another run first
def test_the_minimal_overlay_as_applied_scales_from_the_forecast(recent_prometheus: PromServer, tmp_path: Path,
                                                                manifest_ports: None) -> None:
    started = time.monotonic()
    deadline = started + DEADLINE_S
    shipped = render("minimal")
    rendered = fast_training_overlay(tmp_path / "overlay")
    config_map = ("ConfigMap", "prescaler-forecaster-config")
    assert [d for d in rendered if (d["kind"], d["metadata"]["name"]) != config_map] == \
        [d for d in shipped if (d["kind"], d["metadata"]["name"]) != config_map], "only the config differs"
    examples = [d for d in yaml.safe_load_all(subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "configs" / "examples")], capture_output=True, text=True,
        timeout=60, check=True).stdout) if d]
    controller_url = next(a.split("=", 1)[1] for a in next(
        d for d in rendered if d["kind"] == "Deployment" and d["metadata"]["name"] == CONTROLLER
    )["spec"]["template"]["spec"]["containers"][0]["args"] if a.startswith("--forecaster-url="))
    service_name = httpx.URL(controller_url).host
    assert service_name in SERVICE_NAMES, f"the controller calls {controller_url}, a name this test does not certify"

    cert_dir = tmp_path / "certs"
    make_ca_and_serving_cert(cert_dir, SERVICE_NAMES, ("127.0.0.1",))
    secrets = readme_secrets(cert_dir)
    token = secret_value(next(s for s in secrets if s["metadata"]["name"] == "prescaler-forecaster-token"),
                         "token").decode()
    assert len(token) == 64, "the README's token: 32 random bytes in hex"
    objects = Objects([*rendered, *secrets, *examples])

    forecaster_dep, controller_dep = (objects.find("Deployment", n, "prescaler") for n in (FORECASTER, CONTROLLER))
    assert forecaster_dep is not None and controller_dep is not None
    busy = [p for p in [*container_ports(forecaster_dep).values(), *container_ports(controller_dep).values()]
            if not _port_free(p)]
    assert not busy, f"the pods bind their manifests' ports, and {busy} are taken on this machine"

    with FakeKube() as kube:
        for rtype in EXTRA_KINDS:
            kube.store.register(rtype)
        apply_all(kube, objects.items)
        assert kube.get("apps/v1", "deployments", "m-small", "llm")["spec"]["replicas"] == 1

        hosts = {"prometheus-operated.monitoring.svc:9090": recent_prometheus.url.removeprefix("http://"),
                 **service_hosts(objects, FORECASTER, "prescaler")}
        config = kubeconfig(tmp_path / "kubeconfig", kube.url)
        forecaster, controller = pods_for(objects, [FORECASTER, CONTROLLER], root=tmp_path / "pods",
                                          entrypoint=dockerfile_entrypoint(), kubeconfig=config, hosts=hosts)
        logs = {p.pod_name: tmp_path / "logs" / f"{p.pod_name}.log" for p in (forecaster, controller)}
        running: list[LocalPod] = []
        # The test's own calls verify the certificate against the Service's DNS name (SNI and
        # hostname check on `service_name`), though they connect to loopback.
        client = httpx.Client(base_url=f"https://127.0.0.1:{container_ports(forecaster_dep)['https']}",
                              timeout=5.0, verify=ssl.create_default_context(cafile=str(cert_dir / "ca.crt")))
        try:
            running.append(forecaster.start(logs[forecaster.pod_name]))

            def get(path: str, **headers: str) -> httpx.Response | None:
                try:
                    return client.get(path, headers=headers, extensions={"sni_hostname": service_name})
                except httpx.TransportError:
                    return None

            def forecaster_ready() -> dict[str, Any] | None:
                # The manifest's readinessProbe: GET /readyz over HTTPS, no token (kubelet sends none).
                response = get("/readyz")
                if response is None or response.status_code != 200:
                    return None
                body = response.json()
                return body if "m-small" in (body.get("detail") or {}) else None

            def workloads() -> str:
                # What the forecaster says of its workloads (last_error of a failed retrain), with the token.
                response = get("/v1/workloads", Authorization=f"Bearer {token}")
                return f"GET /v1/workloads: {response.text[:3000] if response is not None else 'no answer'}"

            ready = wait_for("the forecaster's /readyz (m-small discovered, trained, forecast cached)",
                             forecaster_ready, running, logs, deadline, explain=workloads)
            trained_s = time.monotonic() - started
            assert ready["detail"]["m-small"]["forecast"], ready

            # The forecaster requires the token: missing or wrong is 401, the README's token is 200.
            path = "/v1/workloads/m-small/forecast?horizon=1800s&quantiles=0.9"
            missing, wrong, right = (get(path, **h) for h in (
                {}, {"Authorization": "Bearer " + "0" * 64}, {"Authorization": f"Bearer {token}"}))
            assert missing is not None and missing.status_code == 401, missing
            assert wrong is not None and wrong.status_code == 401, wrong
            assert right is not None and right.status_code == 200, right.text if right else right
            served = right.json()
            assert set(served["forecasts"]) >= {"requests", "output_tokens"}, served

            running.append(controller.start(logs[controller.pod_name]))

            def first_decision() -> dict[str, Any] | None:
                pa = kube.get(*PA, "m-small", "llm")
                return pa if pa.get("status", {}).get("lastSyncTime") and condition(pa, "ForecastHealthy") else None

            pa = wait_for("the controller's first sync of llm/m-small", first_decision, running, logs, deadline)
            status = pa["status"]
            tails = log_tails(running, logs)
            healthy = condition(pa, "ForecastHealthy")
            assert healthy["status"] == "True" and healthy["reason"] == "ForecastHealthy", (status, tails)
            assert condition(pa, "SpecValid")["status"] == "True", status
            assert condition(pa, "AbleToScale")["status"] == "True", status
            assert condition(pa, "OwnedByAnotherAutoscaler")["status"] == "False", status
            # No vLLM pod runs, so there is no live metric: the reactive stage has nothing (ScalingActive
            # False, hence Ready False with its reason), and only the forecast may scale up (decide.py).
            assert condition(pa, "ScalingActive")["status"] == "False", status
            assert condition(pa, "Ready")["reason"] == condition(pa, "ScalingActive")["reason"], status
            assert status["forecastAgeSeconds"] is not None and status["forecastAgeSeconds"] < 600, status
            # The controller's own account of the stages (its /metrics, on the manifest's metrics port):
            # the predictive stage recommended a scale-up, the reactive one had no metric to go on.
            stages = recommended_replicas(container_ports(controller_dep)["metrics"])
            assert "reactive" not in stages and stages.get("predictive", 0) > 1, stages
            # The example's behavior sets only scaleDown, so scale-up takes Kubernetes's defaults: from
            # 1 replica at most max(2 x 1, 1 + 4) = 5 a period (ScaleUpLimit when the forecast wants more;
            # m-small's trace, hundreds of requests/s against 4 per replica, wants more than maxReplicas).
            wanted = min(int(stages["predictive"]), pa["spec"]["maxReplicas"])
            target = kube.get("apps/v1", "deployments", "m-small", "llm")
            assert status["currentReplicas"] == 1, status
            assert status["desiredReplicas"] == min(wanted, 5) == stages["final"], (status, stages)
            assert status["lastReason"] == ("ScaleUpLimit" if wanted > 5 else "ScaleUpPredictive"), status
            assert target["spec"]["replicas"] == status["desiredReplicas"], "the controller scaled the target"
            assert status.get("lastScaleTime"), status
            print(f"first decision: {status['lastReason']} 1 -> {status['desiredReplicas']}, stages {stages}, "
                  f"Ready={condition(pa, 'Ready')['status']} {condition(pa, 'Ready')['reason']}")
            scaled_to = status["desiredReplicas"]
            events = [e for e in kube.list("events.k8s.io/v1", "events", "llm")
                      if e.get("regarding", {}).get("name") == "m-small"]
            assert any(e["reason"] == status["lastReason"] and "scaled Deployment/m-small from 1 to" in e["note"]
                       for e in events), events

            # The negative: the controller's copy of the token Secret no longer matches the forecaster's
            # (a rotation that reached one pod only). Its token file is read for every request.
            token_file = controller.mounts["/var/run/secrets/prescaler"] / "token"
            token_file.write_text("0" * 64)
            first_sync = status["lastSyncTime"]

            def next_decision() -> dict[str, Any] | None:
                pa = kube.get(*PA, "m-small", "llm")
                return pa if pa["status"]["lastSyncTime"] != first_sync else None

            pa = wait_for("the controller's next sync, with the wrong token", next_decision, running, logs, deadline)
            status = pa["status"]
            healthy = condition(pa, "ForecastHealthy")
            tails = log_tails(running, logs)
            assert healthy["status"] == "False" and healthy["reason"] == "ForecastMissing", (status, tails)
            # No forecast and no live metric: hold (never scale blind), at what the first decision set.
            replicas = kube.get("apps/v1", "deployments", "m-small", "llm")["spec"]["replicas"]
            assert status["desiredReplicas"] == status["currentReplicas"] == replicas == scaled_to, (status, replicas)
            controller_log = logs[controller.pod_name].read_text(errors="replace")
            assert "forecast for m-small: HTTP 401" in controller_log, \
                f"the controller's log names the forecaster's answer\n{tails}"
            assert any(e["reason"] == "ForecastMissing" for e in kube.list("events.k8s.io/v1", "events", "llm")), \
                "the fallback is an Event"
            print(f"forecaster ready after {trained_s:.1f}s; whole run {time.monotonic() - started:.1f}s")
        finally:
            client.close()  # first: uvicorn waits for open keep-alive connections before it exits
            for pod in reversed(running):
                pod.stop()
