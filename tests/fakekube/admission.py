"""What kube-apiserver does to a custom resource between decoding a write and storing it.

Defaulting from the CRD's schema, then the schema's validation, then its CEL rules (skipped, as
there, after an error of the wrong type or an unsupported enum value), and a 422 `Invalid` Status
listing every error, with `details.causes` (reason, message, field) as the official client and
kubectl read them. On an update, an error in a value unchanged from the old object is forgiven
(ratcheting), so an object stored before a rule existed keeps taking status writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .cel import RuleCompileError, RuleNode, compile_rules, evaluate
from .errors import ApiError
from .schema import BLOCKING, INVALID, MISSING, FieldError, apply_defaults, validate

_NOT_CHECKED = ("some validation rules were not checked because the object was invalid; correct the existing "
                "errors to complete validation")


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    """The 422 kube-apiserver answers: `Kind.group "name" is invalid: <error>` or `...: [<e1>, <e2>]`."""
    messages = [e.message() for e in errors]
    listed = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    qualified = f"{kind}.{group}" if group else kind
    causes = [{"reason": e.type, "message": e.body(), "field": e.field} for e in errors]
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {listed}',
                    details={"name": name, "group": group, "kind": kind, "causes": causes})


@dataclass(frozen=True)
class VersionSchema:
    """One served version of a CRD: its openAPIV3Schema and the compiled CEL rules in it."""

    group: str
    kind: str
    schema: dict[str, Any]
    rules: RuleNode | None

    def defaulted(self, obj: dict[str, Any]) -> dict[str, Any]:
        return apply_defaults(obj, self.schema)

    def admit(self, obj: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
        """The object as it would be stored (defaulted), or ApiError 422 naming every invalid field."""
        new = self.defaulted(obj)
        old_view = self.defaulted(old) if old is not None else MISSING
        errors = validate(new, self.schema, "", old_view, has_old=old is not None)
        if any(e.type in BLOCKING for e in errors):
            errors.append(FieldError(INVALID, "<nil>", "null", _NOT_CHECKED))
        else:
            errors += evaluate(self.rules, new, "", old_view)
        if errors:
            name = str((new.get("metadata") or {}).get("name", ""))
            raise invalid(self.kind, self.group, name, errors)
        return new


def compile_crd(crd: dict[str, Any]) -> dict[str, VersionSchema]:
    """Each served version's schema, by version name; ApiError 422 for rules the server would refuse."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out: dict[str, VersionSchema] = {}
    errors: list[FieldError] = []
    for i, version in enumerate(spec.get("versions") or []):
        schema = ((version.get("schema") or {}).get("openAPIV3Schema"))
        if not isinstance(schema, dict):
            continue
        try:
            rules = compile_rules(schema, f"spec.versions[{i}].schema.openAPIV3Schema")
        except RuleCompileError as err:
            errors += err.errors
            continue
        out[version["name"]] = VersionSchema(spec.get("group", ""), names.get("kind", ""), schema, rules)
    if errors:
        name = str((crd.get("metadata") or {}).get("name", ""))
        raise invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, errors)
    return out
