"""controller.policy is pure: no I/O library, no clock read, no sleep, no randomness, no globals written.

tests/test_layering.py checks the imports of every policy module; this adds what a grep can see that
an import check cannot (a clock reached through an allowed module, a file opened, a global mutated).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

POLICY = Path(__file__).resolve().parents[2] / "controller" / "policy"
FILES = sorted(POLICY.glob("*.py"))

FORBIDDEN_CALLS = ("datetime.now", "datetime.utcnow", "date.today", "time.time", "time.monotonic",
                   "time.perf_counter", "time.sleep", "open", "print", "input", "os.environ", "os.getenv")


def _call_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):
                names.add(f.id)
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                names.add(f"{f.value.id}.{f.attr}")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names.add(f"{node.value.id}.{node.attr}")
    return names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_clock_io_or_environment(path: Path) -> None:
    used = _call_names(ast.parse(path.read_text()))
    assert not used & set(FORBIDDEN_CALLS), f"{path.name} uses {sorted(used & set(FORBIDDEN_CALLS))}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_global_state_written(path: Path) -> None:
    tree = ast.parse(path.read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Global)], f"{path.name} writes a global"


def test_every_policy_module_is_checked() -> None:
    assert {p.name for p in FILES} >= {"spec.py", "types.py", "reactive.py", "capacity.py", "predictive.py",
                                       "behavior.py", "decide.py"}
