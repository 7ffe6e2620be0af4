"""The `prescaler` command: the composition root's entry point. Each area registers its own commands.

Command modules import their heavy libraries inside the command functions, so `prescaler --help`
and the controller's commands work on an install without the `forecaster` extra.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="prescaler",
    help="Predictive autoscaler for LLM inference on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each of these modules defines `register(app: typer.Typer) -> None`.
COMMAND_MODULES = (
    "forecaster.cli",             # backtest, train, forecast
    "forecaster.prometheus.cli",  # prometheus backfill
    "forecaster.service.cli",     # forecaster serve
    "prescaler.simulate",         # simulate, demo
    "prescaler.frontier",         # frontier
    "prescaler.controller_run",   # controller run
    "prescaler.report",           # report (static HTML review)
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:  # pragma: no cover - console entry point
    app()
