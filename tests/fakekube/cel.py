"""A CRD's CEL validation rules (`x-kubernetes-validations`), compiled and run as kube-apiserver does.

Read from the CRD the fake serves (never a copy of the rules), with cel-python (`celpy`, RE2 for
`matches`) for the language. What kube-apiserver does and this copies (apiextensions-apiserver
pkg/apiserver/schema/cel):
- at CRD creation, each rule and messageExpression is compiled; an undeclared function or variable,
  a field the schema does not have, a transition rule (`oldSelf`), a `reason` outside the four
  allowed or a `fieldPath` to no field fails the CRD (422), so a typo in a rule shows at once;
- on a write, each rule runs with `self` the value of the node it sits on, where that node exists,
  typed by the schema (an integer field is an int, a number a double, date-time a timestamp);
  an unchanged node (equal to the old object's, correlated by property and map-list key; an atomic
  list's item by its nearest correlated ancestor) is not checked again (ratcheting, Kubernetes 1.30+);
- a false rule is `<path><fieldPath>: Invalid value: "object": <message>` (Forbidden, Required or
  Duplicate with `reason`), the message from messageExpression when it evaluates to a string;
  an evaluation error is `<path>: Invalid value: "object": <error> evaluating rule: <message>`.
Only the functions our rules use and cel-python implements as cel-go does are declared
(`ALLOWED_FUNCTIONS`): `duration()` is Go's time.ParseDuration (cel-python's also takes `14d`,
which Kubernetes refuses). No cost estimation: tests/controller/test_crd_cel.py checks the bounds
that keep ours cheap instead.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

import celpy
import lark
from celpy import celtypes

from .schema import DUPLICATE, FORBIDDEN, INVALID, MISSING, REQUIRED, FieldError, join, old_child, old_item, unchanged

# Global functions and methods: cel-go's standard ones that cel-python implements alike. Kubernetes
# declares more (quantity(), the lists and strings extensions, ...): a rule using one fails at load
# here, to be added with a faithful implementation, rather than pass silently.
ALLOWED_FUNCTIONS = frozenset({"size", "duration", "string", "int", "double", "bool", "timestamp"})
ALLOWED_METHODS = frozenset({"size", "matches", "contains", "startsWith", "endsWith"})
MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})  # plus has(), a global macro
REASONS = {"FieldValueInvalid": INVALID, "FieldValueForbidden": FORBIDDEN, "FieldValueRequired": REQUIRED,
           "FieldValueDuplicate": DUPLICATE}


class RuleCompileError(ValueError):
    """A CRD whose rules kube-apiserver would refuse; `errors` name each rule's place in the CRD."""

    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(e.message() for e in errors))
        self.errors = errors


# ---- Go's time.ParseDuration, which cel-go's duration() is -----------------------------------

_GO_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
             "h": 3600 * 10**9}
_GO_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")
_MAX_NANOS = 2**63 - 1


def go_duration_nanos(text: str) -> int:
    """Nanoseconds, as Go's time.ParseDuration reads `text`; ValueError where Go gives an error."""
    s, sign = text, 1
    if s[:1] in ("+", "-"):
        sign, s = (-1 if s[0] == "-" else 1), s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0
    while s:
        match = _GO_PART.match(s)
        assert match is not None  # every group may be empty
        whole, fraction, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not fraction:
            raise ValueError(f'time: invalid duration "{text}"')
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _GO_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        scale = _GO_UNITS[unit]
        value = int(whole or "0") * scale
        if fraction:
            # Go adds float64(fraction) * (float64(unit) / 10**digits), truncated.
            value += int(float(int(fraction)) * (scale / 10 ** len(fraction)))
        total += value
        if total > _MAX_NANOS:
            raise ValueError(f'time: invalid duration "{text}"')
        s = s[match.end():]
    return sign * total


def _cel_duration(value: Any) -> Any:
    if isinstance(value, celtypes.DurationType):
        return value
    if not isinstance(value, str):
        return celpy.CELEvalError(f"no such overload: duration({type(value).__name__})")
    try:
        nanos = go_duration_nanos(str(value))
    except ValueError as err:
        return celpy.CELEvalError(str(err))
    seconds, rest = divmod(nanos, 10**9)
    return celtypes.DurationType(seconds, rest)


_FUNCTIONS = {"duration": _cel_duration}


# ---- compiling --------------------------------------------------------------------------------

@functools.cache
def _environment() -> celpy.Environment:
    return celpy.Environment()  # builds the Lark parser once (a quarter of a second)


@functools.cache
def _parse(text: str) -> lark.Tree:
    return _environment().compile(text)


@functools.cache
def _program(text: str) -> celpy.Runner:
    return _environment().program(_parse(text), functions=_FUNCTIONS)


def _token(tree: lark.Tree, index: int) -> str:
    return str(tree.children[index])


def _check_expression(text: str, schema: dict[str, Any]) -> list[str]:
    """What cel-go's compiler would refuse in `text` on a node with `schema` (empty: it compiles)."""
    try:
        tree = _parse(text)
    except celpy.CELParseError as err:
        return [f"syntax error: {err}"]
    problems: list[str] = []
    bound = {_token(arg, 0) for arg in _bound_variables(tree)}
    for node in tree.iter_subtrees():
        if node.data == "ident_arg":
            name = _token(node, 0)
            if name != "has" and name not in ALLOWED_FUNCTIONS:
                problems.append(f"undeclared reference to '{name}'")
        elif node.data == "member_dot_arg":
            name = _token(node, 1)
            if name not in ALLOWED_METHODS and name not in MACROS:
                problems.append(f"undeclared reference to '{name}'")
        elif node.data == "ident":
            name = _token(node, 0)
            if name == "oldSelf":
                problems.append("transition rules (oldSelf) are not implemented by the fake API server")
            elif name != "self" and name not in bound:
                problems.append(f"undeclared reference to '{name}'")
        elif node.data == "dot_ident":
            problems.append(f"undeclared reference to '.{_token(node, 0)}'")
        elif node.data == "member_dot":
            try:
                _resolve(node, schema)
            except ValueError as err:
                problems.append(str(err))
    return list(dict.fromkeys(problems))


def _bound_variables(tree: lark.Tree) -> list[lark.Tree]:
    """The `x` of every `list.all(x, ...)`-like macro (the identifiers the macro binds)."""
    out = []
    for node in tree.iter_subtrees():
        if node.data == "member_dot_arg" and _token(node, 1) in MACROS and len(node.children) > 2:
            first = node.children[2].children[0]  # exprlist -> the first expr
            idents = [n for n in first.iter_subtrees() if n.data == "ident"]
            if idents:
                out.append(idents[0])
    return out


def _resolve(node: lark.Tree, schema: dict[str, Any]) -> dict[str, Any] | None:
    """The schema of the value an expression selects from `self`, None where its type is not known
    statically (a macro variable, a literal, a free-form object); ValueError for an unknown field."""
    if node.data in ("member", "primary") and len(node.children) == 1 and isinstance(node.children[0], lark.Tree):
        return _resolve(node.children[0], schema)
    if node.data == "ident":
        return schema if _token(node, 0) == "self" else None
    if node.data == "member_dot":
        base = _resolve(node.children[0], schema)
        return _select(base, _token(node, 1))
    if node.data == "member_index":
        base = _resolve(node.children[0], schema)
        if base is None:
            return None
        if isinstance(base.get("items"), dict):
            return base["items"]
        extra = base.get("additionalProperties")
        return extra if isinstance(extra, dict) else None
    return None


def _select(base: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if base is None:
        return None
    properties = base.get("properties")
    if properties is not None and name in properties:
        return properties[name]
    extra = base.get("additionalProperties")
    if isinstance(extra, dict):
        return extra
    if base.get("x-kubernetes-preserve-unknown-fields"):
        return None
    if base.get("type") == "object":
        raise ValueError(f"undefined field '{name}'")
    raise ValueError(f"type '{base.get('type', 'dyn')}' does not support field selection")


@dataclass(frozen=True)
class Rule:
    """One compiled x-kubernetes-validations entry."""

    rule: str
    message: str
    message_expression: str | None
    field_path: str  # normalised: `forecast.horizon`, no leading dot; "" for the node itself
    error_type: str

    def default_message(self) -> str:
        return self.message.strip() if self.message.strip() else f"failed rule: {self.rule}"


@dataclass
class RuleNode:
    """The rules of one schema node and of the nodes below it that have any."""

    schema: dict[str, Any]
    rules: list[Rule] = field(default_factory=list)
    properties: dict[str, "RuleNode"] = field(default_factory=dict)
    items: "RuleNode | None" = None
    additional: "RuleNode | None" = None


def _field_path(path: str, schema: dict[str, Any]) -> str | None:
    """`.a.b` or `.a['b']` -> `a.b` when each step is a property of the schema; None otherwise."""
    steps = re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)|\['([^'\]]+)'\]", path)
    if not path or "".join(f".{a}" if a else f"['{b}']" for a, b in steps) != path:
        return None
    node: dict[str, Any] | None = schema
    names = []
    for a, b in steps:
        name = a or b
        node = ((node or {}).get("properties") or {}).get(name)
        if node is None:
            return None
        names.append(name)
    return ".".join(names)


def compile_rules(schema: dict[str, Any], where: str) -> RuleNode | None:
    """The rules of a structural schema, checked as kube-apiserver checks them at CRD creation.

    `where` is the schema's place in the CRD, for the errors (`spec.versions[0].schema.openAPIV3Schema`).
    Raises RuleCompileError listing every problem; returns None when the schema has no rules.
    """
    errors: list[FieldError] = []
    node = _compile(schema, where, errors)
    if errors:
        raise RuleCompileError(errors)
    return node


def _compile(schema: dict[str, Any], where: str, errors: list[FieldError]) -> RuleNode | None:
    node = RuleNode(schema)
    for i, entry in enumerate(schema.get("x-kubernetes-validations") or []):
        place = f"{where}.x-kubernetes-validations[{i}]"
        rule = _compile_rule(entry, schema, place, errors)
        if rule is not None:
            node.rules.append(rule)
    for name, sub in (schema.get("properties") or {}).items():
        child = _compile(sub, f"{where}.properties[{name}]", errors)
        if child is not None:
            node.properties[name] = child
    if isinstance(schema.get("items"), dict):
        node.items = _compile(schema["items"], f"{where}.items", errors)
    if isinstance(schema.get("additionalProperties"), dict):
        node.additional = _compile(schema["additionalProperties"], f"{where}.additionalProperties", errors)
    if not node.rules and not node.properties and node.items is None and node.additional is None:
        return None
    return node


def _compile_rule(entry: Any, schema: dict[str, Any], place: str, errors: list[FieldError]) -> Rule | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("rule"), str) or not entry["rule"].strip():
        errors.append(FieldError(REQUIRED, f"{place}.rule"))
        return None
    text = entry["rule"]
    before = len(errors)
    for problem in _check_expression(text, schema):
        errors.append(FieldError(INVALID, f"{place}.rule", text, f"compilation failed: {problem}"))
    message = entry.get("message", "")
    if not isinstance(message, str) or "\n" in message:
        errors.append(FieldError(INVALID, f"{place}.message", message, "message must be a string without line breaks"))
    expression = entry.get("messageExpression")
    if expression is not None:
        for problem in _check_expression(str(expression), schema):
            errors.append(FieldError(INVALID, f"{place}.messageExpression", expression,
                                     f"messageExpression compilation failed: {problem}"))
    reason = entry.get("reason", "FieldValueInvalid")
    if reason not in REASONS:
        supported = ", ".join(f'"{r}"' for r in REASONS)
        errors.append(FieldError("FieldValueNotSupported", f"{place}.reason", reason, f"supported values: {supported}"))
    path = entry.get("fieldPath")
    normalised = ""
    if path is not None:
        found = _field_path(str(path), schema)
        if found is None:
            errors.append(FieldError(INVALID, f"{place}.fieldPath", path,
                                     "fieldPath must be a valid path to a field of the schema"))
        else:
            normalised = found
    if len(errors) > before:
        return None
    return Rule(text, message, None if expression is None else str(expression), normalised, REASONS[reason])


# ---- evaluating -------------------------------------------------------------------------------


def to_cel(value: Any, schema: dict[str, Any]) -> Any:
    """A JSON value as CEL sees it on a node with `schema` (kube-apiserver's type mapping)."""
    if value is None:
        return None
    if schema.get("x-kubernetes-int-or-string"):
        return celtypes.StringType(value) if isinstance(value, str) else celtypes.IntType(value)
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        if properties is None and not isinstance(extra, dict):
            return celpy.json_to_cel(value)
        # A field the schema does not declare is pruned by the API server before rules run.
        return celtypes.MapType({
            celtypes.StringType(k): to_cel(v, (properties or {}).get(k) or (extra if isinstance(extra, dict) else {}))
            for k, v in value.items()
            if (properties and k in properties) or isinstance(extra, dict)
            or schema.get("x-kubernetes-preserve-unknown-fields")
        })
    if isinstance(value, list):
        items = schema.get("items")
        return celtypes.ListType([to_cel(v, items if isinstance(items, dict) else {}) for v in value])
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if schema.get("type") == "number" and isinstance(value, (int, float)):
        return celtypes.DoubleType(float(value))
    if isinstance(value, int) or schema.get("type") == "integer" and isinstance(value, float):
        return celtypes.IntType(int(value))
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, str) and schema.get("format") == "date-time":
        try:
            return celtypes.TimestampType(value)
        except Exception:  # noqa: BLE001 - not a timestamp: the format check reports it, CEL sees a string
            return celtypes.StringType(value)
    return celpy.json_to_cel(value)


def _run(text: str, activation: dict[str, Any]) -> Any:
    """The expression's value, or a CELEvalError (cel-python returns some and raises others)."""
    try:
        return _program(text).evaluate(activation)
    except celpy.CELEvalError as err:
        return err
    except Exception as err:  # noqa: BLE001 - a cel-python internal error is the rule's error, not a 500
        return celpy.CELEvalError(f"{type(err).__name__}: {err}")


def _error_text(err: Any) -> str:
    args = getattr(err, "args", ())
    return str(args[0]) if args else str(err)


def evaluate(node: RuleNode | None, value: Any, path: str = "", old: Any = MISSING) -> list[FieldError]:
    """The errors of every rule under `node` on `value` (`old`: the old object, for ratcheting)."""
    errors: list[FieldError] = []
    if node is not None:
        _evaluate(node, value, path, old, False, errors)
    return errors


def _evaluate(node: RuleNode, value: Any, path: str, old: Any, parent_unchanged: bool,
              errors: list[FieldError]) -> None:
    same = unchanged(value, old, parent_unchanged)
    if node.rules and not same:
        activation = {"self": to_cel(value, node.schema)}
        for rule in node.rules:
            _check_rule(rule, node.schema, activation, path, errors)
    if isinstance(value, dict):
        for name, child in node.properties.items():
            if name in value:
                _evaluate(child, value[name], join(path, name), old_child(old, name), same, errors)
        if node.additional is not None:
            for name, item in value.items():
                if name not in node.properties:
                    _evaluate(node.additional, item, join(path, name), old_child(old, name), same, errors)
    elif isinstance(value, list) and node.items is not None:
        for i, item in enumerate(value):
            _evaluate(node.items, item, join(path, i), old_item(old, item, node.schema), same, errors)


def _check_rule(rule: Rule, schema: dict[str, Any], activation: dict[str, Any], path: str,
                errors: list[FieldError]) -> None:
    type_name = schema.get("type", "object")
    result = _run(rule.rule, activation)
    if isinstance(result, celpy.CELEvalError) or not isinstance(result, (bool, celtypes.BoolType)):
        problem = _error_text(result) if isinstance(result, celpy.CELEvalError) else "the rule is not a bool"
        errors.append(FieldError(INVALID, path, type_name,
                                 f"{problem} evaluating rule: {rule.message.strip() or rule.rule}", rule.rule))
        return
    if result:
        return
    message = rule.default_message()
    if rule.message_expression is not None:
        said = _run(rule.message_expression, activation)
        if isinstance(said, str) and said.strip() and "\n" not in said:  # cel-python's + gives a str
            message = str(said)  # else the API server logs the failure and falls back to `message`
    where = f"{path}.{rule.field_path}" if rule.field_path and path else rule.field_path or path
    if rule.error_type == DUPLICATE:
        errors.append(FieldError(DUPLICATE, where, type_name, rule=rule.rule))
    elif rule.error_type in (FORBIDDEN, REQUIRED):
        errors.append(FieldError(rule.error_type, where, detail=message, rule=rule.rule))
    else:
        errors.append(FieldError(INVALID, where, type_name, message, rule.rule))
