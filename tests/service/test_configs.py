"""The manifests in configs/ validate: built-in kinds with kubernetes-validate --strict, KEDA's CRDs
(for which kubernetes-validate has no schema) against a small schema of the fields we use.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.service.conftest import ROOT

CONFIGS = ROOT / "configs"
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}

# KEDA 2.x keda.sh/v1alpha1, the fields these examples use (additionalProperties false, so a typo
# such as `pollingIntervall` fails like --strict would).
_METADATA = {"type": "object", "required": ["name", "namespace"],
             "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}}}
SCALED_OBJECT = {
    "type": "object", "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"}, "kind": {"const": "ScaledObject"},
        "metadata": _METADATA,
        "spec": {
            "type": "object", "additionalProperties": False, "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {"type": "object", "required": ["name"], "additionalProperties": False,
                                   "properties": {"name": {"type": "string"}, "kind": {"type": "string"},
                                                  "apiVersion": {"type": "string"}}},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "advanced": {"type": "object", "additionalProperties": False, "properties": {
                    "horizontalPodAutoscalerConfig": {"type": "object", "additionalProperties": False,
                                                      "properties": {"behavior": {"type": "object"}}}}},
                "triggers": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False, "required": ["type", "metadata"],
                    "properties": {
                        "type": {"enum": ["external", "external-push", "metrics-api"]},
                        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                        "authenticationRef": {"type": "object", "required": ["name"]},
                    }}},
            },
        },
    },
}
TRIGGER_AUTH = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"}, "kind": {"const": "TriggerAuthentication"},
        "metadata": _METADATA,
        "spec": {"type": "object", "properties": {"secretTargetRef": {"type": "array", "items": {
            "type": "object", "required": ["parameter", "name", "key"], "additionalProperties": False,
            "properties": {"parameter": {"type": "string"}, "name": {"type": "string"},
                           "key": {"type": "string"}}}}}},
    },
}


# This suite's manifests (other areas own the rest of configs/ and test it themselves).
MINE = ("apiservice", "hpa", "keda")


def _documents() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(p for d in MINE for p in (CONFIGS / d).rglob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc and doc.get("kind") != "Kustomization":  # kustomize's input, not an object
                found.append((f"{path.relative_to(CONFIGS)}#{i}", doc))
    return found


DOCUMENTS = _documents()


def test_the_expected_manifests_exist():
    kinds = {doc["kind"] for _, doc in DOCUMENTS}
    # The forecaster's Service and ServiceAccount are the base's (configs/forecaster/), so that the
    # APIService overlay adds only what aggregation needs.
    assert {"APIService", "ClusterRoleBinding", "RoleBinding", "ClusterRole",
            "HorizontalPodAutoscaler", "ScaledObject", "TriggerAuthentication"} <= kinds


@pytest.mark.parametrize(("name", "doc"), [d for d in DOCUMENTS if d[1]["kind"] not in KEDA_KINDS],
                         ids=[n for n, d in DOCUMENTS if d["kind"] not in KEDA_KINDS])
def test_builtin_kinds_validate_strictly(name, doc):
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize(("name", "doc"), [d for d in DOCUMENTS if d[1]["kind"] in KEDA_KINDS],
                         ids=[n for n, d in DOCUMENTS if d["kind"] in KEDA_KINDS])
def test_keda_kinds_match_their_structure(name, doc):
    schema = SCALED_OBJECT if doc["kind"] == "ScaledObject" else TRIGGER_AUTH
    jsonschema.validate(doc, schema)


def test_rbac_is_what_an_aggregated_api_server_needs():
    docs = [d for _, d in DOCUMENTS]
    refs = {(d["kind"], d["roleRef"]["name"], d["metadata"].get("namespace")) for d in docs if "roleRef" in d}
    assert ("ClusterRoleBinding", "system:auth-delegator", None) in refs
    assert ("RoleBinding", "extension-apiserver-authentication-reader", "kube-system") in refs
    (service,) = [d for d in docs if d["kind"] == "APIService"]
    assert service["metadata"]["name"] == "v1beta1.external.metrics.k8s.io"
    assert service["spec"]["group"] == "external.metrics.k8s.io"


def test_the_hpa_targets_the_desired_replicas_metric_with_behavior():
    (hpa,) = [d for _, d in DOCUMENTS if d["kind"] == "HorizontalPodAutoscaler"]
    external = [m["external"] for m in hpa["spec"]["metrics"] if m["type"] == "External"]
    assert external[0]["metric"]["name"] == "prescaler-desired-replicas"
    assert external[0]["target"] == {"type": "AverageValue", "averageValue": "1"}
    assert {"scaleUp", "scaleDown"} <= set(hpa["spec"]["behavior"])


def test_a_wrong_field_is_caught():
    (hpa,) = [d for _, d in DOCUMENTS if d["kind"] == "HorizontalPodAutoscaler"]
    broken = {**hpa, "spec": {**hpa["spec"], "minReplica": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)
    (so,) = [d for n, d in DOCUMENTS if d["kind"] == "ScaledObject" and "grpc" in n]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**so, "spec": {**so["spec"], "pollingIntervall": 5}}, SCALED_OBJECT)


def test_example_points_at_the_service_routes():
    (grpc_so,) = [d for n, d in DOCUMENTS if n.startswith("keda/scaledobject-grpc")]
    assert grpc_so["spec"]["triggers"][0]["metadata"]["metric"] == "prescaler-desired-replicas"
    api_so = [d for n, d in DOCUMENTS
              if n.startswith("keda/scaledobject-metrics-api") and d["kind"] == "ScaledObject"][0]
    meta = api_so["spec"]["triggers"][0]["metadata"]
    assert meta["valueLocation"] == "value" and "/v1/keda/m-small" in meta["url"]
    assert Path(CONFIGS / "README-external-metrics.md").read_text().count("v1beta1.external.metrics.k8s.io") >= 2
