"""The review notebooks run headless on the shipped trace and show their figures and tables; the
committed files carry no outputs and are exactly what notebooks/build_notebooks.py writes."""

from __future__ import annotations

import ast
import json
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
# name -> (figures, tables) each must show at least: one per section of the notebook.
EXPECTED = {
    "01_forecast_review.ipynb": (4, 4),
    "02_model_leaderboard.ipynb": (4, 3),
    "03_scaling_replay.ipynb": (3, 3),
}
KERNEL = "prescaler-test-venv"


def _code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def _execute(nb, sockets: Path, timeout: int) -> None:
    """Run `nb` in the test kernel over IPC sockets under `sockets` (a temp dir): nothing listens on
    TCP, and no socket file lands in the working tree."""
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    km = KernelManager(kernel_name=KERNEL, transport="ipc", ip=str(sockets / "kernel"))
    NotebookClient(nb, km=km, timeout=timeout, allow_errors=False,
                   resources={"metadata": {"path": str(ROOT)}}).execute()


@pytest.fixture(scope="module")
def venv_kernel(tmp_path_factory):
    """A kernelspec for this interpreter (the venv's), so the notebooks import this checkout's
    packages whatever kernels the machine has installed."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "prescaler venv (tests)",
        "language": "python",
    }))
    return root


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_committed_notebook_is_stripped_and_parameterised(name) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    cells = _code_cells(nb)
    for cell in cells:
        assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs not stripped"
    assert "parameters" in cells[0].metadata.get("tags", []), f"{name}: first code cell not tagged parameters"
    # The parameters cell only assigns values a user overrides (papermill injects a cell after it).
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.Assign), f"{name}: parameters cell holds {type(node).__name__}, not assignments"
    # The notebooks define no logic: every function and class lives in the package, tested.
    for cell in cells:
        tree = ast.parse(cell.source)
        defined = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda))]
        assert not defined, f"{name}: defines {[getattr(n, 'name', 'lambda') for n in defined]}"


def test_committed_notebooks_match_the_builder(tmp_path) -> None:
    sys.path.insert(0, str(NOTEBOOKS))
    try:
        import build_notebooks
    finally:
        sys.path.remove(str(NOTEBOOKS))
    for path in build_notebooks.main(tmp_path):
        assert path.read_text() == (NOTEBOOKS / path.name).read_text(), (
            f"{path.name} differs from notebooks/build_notebooks.py: run it and commit the result"
        )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_headless_with_figures_and_tables(name, venv_kernel, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("JUPYTER_PATH", str(venv_kernel))
    # One BLAS/OpenMP thread in the kernel: the machine's cores are shared, and scikit-learn's
    # OpenMP threads spinning against each other cost more than they save on 2 cores.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    started = time.perf_counter()
    _execute(nb, tmp_path, timeout=300)
    elapsed = time.perf_counter() - started
    figures = tables = 0
    for cell in _code_cells(nb):
        for output in cell.outputs:
            assert output.output_type != "error", f"{name}: {output.get('ename')}: {output.get('evalue')}"
            data = output.get("data", {})
            figures += "image/png" in data
            tables += "text/html" in data and "<table" in data["text/html"]
    want_figures, want_tables = EXPECTED[name]
    assert figures >= want_figures, f"{name}: {figures} figures, expected {want_figures}"
    assert tables >= want_tables, f"{name}: {tables} tables, expected {want_tables}"
    print(f"{name}: {elapsed:.1f} s, {figures} figures, {tables} tables")


def _inject(nb, **values) -> None:
    """What papermill does: a cell after the `parameters` cell that overrides some of them."""
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    cell.id = "injected"
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(index + 1, cell)


def test_leaderboard_notebook_reads_a_registry_model_card(tmp_path, venv_kernel, monkeypatch) -> None:
    # Pointed at a registry, notebook 02 shows the backtest and selection stored in the model card
    # (no backtest of its own), with the same figures and tables.
    from forecaster.backtest import BacktestConfig
    from forecaster.registry import Registry
    from forecaster.review_inputs import load_review_series
    from forecaster.training import train

    series = load_review_series(bin="1h").series.rename("requests")
    card = train(series, workload="shop", signal="requests", registry=Registry(tmp_path / "models"),
                 models="last_value,seasonal_naive_daily",
                 config=BacktestConfig(horizons=("1h", "2h"), eval_days=2, refits=1))
    monkeypatch.setenv("JUPYTER_PATH", str(venv_kernel))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    nb = nbformat.read(NOTEBOOKS / "02_model_leaderboard.ipynb", as_version=4)
    _inject(nb, registry=str(tmp_path / "models"), workload="shop", models=["no_such_model"])
    _execute(nb, tmp_path, timeout=120)
    outputs = [o for c in _code_cells(nb) for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert card.selection.reason in text
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "seasonal_naive_daily" in html and "120m" in html  # the card's horizons, not the defaults
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 4
