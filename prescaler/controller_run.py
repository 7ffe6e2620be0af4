"""`prescaler controller run`: the in-cluster controller (registered into prescaler/cli.py's app).

In a pod (KUBERNETES_SERVICE_HOST set, no --kubeconfig) it uses the service account; otherwise the
kubeconfig. `--once` reconciles every resource one time and exits (non-zero if any sync failed);
`--dry-run` decides and logs but writes nothing (no scale, no status, no Event).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Optional

import typer

# Outcomes that make `--once` exit non-zero: the autoscaler could not act as its spec asks. A
# forecast that is unavailable is not one of them: falling back to reactive scaling is the documented
# behaviour, reported in its conditions.
ONCE_FAILURES = frozenset({"Error", "InvalidSpec", "FailedGetScale", "FailedUpdateScale"})


def register(app: typer.Typer) -> None:
    controller_app = typer.Typer(help="The in-cluster controller.", no_args_is_help=True)

    @controller_app.command("run")
    def run(
        kubeconfig: Optional[Path] = typer.Option(
            None, help="kubeconfig file (default: in-cluster, else ~/.kube/config)"),
        namespace: Optional[str] = typer.Option(None, help="only this namespace (default: all)"),
        once: bool = typer.Option(False, "--once", help="reconcile every PredictiveAutoscaler once and exit"),
        dry_run: bool = typer.Option(False, "--dry-run", help="decide and log; write nothing"),
        leader_elect: bool = typer.Option(False, "--leader-elect", help="act only while holding the Lease"),
        lease_namespace: str = typer.Option("prescaler", help="namespace of the leader-election Lease"),
        lease_name: str = typer.Option("prescaler-controller", help="name of the leader-election Lease"),
        identity: Optional[str] = typer.Option(None, help="this replica's identity (default: hostname)"),
        prometheus_url: Optional[str] = typer.Option(None, help="Prometheus with the vLLM metrics"),
        forecaster_url: Optional[str] = typer.Option(None, help="the forecaster service, e.g. https://prescaler-forecaster.prescaler.svc"),
        forecaster_ca: Optional[Path] = typer.Option(None, help="CA bundle for the forecaster's serving certificate"),
        forecaster_token_file: Optional[Path] = typer.Option(
            None, help="file with the bearer token the forecaster requires (its auth.bearer_token_file); "
                       "read for every request, so a rotated Secret needs no restart"),
        prometheus_token_file: Optional[Path] = typer.Option(
            None, help="file with a bearer token for --prometheus-url (read at start)"),
        prometheus_ca: Optional[Path] = typer.Option(None, help="CA bundle for an https --prometheus-url"),
        forecaster_config: Optional[Path] = typer.Option(
            None, help="single-binary mode: run the forecaster in this process from this service config "
                       "(configs/forecaster/forecaster.yaml) instead of calling --forecaster-url"),
        metrics_port: int = typer.Option(8080, help="port of /metrics, /healthz, /readyz (0: do not serve)"),
        tick: float = typer.Option(1.0, min=0.05, help="seconds between loop ticks"),
        request_timeout: float = typer.Option(5.0, min=0.1, help="seconds before an API request times out"),
        log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING"),
    ) -> None:
        """Watch PredictiveAutoscalers and scale their targets one lead time ahead of the forecast."""
        from controller.forecast_client import HttpForecastClient
        from controller.kube import KubeClient, api_client_for
        from controller.leader import LeaseElector
        from controller.live_metrics import PrometheusLiveMetrics
        from controller.loop import AutoscalerCache, Controller
        from controller.reconcile import Clients, Reconciler
        from controller.server import ControllerMetrics, Health, serve
        from forecaster.contract import system_clock
        from prescaler.inprocess import InProcessForecasts

        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
        if log_level.upper() != "DEBUG":
            # httpx logs every request at INFO: two Prometheus queries per metric per sync drowned the
            # controller's own lines (seen in the real-vLLM e2e). Its requests stay visible at DEBUG.
            logging.getLogger("httpx").setLevel(logging.WARNING)
        if kubeconfig is not None and not kubeconfig.is_file():
            raise typer.BadParameter(f"{kubeconfig} does not exist", param_hint="--kubeconfig")
        if forecaster_ca is not None and not forecaster_ca.is_file():
            raise typer.BadParameter(f"{forecaster_ca} does not exist", param_hint="--forecaster-ca")
        for option, value in (("--forecaster-token-file", forecaster_token_file),
                              ("--prometheus-token-file", prometheus_token_file), ("--prometheus-ca", prometheus_ca)):
            if value is not None and not value.is_file():
                raise typer.BadParameter(f"{value} does not exist", param_hint=option)
        if forecaster_token_file is not None and not forecaster_url:
            raise typer.BadParameter("a token is sent to --forecaster-url; give it too",
                                     param_hint="--forecaster-token-file")
        prometheus_headers: dict[str, str] = {}
        if prometheus_token_file is not None:
            prometheus_token = prometheus_token_file.read_text(encoding="utf-8").strip()
            if not prometheus_token:
                raise typer.BadParameter(f"{prometheus_token_file} is empty", param_hint="--prometheus-token-file")
            prometheus_headers["Authorization"] = f"Bearer {prometheus_token}"
        if forecaster_config is not None and forecaster_url:
            raise typer.BadParameter("give --forecaster-url or --forecaster-config, not both",
                                     param_hint="--forecaster-config")
        if forecaster_config is not None and not forecaster_config.is_file():
            raise typer.BadParameter(f"{forecaster_config} does not exist", param_hint="--forecaster-config")
        me = identity or os.environ.get("POD_NAME") or socket.gethostname()
        kube = KubeClient(api_client_for(kubeconfig=str(kubeconfig) if kubeconfig else None), timeout=request_timeout)
        clients = Clients(
            kube=kube,
            metrics=PrometheusLiveMetrics(prometheus_url, headers=prometheus_headers,
                                          verify=str(prometheus_ca) if prometheus_ca else True)
            if prometheus_url else None,
            forecasts=HttpForecastClient(forecaster_url, verify=str(forecaster_ca) if forecaster_ca else True,
                                         token_file=str(forecaster_token_file) if forecaster_token_file else None)
            if forecaster_url else InProcessForecasts(str(forecaster_config), kube=kube) if forecaster_config else None,
        )
        metrics = ControllerMetrics()
        reconciler = Reconciler(clients, metrics=metrics, identity=me, dry_run=dry_run)
        if once:
            once_controller = Controller(reconciler, kube, system_clock, namespace=namespace)
            outcomes = once_controller.step(force=True)
            if once_controller.list_error is not None:
                # Nothing was reconciled: "0 autoscalers, 0 failed" with exit 0 would read as success.
                typer.echo(f"cannot list PredictiveAutoscalers: {once_controller.list_error}", err=True)
                raise typer.Exit(1)
            failed = 0
            for o in outcomes:
                failed += o.reason in ONCE_FAILURES
                typer.echo(f"{o.key}\t{o.reason}\tcurrent={o.current}\tdesired={o.desired}"
                           + ("\tscaled" if o.scaled else "") + (f"\t{o.error}" if o.error else ""))
            typer.echo(f"{len(outcomes)} autoscalers, {failed} failed" + (" (dry run)" if dry_run else ""))
            raise typer.Exit(1 if failed else 0)

        import time

        health = Health(time.monotonic)
        server = serve(metrics, health, port=metrics_port) if metrics_port else None
        elector = LeaseElector(kube, lease_namespace, lease_name, me, system_clock) if leader_elect else None
        controller = Controller(reconciler, kube, system_clock, namespace=namespace, elector=elector,
                                health=health, cache=AutoscalerCache(kube, namespace))
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        try:
            controller.run(stop, tick_seconds=tick)  # releases the Lease on the way out
        finally:
            if server is not None:
                server.shutdown()

    app.add_typer(controller_app, name="controller")
