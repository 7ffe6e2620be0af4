"""The ClusterRole and Role grant exactly what controller/kube.py calls: least privilege by construction."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _calls_in_code() -> set[tuple[str, str, str]]:
    """(group, resource, verb) from every self._call / self._stream whose first three arguments are literals."""
    tree = ast.parse((ROOT / "controller" / "kube.py").read_text())
    found: set[tuple[str, str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("_call", "_stream"):
            args = node.args[:3]
            if len(args) < 3:
                continue
            values = []
            for arg in args:
                if isinstance(arg, ast.Constant):
                    values.append(arg.value)
                elif isinstance(arg, ast.Name) and arg.id in ("PA_GROUP", "PA_PLURAL"):
                    values.append({"PA_GROUP": "prescaler.dev", "PA_PLURAL": "predictiveautoscalers"}[arg.id])
                else:
                    raise AssertionError(f"kube.py line {node.lineno}: the RBAC triple must be literal")
            verb, group, resource = values
            if resource:  # discovery (resource "") is a non-resource URL every user may read
                found.add((group, resource, verb))
    return found


def _granted() -> set[tuple[str, str, str]]:
    granted = set()
    for name in ("cluster_role.yaml", "leader_election_role.yaml"):
        for doc in yaml.safe_load_all((ROOT / "configs" / "rbac" / name).read_text()):
            if doc["kind"] not in ("ClusterRole", "Role"):
                continue
            for rule in doc["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        for verb in rule["verbs"]:
                            granted.add((group, resource, verb))
    return granted


def test_roles_grant_exactly_what_the_code_calls() -> None:
    used, granted = _calls_in_code(), _granted()
    assert used - granted == set(), f"the code calls what the roles do not grant: {sorted(used - granted)}"
    assert granted - used == set(), f"the roles grant what the code never calls: {sorted(granted - used)}"


def test_no_wildcard_verbs() -> None:
    assert all(verb != "*" for _, _, verb in _granted())
