"""`prescaler forecaster serve --config configs/forecaster/forecaster.yaml`.

Adds `serve` to the `forecaster` command group when another module has already registered that
group (forecaster.cli), and creates the group otherwise, so the two modules can register in either
order. Heavy imports happen inside the command.

`serve --check` validates the config (forecaster.service.config) and what serving it needs from the
machine (forecaster.service.preflight): the files it names readable, the certificate and key loadable,
the registry writable. `serve` runs the same checks first, so neither ends in a traceback.

The composition root (prescaler/cli.py) registers the command with `workload_source`, the factory
of the PredictiveAutoscaler source (prescaler.discovery.workload_source): discovery reads the
objects through the controller's client, and this package imports neither controller/ nor
prescaler/. Registered without it, `serve` refuses a config with `discovery.enabled`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from forecaster.service.config import ServiceConfig
    from forecaster.service.workloads import WorkloadSource

    WorkloadSourceFactory = Callable[[ServiceConfig], WorkloadSource]


def _forecaster_group(app: typer.Typer) -> typer.Typer:
    for info in app.registered_groups:
        if info.name == "forecaster" and info.typer_instance is not None:
            return info.typer_instance
    group = typer.Typer(help="Forecasting: backtest, train, forecast, serve.", no_args_is_help=True)
    app.add_typer(group, name="forecaster")
    return group


def describe(config: ServiceConfig) -> str:
    """What `--check` says of a valid config: its workloads, or what discovery will read."""
    from forecaster.contract.durations import format_go

    names = ", ".join(w.name for w in config.workloads)
    if not config.discovery.enabled:
        return f"{len(config.workloads)} workload(s): {names}"
    d = config.discovery
    where = f"namespace(s) {', '.join(d.namespaces)}" if d.namespaces else "all namespaces"
    # api_client_for's rule (controller.kube): the kubeconfig given, else the pod's service account.
    through = (f"kubeconfig {d.kubeconfig}" if d.kubeconfig is not None
               else "the pod's service account (outside a pod: ~/.kube/config)")
    overrides = f"; {len(config.workloads)} override(s): {names}" if config.workloads else "; no overrides"
    return (f"workloads from the PredictiveAutoscalers in {where}, listed every {format_go(d.resync.total_seconds())} "
            f"through {through}{overrides}")


def register(app: typer.Typer, *, workload_source: WorkloadSourceFactory | None = None) -> None:
    group = _forecaster_group(app)

    @group.command("serve")
    def serve_command(
        config: Path = typer.Option(..., "--config", "-c", help="service config YAML",
                                    exists=False, dir_okay=False),
        log_level: str = typer.Option("info", help="uvicorn log level"),
        check: bool = typer.Option(False, "--check", help="validate the config and the files, directories "
                                   "and certificates it names, then exit"),
    ) -> None:
        """Serve forecasts over REST, the Kubernetes external metrics API and KEDA gRPC."""
        from forecaster.service.config import ConfigError, load_config
        from forecaster.service.preflight import check_serving, format_problems

        try:
            cfg = load_config(config)
        except ConfigError as error:
            typer.echo(str(error), err=True)
            raise typer.Exit(2) from None
        # Both with and without --check: a missing token, TLS or trace file, or an unwritable
        # registry, otherwise surfaced as a traceback from whichever part read it first.
        problems = check_serving(cfg)
        if problems:
            typer.echo(format_problems(problems, str(config)), err=True)
            raise typer.Exit(2)
        if check:
            typer.echo(f"{config}: valid ({describe(cfg)})")
            return
        import logging

        from forecaster.service.server import serve

        # The service's own log (workloads served, skipped with their reason) at uvicorn's level;
        # uvicorn's "trace", finer than any logging level, logs everything.
        level = getattr(logging, log_level.upper(), logging.DEBUG)
        logging.basicConfig(level=level if isinstance(level, int) else logging.DEBUG,
                            format="%(asctime)s %(levelname)s %(name)s %(message)s")
        try:
            source = workload_source(cfg) if workload_source is not None else None
            serve(cfg, log_level=log_level, workloads=source)
        except ConfigError as error:
            typer.echo(f"{config}: {error}", err=True)
            raise typer.Exit(2) from None
