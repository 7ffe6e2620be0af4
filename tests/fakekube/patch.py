"""The three patch flavours the API server accepts, on plain JSON objects.

- JSON merge patch (RFC 7386): objects merge key by key, `null` deletes, everything else replaces.
- JSON patch (RFC 6902): a list of add/remove/replace/move/copy/test operations on JSON pointers.
- Strategic merge patch: a merge patch in which some lists merge element by element on a key
  (the `patchMergeKey` of the Kubernetes types: `type` for conditions, `name` for containers, ports
  by `containerPort`, ...). Only the kinds the controller and tests patch are covered: that is the
  subset below; every other list replaces, as the real server does for lists without a merge key.
"""

from __future__ import annotations

import copy
from typing import Any

# field name -> merge key, for lists that strategic merge patch merges element-wise (k8s.io/api tags).
STRATEGIC_MERGE_KEYS: dict[str, str] = {
    "conditions": "type",
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ownerReferences": "uid",
}


class PatchError(ValueError):
    """A patch body that cannot be applied (the server answers 422 or 400)."""


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, field: str | None = None) -> Any:
    if isinstance(patch, list):
        key = STRATEGIC_MERGE_KEYS.get(field or "")
        if key is None or not isinstance(target, list) or not all(isinstance(p, dict) for p in patch):
            return copy.deepcopy(patch)
        merged = [copy.deepcopy(item) for item in target]
        for item in patch:
            if key not in item:
                raise PatchError(f"strategic merge patch: an element of {field} lacks its merge key {key!r}")
            if item.get("$patch") == "delete":
                merged = [m for m in merged if m.get(key) != item[key]]
                continue
            for i, existing in enumerate(merged):
                if isinstance(existing, dict) and existing.get(key) == item[key]:
                    merged[i] = strategic_merge_patch(existing, item)
                    break
            else:
                merged.append(copy.deepcopy(item))
        return merged
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = strategic_merge_patch(result.get(name), value, name)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON patch path {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    node = doc
    for part in parts[:-1]:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise PatchError(f"JSON patch path {path!r}: {part!r} does not exist") from None
    return node


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    try:
        return parent[int(parts[-1])] if isinstance(parent, list) else parent[parts[-1]]
    except (KeyError, IndexError, ValueError, TypeError):
        raise PatchError(f"JSON patch path {path!r} does not exist") from None


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    parent = _parent(doc, parts, path)
    try:
        if isinstance(parent, list):
            return parent.pop(int(parts[-1]))
        return parent.pop(parts[-1])
    except (KeyError, IndexError, ValueError):
        raise PatchError(f"JSON patch remove: {path!r} does not exist") from None


def _add(doc: Any, path: str, value: Any, *, replace: bool) -> Any:
    parts = _pointer(path)
    if not parts:
        return copy.deepcopy(value)
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if replace:
            if not 0 <= index < len(parent):
                raise PatchError(f"JSON patch replace: {path!r} does not exist")
            parent[index] = copy.deepcopy(value)
        else:
            if not 0 <= index <= len(parent):
                raise PatchError(f"JSON patch add: index {index} out of range at {path!r}")
            parent.insert(index, copy.deepcopy(value))
    elif isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(f"JSON patch replace: {path!r} does not exist")
        parent[last] = copy.deepcopy(value)
    else:
        raise PatchError(f"JSON patch path {path!r}: parent is not an object or array")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise PatchError("a JSON patch body must be a list of operations")
    doc = copy.deepcopy(target)
    for n, op in enumerate(operations):
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"JSON patch operation {n} needs 'op' and 'path': {op!r}")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"JSON patch operation {n} ({kind}) needs 'value'")
        if kind == "add":
            doc = _add(doc, path, op["value"], replace=False)
        elif kind == "replace":
            doc = _add(doc, path, op["value"], replace=True)
        elif kind == "remove":
            _remove(doc, path)
        elif kind in ("move", "copy"):
            value = _get(doc, op["from"]) if "from" in op else None
            if "from" not in op:
                raise PatchError(f"JSON patch operation {n} ({kind}) needs 'from'")
            if kind == "move":
                _remove(doc, op["from"])
            doc = _add(doc, path, value, replace=False)
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise PatchError(f"JSON patch test failed at {path!r}")
        else:
            raise PatchError(f"JSON patch operation {n}: unknown op {kind!r}")
    return doc
