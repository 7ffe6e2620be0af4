"""The PredictiveAutoscaler CustomResourceDefinition, generated from the pydantic models.

The spec schema comes from controller.policy.spec.PredictiveAutoscalerSpec and the status schema
from controller.resource.PredictiveAutoscalerStatus, translated from JSON Schema (what pydantic
writes) to the structural OpenAPI v3 subset a CRD accepts:
- `$ref`s are inlined (a CRD schema has no definitions);
- `anyOf: [X, {type: null}]` (an optional field) becomes X: absence is how a CRD says optional;
- `exclusiveMinimum: n` (JSON Schema 2020) becomes `minimum: n, exclusiveMinimum: true` (OpenAPI 3.0);
- `additionalProperties: false` is dropped (the API server prunes unknown fields instead, and a
  structural schema may not combine it with `properties`); a free-form object becomes
  `x-kubernetes-preserve-unknown-fields: true`;
- titles go; descriptions and non-null defaults stay (the API server applies the defaults);
- everything else passes through as the models declare it: the CEL rules (`x-kubernetes-validations`,
  in controller.policy.spec next to the validators they mirror), `maxItems`/`maxLength` (which bound
  what those rules cost the API server) and `format: date-time` on the status's timestamps.
The CEL rules check what a rule can check exactly (min <= max, a forecast needs capacity, horizon >=
leadTime + interval when all three are whole h/m/s, each metric's source against its type); the
model checks everything (`SpecValid`), so a spec the rules cannot judge (a horizon in days) is still
refused, by the controller.
The committed configs/crd/predictiveautoscalers.yaml must equal `render_crd()`: a test checks it, and
`python -m prescaler.crd` rewrites it (writing files is the composition root's; this module renders).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from .resource import API_GROUP, KIND, PLURAL, PredictiveAutoscalerStatus

CRD_PATH = Path(__file__).resolve().parents[1] / "configs" / "crd" / "predictiveautoscalers.yaml"
_DROP = {"title", "$defs", "discriminator"}


def to_openapi(node: Any, defs: dict[str, Any]) -> Any:
    """One JSON Schema node (pydantic's) -> the structural OpenAPI v3 a CRD takes."""
    if isinstance(node, list):
        return [to_openapi(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[-1]])
        node = {**target, **node}
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o != {"type": "null"}]
        if len(options) < len(node["anyOf"]):
            node.pop("anyOf")
            if len(options) == 1:
                inner = options[0]
                if "$ref" in inner:
                    inner = copy.deepcopy(defs[inner["$ref"].rsplit("/", 1)[-1]])
                node = {**inner, **{k: v for k, v in node.items() if k in ("description", "default")}}
            else:
                node["anyOf"] = options
            if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
                return to_openapi(node, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "default" and value is None:
            continue
        if key == "additionalProperties":
            if value is False:
                continue
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
                continue
            out[key] = to_openapi(value, defs)
        elif key == "properties":
            out[key] = {name: to_openapi(schema, defs) for name, schema in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = to_openapi(value, defs)
        elif key == "exclusiveMinimum" and not isinstance(value, bool):
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum" and not isinstance(value, bool):
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "const":
            out["enum"] = [value]
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _schema(model: Any) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True)
    return to_openapi(raw, raw.get("$defs", {}))


def status_schema() -> dict[str, Any]:
    schema = _schema(PredictiveAutoscalerStatus)
    conditions = schema["properties"]["conditions"]
    # metav1.Condition lists are maps keyed by type (what kubectl and server-side apply expect).
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema


def build_crd() -> dict[str, Any]:
    from controller.policy.spec import PredictiveAutoscalerSpec

    spec = _schema(PredictiveAutoscalerSpec)
    spec.pop("description", None)
    columns = [
        {"name": "Target", "type": "string", "jsonPath": ".spec.scaleTargetRef.name"},
        {"name": "Min", "type": "integer", "jsonPath": ".spec.minReplicas"},
        {"name": "Max", "type": "integer", "jsonPath": ".spec.maxReplicas"},
        {"name": "Current", "type": "integer", "jsonPath": ".status.currentReplicas"},
        {"name": "Desired", "type": "integer", "jsonPath": ".status.desiredReplicas"},
        {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
        {"name": "Ready", "type": "string", "description": "Ready condition: scaled as the spec asks",
         "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Forecast", "type": "string", "description": "ForecastHealthy condition",
         "jsonPath": '.status.conditions[?(@.type=="ForecastHealthy")].status'},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{API_GROUP}",
                     "annotations": {"prescaler.dev/generated-by": "python -m prescaler.crd"}},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "predictiveautoscaler", "kind": KIND,
                      "listKind": f"{KIND}List", "shortNames": ["pas"], "categories": ["autoscaling"]},
            "versions": [{
                "name": "v1alpha1", "served": True, "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "Scales a workload one cold start ahead of its forecast load (prescaler).",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec,
                        "status": status_schema(),
                    },
                }},
            }],
        },
    }


def render_crd() -> str:
    header = "# Generated by `python -m prescaler.crd` from the pydantic models; do not edit by hand.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=120, allow_unicode=True)
