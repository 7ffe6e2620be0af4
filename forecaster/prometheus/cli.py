"""`prescaler prometheus backfill`: a trace file into a Prometheus TSDB, as vLLM's counters.

Register with `register(app)` (controller/cli.py COMMAND_MODULES). Heavy imports stay inside the
command so `prescaler --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        name="prometheus",
        help="Prometheus as the history source: backfill traces into a TSDB.",
        no_args_is_help=True,
    )

    @group.command("backfill")
    def backfill_command(
        trace: Path = typer.Argument(..., help="trace file (CSV or Parquet, counts per bin)"),
        model_name: str = typer.Option(..., "--model-name", help="the model_name label to store"),
        out: Path = typer.Option(..., "--out", help="TSDB directory (Prometheus --storage.tsdb.path)"),
        engine: str = typer.Option("0", "--engine", help="the engine label to store"),
        underscore: bool = typer.Option(
            False, "--underscore", help="store vllm_ names instead of vllm: (as some exporters do)"
        ),
        keep_openmetrics: Path | None = typer.Option(
            None, "--keep-openmetrics", help="also keep the OpenMetrics file written for promtool here"
        ),
        promtool: str = typer.Option("promtool", "--promtool", help="promtool binary"),
    ) -> None:
        """Write TRACE as vLLM counters (OpenMetrics) and run promtool to create blocks in --out.

        Then start Prometheus with --storage.tsdb.path=OUT --storage.tsdb.retention.time=100y (the
        history is old; a shorter retention deletes it at once).
        """
        from forecaster.errors import ForecasterError
        from forecaster.prometheus.backfill import backfill
        from forecaster.sources import read_trace

        if not model_name.strip():
            typer.echo("error: --model-name must not be empty", err=True)
            raise typer.Exit(2)
        try:
            frame = read_trace(trace)
            result = backfill(
                [(model_name, frame)],
                out,
                engine=engine,
                prefix="vllm_" if underscore else "vllm:",
                keep_openmetrics=keep_openmetrics,
                promtool=promtool,
            )
        except (ForecasterError, ValueError, OSError) as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None
        samples = ", ".join(f"{name}: {count}" for name, count in result.samples.items())
        typer.echo(
            f"backfilled model_name={model_name!r} {result.start.isoformat()} .. {result.end.isoformat()} "
            f"into {out} ({samples})"
        )
        if result.openmetrics is not None:
            typer.echo(f"kept {result.openmetrics}")

    app.add_typer(group, name="prometheus")
