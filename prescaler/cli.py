"""The `prescaler` command: the composition root's entry point. Each area registers its own commands.

Command modules import their heavy libraries inside the command functions, so `prescaler --help`
and the controller's commands work on an install without the `forecaster` extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from forecaster.service.config import ServiceConfig
    from forecaster.service.workloads import WorkloadSource

app = typer.Typer(
    name="prescaler",
    help="Predictive autoscaler for LLM inference on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _workload_source(config: ServiceConfig) -> WorkloadSource:
    """`prescaler forecaster serve`'s source of workloads: the PredictiveAutoscalers when the config
    enables discovery, else its own list. Imported when `serve` runs, so `prescaler --help` loads
    neither the service nor the Kubernetes client."""
    from prescaler.discovery import workload_source

    return workload_source(config)


# Each of these modules defines `register(app: typer.Typer, **wiring) -> None`; WIRING is what the
# composition root hands a module that cannot import the other side itself (forecaster/ never
# imports controller/ or prescaler/).
COMMAND_MODULES = (
    "forecaster.cli",             # backtest, train, forecast
    "forecaster.prometheus.cli",  # prometheus backfill
    "forecaster.service.cli",     # forecaster serve
    "prescaler.simulate",         # simulate, demo
    "prescaler.frontier",         # frontier
    "prescaler.controller_run",   # controller run
    "prescaler.report",           # report (static HTML review)
)

WIRING: dict[str, dict[str, Any]] = {
    "forecaster.service.cli": {"workload_source": _workload_source},
}

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app, **WIRING.get(_name, {}))


def main() -> None:  # pragma: no cover - console entry point
    app()
