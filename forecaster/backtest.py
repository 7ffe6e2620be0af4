"""Rolling-origin backtest: how well each model would have forecast the last days of a series.

Origins are spread every `origin_every` over the final `eval_days` (default: hourly over 3 days,
72 origins). At each origin a model sees only the data up to and including that bin, and is scored
on the bin `h` bins later for each horizon: the bin that ends at origin + horizon, where the origin
is the end of its bin and a horizon shorter than a bin (or not a multiple of it) rounds up to whole
bins. Refitting statsmodels or Prophet at all 72 origins is too slow for the 60 s budget, so each
model is fitted at `refits` origins (the first of each of that many consecutive groups) and, between
refits, forecasts from the later origin with its fitted parameters (Estimator.predict(history=...)),
which is how the service runs it too: refit every few hours, forecast every few minutes.

Scores per model and horizon (forecaster.metrics): MASE against one scale, the in-sample daily
seasonal-naive MAE of the data before the first origin (the same denominator for every model, so
MASE ranks like MAE), sMAPE, pinball loss per quantile and their mean, coverage of the 0.9
interval [q0.05, q0.95], and the under-forecast rate at the controller's quantile. A model whose
history is too short raises InsufficientHistory and is recorded as skipped with the reason; any
other error records it as failed, so one broken model cannot hide the others' scores.

The backtest refuses a bin finer than the trace's native one: a 1-minute file that repeats each
10-minute average makes a naive forecaster look perfect inside a bin (../shared/traces/README.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from forecaster import metrics
from forecaster.contract import quantile_key
from forecaster.errors import InsufficientHistory
from forecaster.estimators.base import Estimator
from forecaster.series import format_duration, parse_duration, step_seconds

# The 0.9 interval is the central one between these quantiles (issue 2: "coverage of the 0.9 interval").
INTERVAL = (0.05, 0.95)
DEFAULT_QUANTILES = (0.05, 0.5, 0.9, 0.95)
DEFAULT_HORIZONS = ("15m", "60m")

# (model, refits done, refits planned): called after every fit so a progress bar can move.
Progress = Callable[[str, int, int], None]
ModelFactory = Callable[[], Estimator]


class BacktestConfig(BaseModel):
    """Settings of one backtest; durations accept '15m', '1h' or seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    horizons: tuple[int, ...] = Field(default=(900, 3600), description="horizons in seconds")
    eval_days: float = Field(default=3.0, gt=0, description="span of the origins at the series' end")
    origin_every: int = Field(default=3600, gt=0, description="seconds between origins")
    refits: int = Field(default=10, ge=1, description="fits per model; origins between reuse the fit")
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    controller_quantile: float = Field(default=0.9, gt=0, lt=1)

    @field_validator("horizons", mode="before")
    @classmethod
    def _parse_horizons(cls, value):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        return tuple(int(parse_duration(v).total_seconds()) for v in value)

    @field_validator("origin_every", mode="before")
    @classmethod
    def _parse_every(cls, value):
        return int(parse_duration(value).total_seconds())

    @field_validator("quantiles", mode="before")
    @classmethod
    def _sort_quantiles(cls, value):
        qs = sorted({float(q) for q in value})
        for q in qs:
            quantile_key(q)  # raises on a level outside (0, 1)
        return tuple(qs)

    @model_validator(mode="after")
    def _consistent(self) -> "BacktestConfig":
        if not self.horizons:
            raise ValueError("horizons must name at least one horizon")
        if len(set(self.horizons)) != len(self.horizons):
            raise ValueError(f"horizons repeat: {[format_duration(h) for h in self.horizons]}")
        needed = {*INTERVAL, self.controller_quantile}
        missing = sorted(q for q in needed if q not in self.quantiles)
        if missing:
            raise ValueError(
                f"quantiles {list(self.quantiles)} must include {missing}: the 0.9 interval needs "
                f"{INTERVAL[0]} and {INTERVAL[1]}, and under_rate the controller_quantile "
                f"({self.controller_quantile})"
            )
        return self


@dataclass(frozen=True)
class Horizon:
    label: str  # as asked: "15m"
    seconds: int  # as asked
    bins: int  # rounded up to whole bins

    def effective_seconds(self, step: int) -> int:
        return self.bins * step


@dataclass(frozen=True)
class HorizonScore:
    mase: float
    smape: float
    pinball: dict[str, float]  # quantile key -> loss, plus "mean" over the quantiles
    coverage90: float
    under_rate: float
    n_points: int


@dataclass(frozen=True)
class ModelRun:
    model: str
    is_baseline: bool
    status: str  # "ok", "skipped" (InsufficientHistory) or "failed" (any other error)
    reason: str | None = None
    fit_seconds: float = 0.0  # mean seconds per fit
    predict_seconds: float = 0.0  # mean seconds per predict call
    n_fits: int = 0
    scores: dict[str, HorizonScore] = field(default_factory=dict)  # horizon label -> scores


@dataclass(frozen=True)
class BacktestResult:
    bin_seconds: int
    horizons: tuple[Horizon, ...]
    origins: tuple[pd.Timestamp, ...]
    refit_origins: tuple[pd.Timestamp, ...]
    scale: metrics.Scale
    config: BacktestConfig
    runs: dict[str, ModelRun]

    @property
    def scored(self) -> list[str]:
        return [name for name, run in self.runs.items() if run.status == "ok"]

    def scores_table(self) -> dict[str, dict[str, dict]]:
        """{horizon label: {model: {mase, smape, pinball, coverage90, under_rate, fit_seconds,
        predict_seconds, n_points}}} for the models that were scored."""
        table: dict[str, dict[str, dict]] = {}
        for horizon in self.horizons:
            row = {}
            for name in self.scored:
                run = self.runs[name]
                score = run.scores[horizon.label]
                row[name] = {
                    "mase": score.mase,
                    "smape": score.smape,
                    "pinball": dict(score.pinball),
                    "coverage90": score.coverage90,
                    "under_rate": score.under_rate,
                    "fit_seconds": run.fit_seconds,
                    "predict_seconds": run.predict_seconds,
                    "n_points": score.n_points,
                }
            table[horizon.label] = row
        return table

    def to_dict(self) -> dict:
        return {
            "bin_seconds": self.bin_seconds,
            "horizons": [
                {"label": h.label, "seconds": h.seconds, "bins": h.bins,
                 "effective_seconds": h.effective_seconds(self.bin_seconds)}
                for h in self.horizons
            ],
            "origins": {
                "count": len(self.origins),
                "first": self.origins[0].isoformat(),
                "last": self.origins[-1].isoformat(),
                "every_seconds": self.config.origin_every,
                "refits": [t.isoformat() for t in self.refit_origins],
            },
            "quantiles": list(self.config.quantiles),
            "controller_quantile": self.config.controller_quantile,
            "mase_scale": self.scale.to_dict(),
            "scores": self.scores_table(),
            "models": {
                name: {
                    "status": run.status,
                    "is_baseline": run.is_baseline,
                    "reason": run.reason,
                    "fit_seconds": run.fit_seconds,
                    "predict_seconds": run.predict_seconds,
                    "n_fits": run.n_fits,
                }
                for name, run in self.runs.items()
            },
        }


@dataclass(frozen=True)
class _Plan:
    origins: np.ndarray  # positions of the last bin each forecast may see
    groups: list[np.ndarray]  # origins sharing one fit; the fit is at the group's first origin
    horizons: tuple[Horizon, ...]
    scale: metrics.Scale


def horizon_label(seconds: int) -> str:
    """'15m', '60m', '120m' (minutes, as the controller's lead times are written), else '90s'."""
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def make_horizons(seconds: Sequence[int], step: int) -> tuple[Horizon, ...]:
    return tuple(Horizon(horizon_label(s), int(s), max(1, math.ceil(s / step))) for s in seconds)


def plan_origins(series: pd.Series, config: BacktestConfig) -> _Plan:
    """Where to forecast from and where to refit, fixed by the series length and the config alone."""
    step = step_seconds(series)
    n = len(series)
    horizons = make_horizons(config.horizons, step)
    max_bins = max(h.bins for h in horizons)
    every = max(1, round(config.origin_every / step))
    # The evaluation window is the last eval_days, but never more than half the series: the models
    # need at least as much history before the first origin as the span they are judged on.
    window = min(int(config.eval_days * metrics.DAY_SECONDS / step), n // 2)
    last = n - 1 - max_bins
    first = n - window
    if last < first or first < 2:
        raise InsufficientHistory(
            f"series of {n} bins at {step} s is too short to backtest a {format_duration(max_bins * step)} "
            f"horizon (needs at least {2 * (max_bins + 2)} bins)"
        )
    # Anchored at the end so the most recent data is always judged, then spaced back from there.
    origins = np.arange(last, first - 1, -every)[::-1]
    groups = [g for g in np.array_split(origins, min(config.refits, origins.size)) if g.size]
    scale = metrics.naive_scale(series.to_numpy(dtype="float64")[: origins[0] + 1], step)
    return _Plan(origins=origins, groups=groups, horizons=horizons, scale=scale)


def _factories(models: Sequence[str] | Mapping[str, ModelFactory]) -> dict[str, ModelFactory]:
    if isinstance(models, Mapping):
        return dict(models)
    from forecaster.estimators import make_estimator

    return {name: (lambda name=name: make_estimator(name)) for name in models}


def _check_frame(frame: pd.DataFrame, model: str, horizon: int, keys: list[str]) -> np.ndarray:
    """The (horizon, 1 + len(keys)) matrix [mean, quantiles...], after checking what came back."""
    missing = [k for k in ["mean", *keys] if k not in frame.columns]
    if missing:
        raise ValueError(f"{model}: forecast lacks columns {missing} (has {list(frame.columns)})")
    if len(frame) != horizon:
        raise ValueError(f"{model}: forecast has {len(frame)} rows, asked for {horizon}")
    columns = ["mean", *keys]
    # The estimators return exactly these columns in this order; selecting them costs more than it saves.
    frame = frame if list(frame.columns) == columns else frame[columns]
    values = frame.to_numpy(dtype="float64")
    if not np.isfinite(values).all():
        raise ValueError(f"{model}: forecast holds NaN or infinite values")
    quant = values[:, 1:]
    if np.any(np.diff(quant, axis=1) < -1e-9 * np.maximum(1.0, np.abs(quant[:, :-1]))):
        raise ValueError(f"{model}: quantiles decrease with the level (columns {keys})")
    return values


def _score(actual: np.ndarray, forecast: np.ndarray, keys: list[str], config: BacktestConfig,
           scale: metrics.Scale) -> HorizonScore:
    mean = forecast[:, 0]
    column = {k: forecast[:, 1 + i] for i, k in enumerate(keys)}
    losses = {k: metrics.pinball(actual, column[k], q) for k, q in zip(keys, config.quantiles)}
    losses["mean"] = float(np.mean(list(losses.values())))
    return HorizonScore(
        mase=metrics.mase(actual, mean, scale),
        smape=metrics.smape(actual, mean),
        pinball=losses,
        coverage90=metrics.coverage(
            actual, column[quantile_key(INTERVAL[0])], column[quantile_key(INTERVAL[1])]
        ),
        under_rate=metrics.under_rate(actual, column[quantile_key(config.controller_quantile)]),
        n_points=metrics.n_observed(actual),
    )


def _finish(progress: Progress | None, name: str, total: int) -> None:
    """A model that stops early still reports all its refits done, so a progress bar completes."""
    if progress is not None:
        progress(name, total, total)


def _run_model(
    name: str, factory: ModelFactory, series: pd.Series, plan: _Plan, config: BacktestConfig,
    progress: Progress | None,
) -> ModelRun:
    keys = [quantile_key(q) for q in config.quantiles]
    max_bins = max(h.bins for h in plan.horizons)
    values = series.to_numpy(dtype="float64")
    forecasts = np.empty((plan.origins.size, max_bins, 1 + len(keys)))
    fit_total = predict_total = 0.0
    n_predicts = 0
    is_baseline = False
    row = 0
    try:
        for done, group in enumerate(plan.groups, start=1):
            estimator = factory()
            is_baseline = bool(getattr(estimator, "is_baseline", False))
            started = time.perf_counter()
            estimator.fit(series.iloc[: int(group[0]) + 1])
            fit_total += time.perf_counter() - started
            for origin in group.tolist():
                started = time.perf_counter()
                if origin == group[0]:
                    frame = estimator.predict(max_bins, config.quantiles)
                else:
                    frame = estimator.predict(max_bins, config.quantiles, history=series.iloc[: origin + 1])
                predict_total += time.perf_counter() - started
                n_predicts += 1
                forecasts[row] = _check_frame(frame, name, max_bins, keys)
                row += 1
            if progress is not None:
                progress(name, done, len(plan.groups))
    except InsufficientHistory as error:
        _finish(progress, name, len(plan.groups))
        return ModelRun(name, is_baseline, "skipped", str(error))
    except Exception as error:  # noqa: BLE001 - recorded, shown on the leaderboard, never swallowed silently
        _finish(progress, name, len(plan.groups))
        return ModelRun(name, is_baseline, "failed", f"{type(error).__name__}: {error}")
    scores = {}
    for horizon in plan.horizons:
        actual = values[plan.origins + horizon.bins]
        scores[horizon.label] = _score(actual, forecasts[:, horizon.bins - 1, :], keys, config, plan.scale)
    return ModelRun(
        name, is_baseline, "ok", None,
        fit_seconds=fit_total / len(plan.groups),
        predict_seconds=predict_total / max(1, n_predicts),
        n_fits=len(plan.groups),
        scores=scores,
    )


def backtest(
    series: pd.Series,
    models: Sequence[str] | Mapping[str, ModelFactory],
    config: BacktestConfig | None = None,
    *,
    native_bin_seconds: int | None = None,
    progress: Progress | None = None,
) -> BacktestResult:
    """Backtest each model (catalogue names, or name -> factory of a fresh estimator) on `series`.

    `series` is a prepared rate series (forecaster.series). `native_bin_seconds` is the source's own
    bin when known; a series binned finer than it is refused.
    """
    config = config or BacktestConfig()
    if not isinstance(series.index, pd.DatetimeIndex) or series.index.tz is None:
        raise TypeError("backtest() needs a series on a tz-aware DatetimeIndex (see forecaster.series)")
    step = step_seconds(series)
    if native_bin_seconds is not None and step < native_bin_seconds:
        raise ValueError(
            f"bin {format_duration(step)} is finer than the trace's native bin "
            f"{format_duration(native_bin_seconds)}: values inside a native bin repeat, so a naive "
            f"forecaster would look perfect; backtest at {format_duration(native_bin_seconds)} or coarser"
        )
    factories = _factories(models)
    if not factories:
        raise ValueError("no model to backtest")
    plan = plan_origins(series, config)
    runs = {
        name: _run_model(name, factory, series, plan, config, progress)
        for name, factory in factories.items()
    }
    index = series.index
    return BacktestResult(
        bin_seconds=step,
        horizons=plan.horizons,
        origins=tuple(index[plan.origins]),
        refit_origins=tuple(index[[int(g[0]) for g in plan.groups]]),
        scale=plan.scale,
        config=config,
        runs=runs,
    )
