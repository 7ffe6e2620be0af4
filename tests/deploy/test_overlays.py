"""Every overlay builds with `kubectl kustomize`, validates strictly, and its pods find what they mount.

What a pod names but the overlay does not hold is the user's to create, and only the Secrets in
USER_SECRETS may be (the README's "Deploying" section creates them; a test runs those commands).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import jsonschema
import kubernetes_validate
import pytest
import yaml

from controller.crd import build_crd

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("minimal", "keda", "apiservice", "cert-manager", "monitoring")
# Secrets the pods mount that no overlay creates, and who makes them: the README's commands, or
# cert-manager in the cert-manager overlay.
USER_SECRETS = {"prescaler-forecaster-tls", "prescaler-forecaster-token"}
KEDA_CLIENT_SECRET = "prescaler-keda-client-tls"  # the README's too; read by KEDA, not by a pod
CUSTOM_KINDS = {"cert-manager.io/v1": {"Issuer", "Certificate"},
                "keda.sh/v1alpha1": {"ScaledObject", "TriggerAuthentication"},
                "prescaler.dev/v1alpha1": {"PredictiveAutoscaler"},
                "monitoring.coreos.com/v1": {"PodMonitor", "ServiceMonitor", "PrometheusRule"}}

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed")


def render(overlay: str) -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", str(ROOT / "configs" / "overlays" / overlay)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, render(request.param)


def test_every_object_validates(rendered) -> None:
    overlay, docs = rendered
    crd_schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for doc in docs:
        group = doc["apiVersion"]
        if group in CUSTOM_KINDS:
            assert doc["kind"] in CUSTOM_KINDS[group], f"{overlay}: unexpected {group} {doc['kind']}"
            if doc["kind"] == "PredictiveAutoscaler":
                jsonschema.Draft4Validator(crd_schema).validate(doc)
            continue
        try:
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{overlay}: {doc['kind']} {doc['metadata']['name']}: {err.message}")


def test_the_overlays_add_what_they_say(rendered) -> None:
    overlay, docs = rendered
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    base = {("CustomResourceDefinition", "predictiveautoscalers.prescaler.dev"),
            ("Deployment", "prescaler-controller"), ("Deployment", "prescaler-forecaster"),
            ("Service", "prescaler-forecaster"), ("ConfigMap", "prescaler-forecaster-config"),
            ("PersistentVolumeClaim", "prescaler-models"), ("Namespace", "prescaler")}
    assert base <= kinds, base - kinds
    extra = {"minimal": set(), "keda": {("ScaledObject", "m-small")},
             "apiservice": {("APIService", "v1beta1.external.metrics.k8s.io")},
             "cert-manager": {("Certificate", "prescaler-forecaster"), ("Issuer", "prescaler-ca")},
             "monitoring": {("PodMonitor", "prescaler-controller"), ("ServiceMonitor", "prescaler-forecaster"),
                            ("PrometheusRule", "prescaler"), ("ConfigMap", "prescaler-grafana-dashboard")}}[overlay]
    assert extra <= kinds, extra - kinds
    if overlay == "cert-manager":
        (cert,) = [d for d in docs if d["kind"] == "Certificate" and d["metadata"]["name"] == "prescaler-forecaster"]
        assert cert["spec"]["secretName"] == "prescaler-forecaster-tls", "the Secret the pods mount"
        assert "prescaler-forecaster.prescaler.svc" in cert["spec"]["dnsNames"]


def _pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs if d["kind"] == "Deployment"]


def test_every_secret_and_configmap_a_pod_uses_exists(rendered) -> None:
    overlay, docs = rendered
    have = {(d["kind"], d["metadata"]["name"]) for d in docs}
    makes_tls = overlay == "cert-manager"
    for name, spec in _pod_specs(docs):
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in have, f"{name}: {volume}"
            if "secret" in volume:
                secret = volume["secret"]["secretName"]
                assert ("Secret", secret) in have or secret in USER_SECRETS, \
                    f"{name}: Secret {secret} comes from nowhere"
                if makes_tls and secret == "prescaler-forecaster-tls":
                    assert any(d["kind"] == "Certificate" and d["spec"]["secretName"] == secret for d in docs)
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert ("PersistentVolumeClaim", claim) in have, f"{name}: claim {claim}"
        assert spec.get("serviceAccountName") in {n for k, n in have if k == "ServiceAccount"}, name


def _mount_paths(spec: dict) -> list[PurePosixPath]:
    return [PurePosixPath(m["mountPath"]) for c in spec["containers"] for m in c.get("volumeMounts", [])]


def _inside(path: str, mounts: list[PurePosixPath]) -> bool:
    p = PurePosixPath(path)
    return any(p == m or m in p.parents for m in mounts)


def test_every_file_the_forecaster_config_names_is_mounted(rendered) -> None:
    _, docs = rendered
    (config_map,) = [d for d in docs
                     if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "prescaler-forecaster-config"]
    config = yaml.safe_load(config_map["data"]["forecaster.yaml"])
    (spec,) = [s for n, s in _pod_specs(docs) if n == "prescaler-forecaster"]
    mounts = _mount_paths(spec)
    args = spec["containers"][0]["args"]
    assert _inside(args[args.index("--config") + 1], mounts), "the config file itself"
    named = [config["registry_dir"], config["auth"]["bearer_token_file"], config["tls"]["cert_file"],
             config["tls"]["key_file"], config["tls"]["grpc_client_ca_file"]]
    for path in named:
        assert _inside(path, mounts), f"the forecaster config names {path}, which no volume mounts"
    # The token the forecaster checks is the token the controller sends: the same Secret.
    token_mount = next(m for c in spec["containers"] for m in c["volumeMounts"]
                       if _inside(config["auth"]["bearer_token_file"], [PurePosixPath(m["mountPath"])]))
    volume = next(v for v in spec["volumes"] if v["name"] == token_mount["name"])
    assert volume["secret"]["secretName"] == "prescaler-forecaster-token"


def test_every_file_a_controller_flag_names_is_mounted(rendered) -> None:
    _, docs = rendered
    (spec,) = [s for n, s in _pod_specs(docs) if n == "prescaler-controller"]
    mounts = _mount_paths(spec)
    flags = {}
    for arg in spec["containers"][0]["args"]:
        match = re.match(r"--([a-z-]+)=(.+)", arg)
        if match:
            flags[match.group(1)] = match.group(2)
    for flag in ("forecaster-ca", "forecaster-token-file"):
        assert flag in flags, f"the controller runs without --{flag}"
        assert _inside(flags[flag], mounts), f"--{flag}={flags[flag]} is not inside a mounted volume"
    assert flags["forecaster-url"].startswith("https://"), "TLS is on between controller and forecaster"


def _readme_commands() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Deploying", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", section, re.S)
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip().startswith("kubectl") and "secret" in line]


def test_the_readme_secret_commands_make_what_the_pods_mount(tmp_path) -> None:
    """Each `kubectl create secret` of the README, run with --dry-run=client, gives a valid Secret with
    the keys the pods read (tls.crt, tls.key, ca.crt; token)."""
    commands = _readme_commands()
    assert len(commands) >= 2, "the README creates the TLS and the token Secret"
    for name in ("ca.crt", "tls.crt", "tls.key", "keda-client.crt", "keda-client.key"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    made = {}
    for command in commands:
        argv = command.replace("$(openssl rand -hex 32)", "0123abcd").split()
        out = subprocess.run([*argv, "--dry-run=client", "-o", "yaml"], capture_output=True, text=True,
                             cwd=tmp_path, timeout=30)
        assert out.returncode == 0, f"{command}: {out.stderr}"
        secret = yaml.safe_load(out.stdout)
        kubernetes_validate.validate(secret, kubernetes_validate.latest_version(), strict=True)
        made[secret["metadata"]["name"]] = (secret["metadata"].get("namespace"), set(secret.get("data", {})))
    assert made["prescaler-forecaster-tls"] == ("prescaler", {"tls.crt", "tls.key", "ca.crt"})
    assert made["prescaler-forecaster-token"] == ("prescaler", {"token"})
    assert made[KEDA_CLIENT_SECRET] == ("llm", {"ca.crt", "tls.crt", "tls.key"})
    assert set(made) == USER_SECRETS | {KEDA_CLIENT_SECRET}


def test_keda_authenticates_with_the_client_certificate_the_forecaster_verifies() -> None:
    """KEDA's external scaler sends no token, so with the forecaster's token on, the ScaledObject must
    present a client certificate: through a TriggerAuthentication on the README's Secret, and the
    forecaster's gRPC port must verify it against a CA file its pod mounts."""
    docs = render("keda")
    (scaled,) = [d for d in docs if d["kind"] == "ScaledObject"]
    (auth,) = [d for d in docs if d["kind"] == "TriggerAuthentication"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert auth["metadata"]["namespace"] == scaled["metadata"]["namespace"], "a TriggerAuthentication is namespaced"
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs == {"caCert": (KEDA_CLIENT_SECRET, "ca.crt"), "tlsClientCert": (KEDA_CLIENT_SECRET, "tls.crt"),
                    "tlsClientKey": (KEDA_CLIENT_SECRET, "tls.key")}
    (config_map,) = [d for d in docs
                     if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "prescaler-forecaster-config"]
    config = yaml.safe_load(config_map["data"]["forecaster.yaml"])
    assert config["auth"]["bearer_token_file"] and config["tls"]["grpc_client_ca_file"]
    assert config["bind"]["grpc_port"] == int(trigger["metadata"]["scalerAddress"].rsplit(":", 1)[1])
