"""`prescaler backtest`, `prescaler train`, `prescaler forecast`: the forecaster's batch commands.

Registered on the top-level app by controller/cli.py. Everything heavy (pandas, the estimators,
rich) is imported inside the command functions, so `prescaler --help` and the controller's commands
stay light. Errors a user can fix (a bad trace, an unknown model, a bad duration, no stored model)
print one line on stderr and exit 2, with no traceback; progress goes to stderr too, so stdout holds
only the leaderboard, the card or the forecast.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from types import TracebackType

    import pandas as pd

EXIT_USAGE = 2
SIGNAL_CHOICES = ("requests", "prompt_tokens", "output_tokens")


class _UserError(Exception):
    """An error whose message is the whole story (no traceback is printed)."""


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _message(error: BaseException) -> str:
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        # One line per problem, joined: "quantiles: must include [0.05]" rather than pydantic's block.
        return "; ".join(
            (".".join(map(str, e["loc"])) + ": " if e["loc"] else "") + e["msg"].removeprefix("Value error, ")
            for e in error.errors()
        )
    # KeyError's str() wraps its message in quotes; the message is its first argument.
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    return str(error) or type(error).__name__


def _user_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean bad input, not a bug: one line, exit 2."""
    from forecaster.errors import ForecasterError

    return (_UserError, ForecasterError, ValueError, KeyError, FileNotFoundError, NotADirectoryError)


def _finite(value: Any) -> Any:
    """JSON has no NaN: a score over no data (NaN) is written as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# ---- input --------------------------------------------------------------------------------------


def _load_frame(
    trace: Path | None,
    *,
    prometheus: str | None = None,
    model_name: str | None = None,
    days: float = 14.0,
    step: str | None = None,
    signals: list[str] | None = None,
) -> tuple["pd.DataFrame", int | None, str]:
    """The trace frame to train on, its native bin in seconds (None if unknown) and where it came from.

    Exactly one source: a trace file, or a Prometheus server (forecaster.prometheus.load_history over
    the last `days`, at `step`, which is then the native bin: nothing finer exists in what was read).
    """
    if (trace is None) == (prometheus is None):
        raise _UserError("give either a TRACE file or --prometheus URL (exactly one)")
    if prometheus is not None:
        from datetime import datetime, timedelta, timezone

        from forecaster.prometheus.config import PrometheusConfig
        from forecaster.prometheus.loader import load_history
        from forecaster.series import bin_seconds

        if not model_name:
            raise _UserError("--prometheus needs --model-name (the model_name label of the vLLM metrics)")
        if not days > 0:
            raise _UserError(f"--days must be positive, got {days}")
        step_s = bin_seconds(step or "5m")
        end = datetime.now(timezone.utc)
        frame = load_history(
            PrometheusConfig(url=prometheus), model_name=model_name, start=end - timedelta(days=days),
            end=end, step=step_s, signals=signals or list(SIGNAL_CHOICES),
        )
        return frame, step_s, f"{prometheus} (model_name={model_name}, last {days:g} days)"
    from forecaster.sources import native_bin_of, read_trace

    assert trace is not None  # exactly one of trace and prometheus, checked above
    frame = read_trace(trace)
    return frame, native_bin_of(trace, frame), str(trace)


def _choose_bin(requested: str | None, native: int | None, frame: "pd.DataFrame") -> int:
    """The bin to work at: the one asked for (validated, never finer than native), else the native
    bin rounded up to a supported one, else the file's row spacing."""
    from forecaster.series import SUPPORTED_BIN_SECONDS, bin_seconds, format_duration, native_bin_seconds

    if requested is not None:
        seconds = bin_seconds(requested)
        if native is not None and seconds < native:
            raise _UserError(
                f"--bin {requested} is finer than the trace's native bin {format_duration(native)}: its "
                f"rows repeat each native bin's value, so scores would flatter naive forecasts; use "
                f"--bin {format_duration(native)} or coarser"
            )
        return seconds
    base = native if native is not None else native_bin_seconds(frame.index)
    for seconds in SUPPORTED_BIN_SECONDS:
        if seconds >= base:
            return seconds
    raise _UserError(f"the trace's bin {format_duration(base)} is coarser than every supported bin")


def _series(frame: "pd.DataFrame", signal: str, bin_s: int, source: str) -> "pd.Series":
    from forecaster.series import to_rate

    if signal not in SIGNAL_CHOICES:
        raise _UserError(f"--signal {signal!r} is not one of {', '.join(SIGNAL_CHOICES)}")
    if signal not in frame.columns:
        raise _UserError(f"{source} has no {signal!r} column (it has {', '.join(frame.columns)})")
    return to_rate(frame, signal, bin_s)


def _horizons(text: str) -> tuple[int, ...]:
    from forecaster.series import parse_duration

    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise _UserError("--horizons names no horizon (e.g. 15m,60m)")
    return tuple(int(parse_duration(p).total_seconds()) for p in parts)


class _ProgressBar:
    """A rich progress bar on stderr over every (model, refit); the callback of backtest()."""

    def __init__(self, n_models: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.n_models = n_models
        self.progress = Progress(
            TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(stderr=True), transient=True,
        )
        self.task = self.progress.add_task("backtest", total=None)
        self.done: dict[str, int] = {}

    def __enter__(self) -> "_ProgressBar":
        self.progress.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        self.progress.__exit__(exc_type, exc, tb)

    def __call__(self, model: str, done: int, total: int) -> None:
        # Per-model counts: a skipped model reports done == total at once, so the bar stays truthful.
        self.done[model] = done
        self.progress.update(
            self.task, description=model, total=self.n_models * total,
            completed=sum(self.done.values()),
        )


# ---- output -------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}"


def _leaderboard(result, record, signal: str, source: str):
    """A rich table, best first on the selection objective: one row per model and horizon."""
    from rich.table import Table

    from forecaster.contract import quantile_key

    key = quantile_key(result.config.controller_quantile)
    table = Table(
        title=f"backtest of {signal} in {source} at {result.bin_seconds // 60} min bins, "
        f"{len(result.origins)} origins",
        caption=f"* selected: {record.selected} ({record.reason})",
        caption_justify="left",
    )
    for name, justify in (("model", "left"), ("h", "right"), ("MASE", "right"), ("sMAPE%", "right"),
                          (f"pb@{key}", "right"), ("cov90", "right"), ("under", "right"),
                          ("fit s", "right"), ("pred ms", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    order = sorted(
        result.runs, key=lambda m: (not math.isfinite(record.scores.get(m, math.nan)),
                                    record.scores.get(m, math.inf), m),
    )
    for name in order:
        run = result.runs[name]
        label = ("* " if name == record.selected else "") + name + (" (baseline)" if run.is_baseline else "")
        if run.status != "ok":
            table.add_row(label, run.status, f"{run.reason}", end_section=True)
            continue
        for i, horizon in enumerate(result.horizons):
            score = run.scores[horizon.label]
            first = i == 0
            table.add_row(
                label if first else "", horizon.label, _fmt(score.mase), _fmt(score.smape, 1),
                _fmt(score.pinball.get(key), 4), _fmt(score.coverage90, 2), _fmt(score.under_rate, 2),
                _fmt(run.fit_seconds, 2) if first else "", _fmt(run.predict_seconds * 1000, 1) if first else "",
                end_section=i == len(result.horizons) - 1,
            )
    return table


def backtest_json(result, record, *, trace: str, signal: str) -> dict:
    """The `--json` document: the backtest, the selection, and `selected` at the top."""
    return _finite({
        "trace": trace,
        "signal": signal,
        **result.to_dict(),
        "objective": record.objective,
        "selected": record.selected,
        "selection": record.to_dict(),
    })


def _run_backtest(series, factories, config, objective: str, native: int | None):
    from forecaster.backtest import auto_workers, backtest
    from forecaster.selection import select

    with _ProgressBar(len(factories)) as bar:
        result = backtest(series, factories, config, native_bin_seconds=native, progress=bar,
                          workers=auto_workers(list(factories)))
    return result, select(result, objective)


# ---- commands -----------------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    @app.command("backtest")
    def backtest_command(
        trace: Path = typer.Argument(..., help="trace file (CSV or Parquet, ../shared/traces format)"),
        signal: str = typer.Option("requests", help="requests, prompt_tokens or output_tokens"),
        bin: str | None = typer.Option(None, "--bin", help="bin, e.g. 10m (default: the trace's native bin)"),
        horizons: str = typer.Option("15m,60m", help="comma-separated horizons"),
        models: str = typer.Option("all", help="'all' or comma-separated model names"),
        objective: str = typer.Option("pinball@0.9", help="mase, smape, pinball or pinball@Q"),
        refits: int = typer.Option(10, "--refits", min=1, help="fits per model in the backtest"),
        eval_days: float = typer.Option(3.0, "--eval-days", min=0.01, help="days of origins at the end"),
        json_out: Path | None = typer.Option(None, "--json", help="write the scores as JSON here"),
    ) -> None:
        """Rolling-origin backtest of the models on one signal of a trace, then a leaderboard."""
        try:
            from rich.console import Console

            from forecaster.atomic import atomic_write_json
            from forecaster.training import make_config, resolve_models

            # Cheap checks first: a typo in a model name should not wait for the trace to load.
            config = make_config(_horizons(horizons), objective=objective, refits=refits, eval_days=eval_days)
            factories = resolve_models(models)
            frame, native, source = _load_frame(trace)
            series = _series(frame, signal, _choose_bin(bin, native, frame), source)
            result, record = _run_backtest(series, factories, config, objective, native)
            Console().print(_leaderboard(result, record, signal, source))
            if json_out is not None:
                atomic_write_json(json_out, backtest_json(result, record, trace=source, signal=signal))
                typer.echo(f"wrote {json_out}", err=True)
        except _user_errors() as error:
            _fail(_message(error))

    @app.command("train")
    def train_command(
        trace: Path | None = typer.Argument(None, help="trace file (CSV or Parquet); or use --prometheus"),
        workload: str = typer.Option(..., "--workload", help="workload name (the model served)"),
        signal: str = typer.Option("requests", help="requests, prompt_tokens, output_tokens or all"),
        bin: str | None = typer.Option(None, "--bin", help="bin, e.g. 10m (default: the trace's native bin)"),
        horizons: str = typer.Option("15m,60m", help="comma-separated backtest horizons"),
        models: str = typer.Option("all", help="'all' or comma-separated model names"),
        objective: str = typer.Option("pinball@0.9", help="mase, smape, pinball or pinball@Q"),
        refits: int = typer.Option(10, "--refits", min=1, help="fits per model in the backtest"),
        eval_days: float = typer.Option(3.0, "--eval-days", min=0.01, help="days of origins at the end"),
        registry: Path = typer.Option(Path("models"), "--registry", help="model registry directory"),
        prometheus: str | None = typer.Option(None, "--prometheus", help="read history from this Prometheus URL"),
        model_name: str | None = typer.Option(None, "--model-name", help="vLLM model_name label (--prometheus)"),
        days: float = typer.Option(14.0, "--days", help="days of history to read (--prometheus)"),
    ) -> None:
        """Backtest, select, fit on all history and save to the registry; prints the model card
        (with --signal all: one JSON object of the cards, keyed by signal)."""
        try:
            import json

            from forecaster.registry import Registry, validate_signal, validate_workload
            from forecaster.training import card_fields, evaluate_and_fit, make_config, resolve_models

            validate_workload(workload)
            config = make_config(_horizons(horizons), objective=objective, refits=refits, eval_days=eval_days)
            factories = resolve_models(models)
            wanted = None if signal == "all" else [signal]
            if wanted and signal not in SIGNAL_CHOICES:
                raise _UserError(f"--signal {signal!r} is not one of {', '.join(SIGNAL_CHOICES)} or all")
            frame, native, source = _load_frame(
                trace, prometheus=prometheus, model_name=model_name, days=days, step=bin, signals=wanted,
            )
            bin_s = _choose_bin(bin, native, frame)
            if signal == "all":
                signals = [s for s in SIGNAL_CHOICES if s in frame.columns]
            else:
                signals = [validate_signal(signal)]
            store = Registry(registry)
            cards = {}
            for name in signals:
                series = _series(frame, name, bin_s, source)
                with _ProgressBar(len(factories)) as bar:
                    trained = evaluate_and_fit(
                        series, models=factories, objective=objective, config=config,
                        native_bin_seconds=native, progress=bar,
                    )
                record = trained.selection
                card = store.save(
                    trained.estimator, card_fields(trained, series, workload=workload, signal=name)
                )
                cards[name] = card
                typer.echo(
                    f"saved {workload}/{name} version {card.version} ({card.model}: {record.reason}) "
                    f"in {store.path(workload, name, card.version)}",
                    err=True,
                )
            # stdout holds one JSON value: one card per signal printed in turn was a stream of
            # documents that `jq`/json.loads refuse. One signal prints its card as it always did.
            if signal == "all":
                typer.echo(json.dumps({n: c.model_dump(mode="json") for n, c in cards.items()}, indent=2))
            else:
                typer.echo(cards[signals[0]].model_dump_json(indent=2))
        except _user_errors() as error:
            _fail(_message(error))

    @app.command("forecast")
    def forecast_command(
        workload: str = typer.Option(..., "--workload", help="workload name"),
        horizon: str = typer.Option("2h", "--horizon", help="how far ahead, e.g. 2h"),
        signal: str = typer.Option("requests", help="requests, prompt_tokens or output_tokens"),
        registry: Path = typer.Option(Path("models"), "--registry", help="model registry directory"),
        as_json: bool = typer.Option(False, "--json", help="print a contract.Forecast as JSON"),
    ) -> None:
        """Forecast from the latest good model in the registry (from the end of its training data)."""
        try:
            from datetime import datetime, timezone

            from forecaster.registry import Registry, validate_signal, validate_workload
            from forecaster.series import parse_duration
            from forecaster.service.config import check_horizon, check_horizon_length

            validate_workload(workload)
            validate_signal(signal)
            seconds = parse_duration(horizon).total_seconds()
            # The service's limits (forecaster.service.config): the length now, the steps once the
            # model's bin is known, both before anything is predicted.
            check_horizon_length(seconds, field="--horizon")
            estimator, card, skipped = Registry(registry).load_latest_good(workload, signal)
            for line in skipped:
                typer.echo(f"warning: skipped {line}", err=True)
            check_horizon(seconds, card.bin_seconds, field="--horizon")
            forecast = make_forecast(
                estimator, card, seconds, generated_at=datetime.now(timezone.utc)
            )
            if as_json:
                typer.echo(forecast.model_dump_json(indent=2))
            else:
                _print_forecast(forecast)
        except _user_errors() as error:
            _fail(_message(error))


def make_forecast(estimator, card, horizon_seconds: float, *, generated_at):
    """A contract.Forecast of the bins covering `horizon_seconds` after the model's training data."""
    from forecaster.contract import Forecast, ForecastPoint, quantile_key

    bins = max(1, math.ceil(horizon_seconds / card.bin_seconds))
    frame = estimator.predict(bins, card.quantiles)
    keys = [quantile_key(q) for q in card.quantiles]
    points = [
        ForecastPoint(
            timestamp=stamp.to_pydatetime(),
            mean=float(row["mean"]),
            quantiles={k: float(row[k]) for k in keys},
        )
        for stamp, row in frame.iterrows()
    ]
    return Forecast(
        workload=card.workload, signal=card.signal, model=card.model, model_version=card.version,
        generated_at=generated_at, step_seconds=card.bin_seconds, points=points,
    )


def _print_forecast(forecast) -> None:
    from rich.console import Console
    from rich.table import Table

    keys = list(forecast.points[0].quantiles) if forecast.points else []
    table = Table(
        title=f"{forecast.workload}/{forecast.signal}: {forecast.model} {forecast.model_version} (per second)",
    )
    table.add_column("timestamp (UTC)")
    table.add_column("mean", justify="right")
    for key in keys:
        table.add_column(f"q{key}", justify="right")
    for point in forecast.points:
        table.add_row(
            point.timestamp.strftime("%Y-%m-%d %H:%M"), f"{point.mean:.4g}",
            *(f"{point.quantiles[k]:.4g}" for k in keys),
        )
    Console().print(table)
