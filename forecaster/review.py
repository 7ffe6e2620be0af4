"""Forecast review: the computations behind the review notebooks and `prescaler report`.

Pure functions over pandas objects; no plotting and no I/O here (forecaster/plots.py draws them), so
the notebooks stay thin and everything they show is tested.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.contract import quantile_key
from forecaster.estimators.base import Estimator

REVIEW_QUANTILES: tuple[float, ...] = (0.05, 0.5, 0.9, 0.95)


def horizon_forecasts(
    estimator: Estimator,
    series: pd.Series,
    *,
    start: pd.Timestamp,
    horizon_bins: int,
    quantiles: Sequence[float] = REVIEW_QUANTILES,
    every: int = 1,
) -> pd.DataFrame:
    """What the model would have said `horizon_bins` ahead, for every target bin from `start` on.

    For each origin t (every `every` bins), the estimator forecasts from the history up to t (no
    refit, no peeking: only `series[:t]` is given) and the bin t + horizon is kept. Returns a frame
    indexed by target time with `actual`, `mean` and one column per quantile.
    """
    if horizon_bins < 1:
        raise ValueError(f"horizon_bins must be >= 1, got {horizon_bins}")
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    start = pd.Timestamp(start)
    positions = np.flatnonzero(series.index >= start)
    if len(positions) == 0:
        raise ValueError(f"start {start} is after the end of the series ({series.index[-1]})")
    first_origin = max(int(positions[0]) - horizon_bins, 1)
    rows = []
    for origin in range(first_origin, len(series) - horizon_bins, every):
        history = series.iloc[: origin + 1]
        forecast = estimator.predict(horizon_bins, quantiles, history=history)
        row = forecast.iloc[horizon_bins - 1]
        target = forecast.index[horizon_bins - 1]
        rows.append({"timestamp": target, "actual": series.get(target, np.nan), **row.to_dict()})
    frame = pd.DataFrame(rows).set_index("timestamp")
    return frame[frame.index >= start]


def residual_profile(frame: pd.DataFrame, column: str = "0.5") -> pd.DataFrame:
    """Residuals (actual - forecast) by hour of day and by day of week (UTC), missing actuals masked.

    Returns a long frame with `period` ("hour" or "weekday"), `key` (0-23 or 0-6, Monday=0), `bias`
    (mean residual: positive means the model under-forecasts then), `mae` and `count`.
    """
    residual = (frame["actual"] - frame[column]).dropna()
    parts = []
    for period, keys in (("hour", residual.index.hour), ("weekday", residual.index.day_of_week)):
        grouped = residual.groupby(keys)
        part = pd.DataFrame({
            "bias": grouped.mean(),
            "mae": grouped.apply(lambda r: float(np.mean(np.abs(r)))),
            "count": grouped.size(),
        })
        part.index.name = "key"
        parts.append(part.reset_index().assign(period=period))
    return pd.concat(parts, ignore_index=True)[["period", "key", "bias", "mae", "count"]]


def interval_coverage(frame: pd.DataFrame, lower: float = 0.05, upper: float = 0.95) -> float:
    """Share of observed actuals inside [q_lower, q_upper] (0.9 nominal for 0.05-0.95)."""
    lo, hi = frame[quantile_key(lower)], frame[quantile_key(upper)]
    observed = frame["actual"].notna()
    if not observed.any():
        return float("nan")
    inside = (frame["actual"] >= lo) & (frame["actual"] <= hi)
    return float(inside[observed].mean())


def under_forecast_episodes(frame: pd.DataFrame, quantile: float = 0.9) -> pd.DataFrame:
    """Runs of consecutive bins where the actual exceeded the forecast quantile the controller scales
    on: the moments the autoscaler would have been short of replicas (the SLO risk).

    Returns one row per episode: start, end, bins, worst_excess (actual / forecast - 1 at its worst),
    sorted by worst_excess descending. A missing actual ends an episode (unknown is not a miss).
    """
    key = quantile_key(quantile)
    under = (frame["actual"] > frame[key]).fillna(False).to_numpy()
    ratio = (frame["actual"] / frame[key].where(frame[key] > 0)).to_numpy() - 1.0
    episodes = []
    run_start = None
    for i, flag in enumerate(np.append(under, False)):
        if flag and run_start is None:
            run_start = i
        elif not flag and run_start is not None:
            span = slice(run_start, i)
            episodes.append({
                "start": frame.index[run_start],
                "end": frame.index[i - 1],
                "bins": i - run_start,
                "worst_excess": float(np.nanmax(ratio[span])) if np.isfinite(ratio[span]).any() else float("inf"),
            })
            run_start = None
    columns = ["start", "end", "bins", "worst_excess"]
    result = pd.DataFrame(episodes, columns=columns)
    return result.sort_values("worst_excess", ascending=False, ignore_index=True)


# ---- one review of one model, and the backtest as tables ------------------------------------------
# Added for the notebooks and `prescaler report`: both call these, so what a notebook shows and
# what the HTML report shows are the same numbers.


@dataclass(frozen=True)
class ForecastReview:
    """A model fitted before a review window and judged `horizon_bins` ahead over that window."""

    model: str
    horizon_bins: int
    step_seconds: int
    controller_quantile: float
    train_end: pd.Timestamp | None  # the last bin the model was fitted on (None: reviewed as given)
    context: pd.Series  # the series over the review window and the days before it (for plots)
    frame: pd.DataFrame  # horizon_forecasts(): actual, mean and one column per quantile
    coverage: float  # of the 0.05-0.95 interval (0.9 nominal)
    calibration: pd.DataFrame
    profile: pd.DataFrame
    episodes: pd.DataFrame

    def summary(self) -> dict[str, float | int | str]:
        """The headline numbers (for a table or the report's first paragraph)."""
        key = quantile_key(self.controller_quantile)
        observed = self.frame["actual"].notna()
        under = (self.frame["actual"] > self.frame[key])[observed]
        return {
            "model": self.model,
            "horizon_minutes": self.horizon_bins * self.step_seconds // 60,
            "points": int(observed.sum()),
            "coverage_0.05_0.95": self.coverage,
            "controller_quantile": self.controller_quantile,
            "under_rate": float(under.mean()) if len(under) else float("nan"),  # actual above that quantile
            "under_episodes": int(len(self.episodes)),
            "mae_median": float((self.frame["actual"] - self.frame["0.5"]).abs()[observed].mean()),
        }


def review_forecast(
    series: pd.Series,
    estimator: Estimator,
    *,
    review_days: float = 2.0,
    context_days: float = 1.0,
    horizon_bins: int = 1,
    quantiles: Sequence[float] = REVIEW_QUANTILES,
    controller_quantile: float = 0.9,
    refit: bool = True,
) -> ForecastReview:
    """Fit `estimator` on the series before the last `review_days`, then review it there.

    The fit sees nothing of the review window; each forecast in it comes from the history up to its
    origin (horizon_forecasts), as the service forecasts between refits. `refit=False` reviews an
    already fitted estimator as it is (one loaded from the registry): if its training window covers
    the review window the scores are in-sample and flattering, which the caller should say.
    """
    if review_days <= 0:
        raise ValueError(f"review_days must be > 0, got {review_days}")
    if context_days < 0:
        raise ValueError(f"context_days must be >= 0, got {context_days}")
    qs = sorted({*map(float, quantiles), 0.05, 0.5, 0.95, float(controller_quantile)})
    step = int(pd.Timedelta(series.index.freq or (series.index[1] - series.index[0])).total_seconds())
    review_bins = int(round(review_days * 86400 / step))
    if review_bins >= len(series) // 2 or review_bins < 1:
        raise ValueError(
            f"review_days {review_days:g} ({review_bins} bins of {step} s) must leave at least as much "
            f"history before it: the series has {len(series)} bins"
        )
    start = series.index[-review_bins]
    train = series.iloc[:-review_bins]
    if refit:
        estimator.fit(train)
    frame = horizon_forecasts(estimator, series, start=start, horizon_bins=horizon_bins, quantiles=qs)
    context_start = start - pd.Timedelta(days=context_days)
    return ForecastReview(
        model=str(getattr(estimator, "name", type(estimator).__name__)),
        horizon_bins=horizon_bins,
        step_seconds=step,
        controller_quantile=float(controller_quantile),
        train_end=train.index[-1] if refit else None,
        context=series[series.index >= context_start],
        frame=frame,
        coverage=interval_coverage(frame),
        calibration=quantile_calibration(frame),
        profile=residual_profile(frame),
        episodes=under_forecast_episodes(frame, controller_quantile),
    )


def quantile_calibration(frame: pd.DataFrame) -> pd.DataFrame:
    """For each quantile column, the share of observed actuals at or below it against its level.

    A calibrated q0.9 has 90% of actuals at or below it; fewer means the model under-forecasts at
    the level the controller scales on. Returns columns quantile, nominal, observed, points.
    """
    observed = frame["actual"].notna()
    rows = []
    for column in frame.columns:
        try:
            level = float(column)
        except ValueError:
            continue  # "actual", "mean"
        if not 0.0 < level < 1.0:
            continue
        below = (frame["actual"] <= frame[column])[observed]
        rows.append({
            "quantile": column,
            "nominal": level,
            "observed": float(below.mean()) if len(below) else float("nan"),
            "points": int(observed.sum()),
        })
    return pd.DataFrame(rows, columns=["quantile", "nominal", "observed", "points"]).sort_values(
        "nominal", ignore_index=True
    )


LEADERBOARD_COLUMNS = (
    "horizon", "model", "baseline", "mase", "smape", "pinball_mean", "pinball_q", "coverage90",
    "under_rate", "fit_seconds", "predict_seconds", "n_points",
)


def _backtest_parts(result) -> tuple[dict, dict[str, bool], float, list[str]]:
    """(scores table, model -> is_baseline, controller quantile, horizon labels) from a BacktestResult
    or its to_dict() (what a model card stores under `backtest`)."""
    if isinstance(result, dict):
        try:
            table = result["scores"]
            baselines = {m: bool(v.get("is_baseline", False)) for m, v in result["models"].items()}
            quantile = float(result["controller_quantile"])
            horizons = [h["label"] for h in result["horizons"]]
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"backtest record lacks {exc}: expected BacktestResult.to_dict()'s keys "
                             "scores, models, controller_quantile, horizons") from exc
        return table, baselines, quantile, horizons
    baselines = {m: bool(run.is_baseline) for m, run in result.runs.items()}
    return (result.scores_table(), baselines, float(result.config.controller_quantile),
            [h.label for h in result.horizons])


def leaderboard_frame(result) -> pd.DataFrame:
    """A backtest's scores as one row per (horizon, model), best pinball at the controller's quantile
    first within each horizon (`pinball_q`, the default selection objective). `result` is a
    BacktestResult or its to_dict() (a model card's `backtest`)."""
    table, baselines, quantile, horizons = _backtest_parts(result)
    key = quantile_key(quantile)
    rows = []
    for horizon, row in table.items():
        for model, score in row.items():
            rows.append({
                "horizon": horizon,
                "model": model,
                "baseline": baselines.get(model, False),
                "mase": score["mase"],
                "smape": score["smape"],
                "pinball_mean": score["pinball"]["mean"],
                "pinball_q": score["pinball"].get(key, float("nan")),
                "coverage90": score["coverage90"],
                "under_rate": score["under_rate"],
                "fit_seconds": score["fit_seconds"],
                "predict_seconds": score["predict_seconds"],
                "n_points": score["n_points"],
            })
    frame = pd.DataFrame(rows, columns=list(LEADERBOARD_COLUMNS))
    order = {label: i for i, label in enumerate(horizons)}
    frame["_h"] = frame["horizon"].map(order)
    return frame.sort_values(["_h", "pinball_q", "model"], ignore_index=True).drop(columns="_h")


def model_runs_frame(result) -> pd.DataFrame:
    """Every model the backtest tried, scored or not: status, why not, fits, fit and predict times.
    `result` is a BacktestResult or its to_dict()."""
    if isinstance(result, dict):
        rows = [
            {
                "model": name,
                "baseline": bool(run.get("is_baseline", False)),
                "status": run.get("status", "?"),
                "reason": run.get("reason") or "",
                "n_fits": int(run.get("n_fits", 0)),
                "fit_seconds": float(run.get("fit_seconds", float("nan"))),
                "predict_seconds": float(run.get("predict_seconds", float("nan"))),
            }
            for name, run in result.get("models", {}).items()
        ]
        return pd.DataFrame(rows, columns=["model", "baseline", "status", "reason", "n_fits", "fit_seconds",
                                           "predict_seconds"])
    rows = [
        {
            "model": name,
            "baseline": bool(run.is_baseline),
            "status": run.status,
            "reason": run.reason or "",
            "n_fits": run.n_fits,
            "fit_seconds": run.fit_seconds,
            "predict_seconds": run.predict_seconds,
        }
        for name, run in result.runs.items()
    ]
    return pd.DataFrame(rows, columns=["model", "baseline", "status", "reason", "n_fits", "fit_seconds",
                                       "predict_seconds"])


def selection_frame(record) -> pd.DataFrame:
    """A SelectionRecord's objective per model (lower is better) with each model's role in the choice.
    `record` is a SelectionRecord or its to_dict() (a model card's `selection`)."""
    if isinstance(record, dict):
        from forecaster.selection import SelectionRecord

        try:
            record = SelectionRecord(
                objective=record["objective"], selected=record["selected"],
                best_baseline=record.get("best_baseline"), best_model=record.get("best_model"),
                scores=dict(record.get("scores") or {}), reason=str(record.get("reason", "")),
            )
        except KeyError as exc:
            raise ValueError(f"selection record lacks {exc} (has {sorted(record)})") from exc
    roles: dict[str, list[str]] = {}
    for role, name in (("best baseline", record.best_baseline), ("best model", record.best_model)):
        if name is not None:
            roles.setdefault(name, []).append(role)
    roles.setdefault(record.selected, []).insert(0, "selected")
    frame = pd.DataFrame(
        [{"model": m, "objective": record.objective, "score": s, "role": ", ".join(roles.get(m, []))}
         for m, s in record.scores.items()],
        columns=["model", "objective", "score", "role"],
    )
    # NaN scores (a model missing at some horizon) sort last: they could not be selected.
    return frame.sort_values("score", na_position="last", ignore_index=True)
