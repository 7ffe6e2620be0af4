"""`prescaler forecaster serve --config configs/forecaster.yaml`.

Adds `serve` to the `forecaster` command group when another module has already registered that
group (forecaster.cli), and creates the group otherwise, so the two modules can register in either
order. Heavy imports happen inside the command.
"""

from __future__ import annotations

from pathlib import Path

import typer


def _forecaster_group(app: typer.Typer) -> typer.Typer:
    for info in app.registered_groups:
        if info.name == "forecaster" and info.typer_instance is not None:
            return info.typer_instance
    group = typer.Typer(help="Forecasting: backtest, train, forecast, serve.", no_args_is_help=True)
    app.add_typer(group, name="forecaster")
    return group


def register(app: typer.Typer) -> None:
    group = _forecaster_group(app)

    @group.command("serve")
    def serve_command(
        config: Path = typer.Option(..., "--config", "-c", help="service config YAML",
                                    exists=False, dir_okay=False),
        log_level: str = typer.Option("info", help="uvicorn log level"),
        check: bool = typer.Option(False, "--check", help="validate the config and exit"),
    ) -> None:
        """Serve forecasts over REST, the Kubernetes external metrics API and KEDA gRPC."""
        from forecaster.service.config import ConfigError, load_config

        try:
            cfg = load_config(config)
        except ConfigError as error:
            typer.echo(str(error), err=True)
            raise typer.Exit(2) from None
        if check:
            names = ", ".join(w.name for w in cfg.workloads)
            typer.echo(f"{config}: valid ({len(cfg.workloads)} workload(s): {names})")
            return
        from forecaster.service.server import serve

        serve(cfg, log_level=log_level)
