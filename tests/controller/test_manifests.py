"""Every manifest we ship validates: built-in kinds with kubernetes-validate --strict (1.28 and the newest
it ships), custom resources against the generated CRD's openAPIV3Schema (and the pydantic spec)."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from controller.crd import CRD_PATH, build_crd, render_crd
from controller.policy.spec import PredictiveAutoscalerSpec

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
OURS = ["crd", "rbac", "controller", "forecaster", "examples"]
VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]


def _documents() -> list[tuple[str, int, dict]]:
    out = []
    for folder in OURS:
        for path in sorted((CONFIGS / folder).glob("*.yaml")):
            for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
                # Kustomizations and the service config (forecaster/forecaster.yaml) are not objects.
                if doc and "apiVersion" in doc and doc.get("kind") != "Kustomization":
                    out.append((str(path.relative_to(ROOT)), i, doc))
    return out


DOCS = _documents()
BUILTIN = [d for d in DOCS if d[2]["apiVersion"].split("/")[0] != "prescaler.dev"]
CUSTOM = [d for d in DOCS if d[2]["apiVersion"].split("/")[0] == "prescaler.dev"]


def test_the_manifests_are_there() -> None:
    kinds = {d[2]["kind"] for d in DOCS}
    assert {"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
            "RoleBinding", "Deployment", "Namespace", "PredictiveAutoscaler", "Service"} <= kinds
    assert CUSTOM, "an example PredictiveAutoscaler ships"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("path", "index", "doc"), BUILTIN, ids=[f"{p}#{i}" for p, i, _ in BUILTIN])
def test_builtin_kinds_validate_strictly(path: str, index: int, doc: dict, version: str) -> None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        pytest.fail(f"{path} document {index} ({doc['kind']}) on Kubernetes {version}: {err.message} "
                    f"at {'.'.join(map(str, err.path))}")


def _crd_schema() -> dict:
    return build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize(("path", "index", "doc"), CUSTOM, ids=[f"{p}#{i}" for p, i, _ in CUSTOM])
def test_examples_validate_against_the_crd_and_the_model(path: str, index: int, doc: dict) -> None:
    # OpenAPI 3.0 schemas follow draft 4 (boolean exclusiveMinimum), hence Draft4Validator.
    jsonschema.Draft4Validator(_crd_schema()).validate(doc)
    PredictiveAutoscalerSpec.model_validate(doc["spec"])


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        pytest.param(lambda s: s.update(maxReplicas="many"), "maxReplicas", id="max-not-integer"),
        pytest.param(lambda s: s.update(mode="Sometimes"), "mode", id="mode-enum"),
        pytest.param(lambda s: s.pop("scaleTargetRef"), "scaleTargetRef", id="target-required"),
        pytest.param(lambda s: s["forecast"].update(quantile=1.0), "quantile", id="quantile-below-1"),
        pytest.param(lambda s: s.update(leadTime="soon"), "leadTime", id="lead-time-pattern"),
        pytest.param(lambda s: s["behavior"]["scaleDown"].update(stabilizationWindowSeconds=3601),
                     "stabilizationWindowSeconds", id="hpa-window-max"),
        pytest.param(lambda s: s["metrics"][0]["pods"]["target"].update(averageValue="2 pods"), "averageValue",
                     id="quantity-pattern"),
    ],
)
def test_the_crd_schema_rejects_what_the_model_rejects(mutate, where) -> None:
    doc = next(d for _, _, d in CUSTOM)
    bad = yaml.safe_load(yaml.safe_dump(doc))
    mutate(bad["spec"])
    errors = list(jsonschema.Draft4Validator(_crd_schema()).iter_errors(bad))
    assert errors, f"the CRD schema accepted a bad {where}"
    assert any(where in "/".join(map(str, e.absolute_path)) + e.message for e in errors), [e.message for e in errors]
    with pytest.raises(ValueError):
        PredictiveAutoscalerSpec.model_validate(bad["spec"])


def test_committed_crd_equals_the_generated_one() -> None:
    assert CRD_PATH.read_text() == render_crd(), "configs/crd is stale: run `python -m prescaler.crd`"


def test_regenerating_the_crd_gives_a_file_everyone_can_read(tmp_path) -> None:
    import os
    import stat

    from prescaler.crd import main

    target = tmp_path / "crd.yaml"
    old_umask = os.umask(0o022)
    try:
        assert main([str(target)]) == 0
    finally:
        os.umask(old_umask)
    assert target.read_text() == render_crd()
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # what open() gives, not mkstemp's 0600
    assert [p.name for p in tmp_path.iterdir()] == ["crd.yaml"]  # no temp file left


def test_crd_shape() -> None:
    crd = build_crd()
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "predictiveautoscalers.prescaler.dev"
    assert spec["scope"] == "Namespaced" and spec["names"]["shortNames"] == ["pas"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Target", "Min", "Max", "Current", "Desired", "Mode", "Ready", "Forecast", "Age"]
    behavior = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["behavior"]
    rules = behavior["properties"]["scaleUp"]["properties"]
    assert set(rules) == {"stabilizationWindowSeconds", "selectPolicy", "policies", "tolerance"}
    assert rules["stabilizationWindowSeconds"]["maximum"] == 3600
    assert rules["selectPolicy"]["enum"] == ["Max", "Min", "Disabled"]
    policy = rules["policies"]["items"]["properties"]
    assert policy["type"]["enum"] == ["Pods", "Percent"] and policy["periodSeconds"]["maximum"] == 1800


def _structural_problems(node, where="") -> list[str]:
    """The rules the API server enforces on CRD schemas that jsonschema does not: no $ref, types present."""
    problems = []
    if isinstance(node, dict):
        if "$ref" in node or "$defs" in node:
            problems.append(f"{where}: $ref")
        if "properties" in node and node.get("additionalProperties") not in (None,) and \
                node.get("additionalProperties") is not True and "additionalProperties" in node:
            problems.append(f"{where}: properties with additionalProperties")
        if "properties" in node and "type" not in node:
            problems.append(f"{where}: object without type")
        for key, value in node.items():
            problems += _structural_problems(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            problems += _structural_problems(value, f"{where}[{i}]")
    return problems


def test_crd_schema_is_structural() -> None:
    assert _structural_problems(_crd_schema()) == []


def test_kustomization_lists_existing_files() -> None:
    kustomizations = sorted(CONFIGS.rglob("kustomization.yaml"))
    assert len(kustomizations) >= 9, "the base's parts, the overlays and the examples"
    for kustomization in kustomizations:
        data = yaml.safe_load(kustomization.read_text())
        for resource in data.get("resources", []):
            target = kustomization.parent / resource
            assert target.is_file() or (target / "kustomization.yaml").is_file(), \
                f"{kustomization}: {resource} is missing"
        for generator in data.get("configMapGenerator", []):
            for file in generator["files"]:
                assert (kustomization.parent / file).is_file(), f"{kustomization}: {file} is missing"


def test_every_status_timestamp_is_a_date_time() -> None:
    """kubectl shows them as times and the API server refuses a write that is not RFC 3339."""
    def strings(node: dict, path: str = "status"):
        for name, sub in (node.get("properties") or {}).items():
            yield f"{path}.{name}", name, sub
            yield from strings(sub, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            yield from strings(node["items"], f"{path}[]")

    status = _crd_schema()["properties"]["status"]
    stamps = {path: sub.get("format") for path, name, sub in strings(status)
              if name.endswith("Time") or name == "since"}
    assert stamps == {"status.lastScaleTime": "date-time", "status.lastSyncTime": "date-time",
                      "status.pendingScaleUp.since": "date-time",
                      "status.conditions[].lastTransitionTime": "date-time"}


def test_the_crd_carries_cel_rules_for_the_cross_field_checks() -> None:
    spec = _crd_schema()["properties"]["spec"]
    rules = " ".join(r["rule"] for r in spec["x-kubernetes-validations"])
    assert "self.minReplicas <= self.maxReplicas" in rules and "duration(self.forecast.horizon)" in rules
    quantile = spec["properties"]["forecast"]["properties"]["quantile"]
    assert (quantile["minimum"], quantile["exclusiveMinimum"], quantile["maximum"], quantile["exclusiveMaximum"]) \
        == (0, True, 1, True), "quantile in (0, 1) is the schema's, no rule needed"
    for entry in spec["x-kubernetes-validations"]:
        assert entry["message"] and "\n" not in entry["message"]
