"""What the API server does with a CRD's structural schema on a write: defaulting, then validation.

Covers the OpenAPI subset our CRDs use (type, enum, required, minimum/maximum with exclusive*,
min/maxLength, pattern, min/maxItems, `format: date-time`, int-or-string, preserve-unknown-fields,
map-type lists), with the error texts and types kube-apiserver gives (`spec.forecast.quantile:
Invalid value: 1.5: spec.forecast.quantile in body should be less than 1`), so a test can match
what kubectl would print. Unknown fields are kept, not pruned: the fake stores what it is sent.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import re2

# field.ErrorType names as a Status's details.causes[].reason carries them.
INVALID, TYPE_INVALID, REQUIRED, NOT_SUPPORTED = ("FieldValueInvalid", "FieldValueTypeInvalid",
                                                  "FieldValueRequired", "FieldValueNotSupported")
FORBIDDEN, DUPLICATE, TOO_LONG, TOO_MANY = ("FieldValueForbidden", "FieldValueDuplicate", "FieldValueTooLong",
                                            "FieldValueTooMany")
# Errors after which the API server does not run the CEL rules (apiextensions hasBlockingErr): a rule
# would read a value of the wrong type.
BLOCKING = frozenset({TYPE_INVALID, NOT_SUPPORTED})
# Errors that CRD validation ratcheting (Kubernetes 1.30+) does not forgive on an unchanged value.
NOT_RATCHETED = frozenset({REQUIRED, TYPE_INVALID, DUPLICATE})


@dataclass(frozen=True)
class FieldError:
    """One k8s.io/apimachinery field.Error: its type, the field's path, the bad value, a detail."""

    type: str
    field: str
    value: Any = None
    detail: str = ""
    rule: str | None = None  # the CEL rule that failed (not in the answer: for tests and debugging)

    def body(self) -> str:
        """field.Error.ErrorBody(): what a cause's `message` holds."""
        value = _show(self.value)
        if self.type in (INVALID, TYPE_INVALID):
            text = f"Invalid value: {value}"
        elif self.type == REQUIRED:
            text = "Required value"
        elif self.type == FORBIDDEN:
            text = "Forbidden"
        elif self.type == NOT_SUPPORTED:
            text = f"Unsupported value: {value}"
        elif self.type == DUPLICATE:
            text = f"Duplicate value: {value}"
        elif self.type == TOO_LONG:
            text = "Too long"
        else:
            text = f"Too many: {value}"
        return f"{text}: {self.detail}" if self.detail else text

    def message(self) -> str:
        return f"{self.field}: {self.body()}" if self.field else self.body()


def _show(value: Any) -> str:
    """A value as Go's %#v shows it in a field.Error: strings quoted, numbers bare, objects by type name."""
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, ensure_ascii=False)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def join(path: str, child: str | int) -> str:
    """`spec` + `metrics` -> `spec.metrics`; `spec.metrics` + 0 -> `spec.metrics[0]`."""
    if isinstance(child, int):
        return f"{path}[{child}]"
    return f"{path}.{child}" if path else child


# ---- defaulting ------------------------------------------------------------------------------


def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """A copy of `value` with every absent property that has a `default` filled in, at every depth
    (structural defaulting: a default applies where the enclosing object exists). A null where the
    schema is not nullable is dropped first, and then defaulted, as the API server does."""
    value = copy.deepcopy(value)
    _default(value, schema)
    return value


def _default(value: Any, schema: dict[str, Any]) -> None:
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name, sub in properties.items():
            if name in value and value[name] is None and not sub.get("nullable"):
                del value[name]
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                _default(value[name], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, item in value.items():
                if name not in properties:
                    _default(item, extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default(item, schema["items"])


# ---- validation ------------------------------------------------------------------------------

_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?")


def is_date_time(text: str) -> bool:
    """go-openapi strfmt's date-time: RFC 3339 (the zone may be omitted, as strfmt allows)."""
    if not _DATE_TIME.fullmatch(text):
        return False
    try:
        datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00").replace("t", "T"))
    except ValueError:
        return False
    return True


def _type_ok(value: Any, type_: str) -> bool:
    if type_ == "object":
        return isinstance(value, dict)
    if type_ == "array":
        return isinstance(value, list)
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "boolean":
        return isinstance(value, bool)
    if type_ == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer()
    if type_ == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number" if isinstance(value, float) and not value.is_integer() else "integer"
    names: dict[type, str] = {dict: "object", list: "array", str: "string"}
    return names.get(type(value), type(value).__name__)


def validate(value: Any, schema: dict[str, Any], path: str = "", old: Any = None, *,
             has_old: bool = False) -> list[FieldError]:
    """Every error of `value` against the structural `schema`, in document order.

    With the old object of an update (`has_old`), an error in a value equal to the old one at the
    same place is forgiven (CRD validation ratcheting, on by default since Kubernetes 1.30), except
    the kinds NOT_RATCHETED: an object stored before a rule tightened can still be written.
    """
    errors: list[FieldError] = []
    _validate(value, schema, path, errors, old if has_old else MISSING, False)
    return errors


def unchanged(value: Any, old: Any, parent_unchanged: bool) -> bool:
    """Whether a node's errors are ratcheted: it equals its correlated old value, or, when it has
    none (an atomic list's item), its nearest correlated ancestor is unchanged (apiextensions
    ratchetingOptions.shouldRatchetError)."""
    return old == value if old is not MISSING else parent_unchanged


def _validate(value: Any, schema: dict[str, Any], path: str, errors: list[FieldError], old: Any,
              parent_unchanged: bool) -> None:
    same = unchanged(value, old, parent_unchanged)
    if same:
        found: list[FieldError] = []
        _check(value, schema, path, found, old, same)
        errors.extend(e for e in found if e.type in NOT_RATCHETED)
    else:
        _check(value, schema, path, errors, old, same)


def _check(value: Any, schema: dict[str, Any], path: str, errors: list[FieldError], old: Any, same: bool) -> None:
    where = path or "<root>"
    if value is None and schema.get("nullable"):
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, (int, str)) and not isinstance(value, bool)):
            errors.append(FieldError(TYPE_INVALID, path, _type_name(value),
                                     f"{where} in body must be of type integer-or-string: {_show(_type_name(value))}"))
            return
    elif "type" in schema and not _type_ok(value, schema["type"]):
        errors.append(FieldError(TYPE_INVALID, path, _type_name(value),
                                 f"{where} in body must be of type {schema['type']}: {_show(_type_name(value))}"))
        return
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(_show(v) for v in schema["enum"])
        errors.append(FieldError(NOT_SUPPORTED, path, value, f"supported values: {supported}"))
        return
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _bounds(value, schema, path, where, errors)
    elif isinstance(value, str):
        _string(value, schema, path, where, errors)
    elif isinstance(value, list):
        _array(value, schema, path, where, errors, old, same)
    elif isinstance(value, dict):
        _object(value, schema, path, errors, old, same)


def _bounds(value: float, schema: dict[str, Any], path: str, where: str, errors: list[FieldError]) -> None:
    if "minimum" in schema:
        low, exclusive = schema["minimum"], schema.get("exclusiveMinimum") is True
        if value < low or exclusive and value == low:
            text = "greater than" if exclusive else "greater than or equal to"
            errors.append(FieldError(INVALID, path, value, f"{where} in body should be {text} {_number(low)}"))
    if "maximum" in schema:
        high, exclusive = schema["maximum"], schema.get("exclusiveMaximum") is True
        if value > high or exclusive and value == high:
            text = "less than" if exclusive else "less than or equal to"
            errors.append(FieldError(INVALID, path, value, f"{where} in body should be {text} {_number(high)}"))


def _string(value: str, schema: dict[str, Any], path: str, where: str, errors: list[FieldError]) -> None:
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(FieldError(TOO_LONG, path, value, f"may not be more than {schema['maxLength']} bytes"))
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(FieldError(INVALID, path, value,
                                 f"{where} in body should be at least {schema['minLength']} chars long"))
    if "pattern" in schema and re2.search(schema["pattern"], value) is None:  # Go's regexp is RE2
        errors.append(FieldError(INVALID, path, value, f"{where} in body should match '{schema['pattern']}'"))
    if schema.get("format") == "date-time" and not is_date_time(value):
        errors.append(FieldError(INVALID, path, value, f"{where} in body must be of type date-time: {_show(value)}"))


def _array(value: list[Any], schema: dict[str, Any], path: str, where: str, errors: list[FieldError],
           old: Any, same: bool) -> None:
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(FieldError(TOO_MANY, path, len(value), f"must have at most {schema['maxItems']} items"))
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(FieldError(INVALID, path, len(value),
                                 f"{where} in body should have at least {schema['minItems']} items"))
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _validate(item, items, join(path, i), errors, old_item(old, item, schema), same)
    keys = schema.get("x-kubernetes-list-map-keys")
    if schema.get("x-kubernetes-list-type") == "map" and keys:
        seen: set[str] = set()
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                continue
            key = json.dumps({k: item.get(k) for k in keys}, sort_keys=True)
            if key in seen:
                errors.append(FieldError(DUPLICATE, join(path, i), {k: item.get(k) for k in keys}))
            seen.add(key)


def _object(value: dict[str, Any], schema: dict[str, Any], path: str, errors: list[FieldError], old: Any,
            same: bool) -> None:
    properties = schema.get("properties") or {}
    for name in schema.get("required", ()):
        if name not in value:
            errors.append(FieldError(REQUIRED, join(path, name)))
    extra = schema.get("additionalProperties")
    for name, item in value.items():
        sub = properties.get(name) or (extra if isinstance(extra, dict) else None)
        if sub is not None:
            _validate(item, sub, join(path, name), errors, old_child(old, name), same)


# ---- correlating a new value with the old one (for ratcheting) ------------------------------

MISSING: Any = object()  # no old value to compare with


def old_child(old: Any, name: str) -> Any:
    """The old object's property `name`, or MISSING."""
    return old[name] if isinstance(old, dict) and name in old else MISSING


def old_item(old_list: Any, item: Any, schema: dict[str, Any]) -> Any:
    """The old item of a map-type list with the same keys as `item`, or MISSING: the API server
    correlates list items by their keys only, so an atomic list's items are never "unchanged"."""
    keys = schema.get("x-kubernetes-list-map-keys")
    if schema.get("x-kubernetes-list-type") != "map" or not keys or not isinstance(old_list, list) \
            or not isinstance(item, dict):
        return MISSING
    for old in old_list:
        if isinstance(old, dict) and all(old.get(k) == item.get(k) for k in keys):
            return old
    return MISSING
