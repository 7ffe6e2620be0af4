"""The architecture's layering rules (DESIGN.md), checked on the source so they cannot rot.

- forecaster/ never imports controller/ (the forecaster is deployable alone);
- controller/ imports without the forecaster's heavy statistics libraries (the controller image
  path must work on `pip install prescaler` without the `forecaster` extra);
- controller/policy/ is pure: no I/O library, no clock read, no sleep.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("statsmodels", "prophet", "sklearn", "cmdstanpy", "matplotlib")


def _python_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def _imported_modules(path: Path, *, top_level_only: bool) -> set[str]:
    """Modules imported by a file; with top_level_only, only imports that run at module import time."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", _python_files("forecaster"), ids=lambda p: str(p.relative_to(ROOT)))
def test_forecaster_never_imports_controller(path: Path) -> None:
    offending = {m for m in _imported_modules(path, top_level_only=False) if m.split(".")[0] == "controller"}
    assert not offending, f"{path.relative_to(ROOT)} imports {sorted(offending)}"


POLICY_FORBIDDEN = {"socket", "requests", "httpx", "urllib", "http", "kubernetes", "time", "asyncio",
                    "subprocess", "threading", "prometheus_client", "random"}


@pytest.mark.parametrize("path", _python_files("controller/policy"), ids=lambda p: str(p.relative_to(ROOT)))
def test_policy_is_pure(path: Path) -> None:
    imported = {m.split(".")[0] for m in _imported_modules(path, top_level_only=False)}
    assert not imported & POLICY_FORBIDDEN, f"{path.name} imports {sorted(imported & POLICY_FORBIDDEN)}"
    source = path.read_text()
    for clock_read in ("datetime.now(", "datetime.utcnow(", "date.today(", "time.time(", "sleep("):
        assert clock_read not in source, f"{path.name} reads the clock or sleeps: {clock_read}"


def test_controller_imports_without_heavy_libraries() -> None:
    """Import every controller module in a fresh interpreter where the heavy libraries cannot load."""
    modules = [
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in _python_files("controller")
    ]
    blocker = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        f"    def find_spec(self, name, path, target=None):\n"
        f"        if name.split('.')[0] in {HEAVY!r}:\n"
        "            raise ImportError(f'blocked heavy import: {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import importlib\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]


def test_cli_help_works_without_heavy_libraries() -> None:
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        f"        if name.split('.')[0] in {HEAVY!r}: raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from typer.testing import CliRunner\n"
        "from controller.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(r.output)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
