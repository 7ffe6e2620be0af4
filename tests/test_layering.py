"""The architecture's layering rules (docs/architecture.md) that import-linter cannot state.

The import rules themselves are import-linter contracts in pyproject.toml, run by `make test`
(`lint-imports`). What stays here:
- the contract list of modules forecaster.contract may not import is complete (a new forecaster
  module must be added to it, or the contract would silently let the contract package import it);
- controller.policy reads no clock and never sleeps (a call, not an import: `datetime` is fine);
- the controller and `prescaler --help` import without the heavy statistics libraries installed.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("statsmodels", "prophet", "sklearn", "cmdstanpy", "matplotlib")


def _python_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_contract_package_contract_names_every_other_forecaster_module() -> None:
    (contract,) = [c for c in _contracts() if c["source_modules"] == ["forecaster.contract"]]
    modules = {
        f"forecaster.{p.stem if p.is_file() else p.name}"
        for p in (ROOT / "forecaster").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())
    } - {"forecaster.contract"}
    missing = modules - set(contract["forbidden_modules"])
    assert not missing, f"add {sorted(missing)} to the forecaster.contract contract in pyproject.toml"


def test_import_linter_contracts_cover_the_documented_rules() -> None:
    """Each rule of docs/architecture.md has its contract (a deleted contract would pass lint-imports)."""
    pairs = {(tuple(c["source_modules"]), m) for c in _contracts() for m in c.get("forbidden_modules", [])}
    for rule in [(("forecaster",), "controller"), (("forecaster",), "prescaler"), (("controller",), "prescaler"),
                 (("controller",), "forecaster"), (("controller",), "statsmodels"), (("controller.policy",), "time"),
                 (("controller.policy",), "kubernetes"), (("controller.policy",), "httpx")]:
        assert rule in pairs, f"no import-linter contract forbids {rule[0][0]} -> {rule[1]}"


@pytest.mark.parametrize("path", _python_files("controller/policy"), ids=lambda p: str(p.relative_to(ROOT)))
def test_policy_reads_no_clock(path: Path) -> None:
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
        "from prescaler.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(r.output)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
