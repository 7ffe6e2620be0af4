"""Stage 2, predictive: the forecast one lead time ahead -> replicas, or abstain with a reason.

For each configured signal: the chosen quantile's maximum over the bins overlapping
[now + lead, now + lead + interval] (the same overlap rule as contract.Forecast.window_max), through
the capacity model. A signal's forecast is unusable when it is
- missing (ForecastMissing): none given, the quantile absent, a non-finite value;
- stale (ForecastStale): generated more than forecast.maxAge ago, or its points end before the
  window does (a horizon too short for the lead time);
- inaccurate (ForecastInaccurate): the median relative error of its last `liveErrorSamples` matured
  forecasts exceeds maxLiveError (judged once `liveErrorMinSamples` have matured).
The stage uses the usable signals and abstains when none is usable. Using part of the signals is
safe: decide() takes the maximum with the reactive stage, so a forecast can only add replicas.

Live error: each call remembers the forecast mean for the bin containing now + lead (one entry per
signal and bin); when that bin is over, the next call scores it against the observed rate over the
last step (PredictiveInputs.observed_rates). Error = |predicted - observed| / max(observed, one
replica's planned rate of that signal): relative to the load, floored at one replica so that errors
of a fraction of a replica at night (near-zero traffic) do not mark a good model unhealthy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple
from functools import lru_cache

from forecaster.contract import Forecast, quantile_key
from controller.policy import capacity as capacity_model
from controller.policy.memo import IdentityMemo, TupleMemo
from controller.policy.spec import CapacitySpec, PredictiveAutoscalerSpec
from controller.policy.types import (
    MAX_OUTCOMES_PER_SIGNAL,
    MAX_PENDING_FORECASTS,
    ForecastOutcome,
    PendingForecast,
    PolicyInputError,
    PredictiveInputs,
    Reason,
    StageResult,
)


class PredictiveResult(NamedTuple):
    """The stage's recommendation, the ForecastHealthy condition and the updated bookkeeping."""

    stage: StageResult
    healthy: bool
    health_reason: str
    health_message: str
    live_error: Mapping[str, float]
    pending: tuple[PendingForecast, ...]
    outcomes: tuple[ForecastOutcome, ...]


def _hhmm(seconds: float) -> str:
    """HH:MM:SS (UTC) of a Unix time, by arithmetic: strftime cost a fifth of a decide() call."""
    s = int(seconds) % 86400
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


@lru_cache(maxsize=64)
def _key(q: float) -> str:
    return quantile_key(q)


class _Settings(NamedTuple):
    """What the stage reads of a spec, derived once per spec object (memo.py)."""

    configured: bool                 # spec.forecast and spec.capacity are both set
    signals: tuple[str, ...]         # spec.forecast_signals
    key: str                         # the quantile's key, "0.9"
    per_replica: dict[str, float]    # forecast signal -> its capacity.perReplica rate
    per_replica_text: dict[str, str]  # the same rates as the message writes them (:.4g)
    utilization_text: str            # " at 80% utilization"


def _settings(spec: PredictiveAutoscalerSpec) -> _Settings:
    fc, cap = spec.forecast, spec.capacity
    if fc is None or cap is None:
        return _Settings(False, spec.forecast_signals, "", {}, {}, "")
    signals = spec.forecast_signals
    # Only the forecast signals reach the capacity model (the rates come from their forecasts).
    per = {s: r for s in signals if (r := cap.per_replica.rate(s)) is not None}
    return _Settings(True, signals, _key(fc.quantile), per, {s: f"{r:.4g}" for s, r in per.items()},
                     f" at {cap.target_utilization:.0%} utilization")


_SETTINGS: IdentityMemo[_Settings] = IdentityMemo(_settings)


class ForecastView:
    """A Forecast's numbers as the stage reads them, derived once per Forecast object (memo.py).

    Times are Unix seconds computed exactly as the stage did from the datetimes
    (`datetime.timestamp()`), so every comparison gives the same result. A quantile's values are
    read from the points the first time a key is asked for; from the second time on, from a column
    (a tuple over the points, None where a point lacks the quantile) built then: a forecast seen
    once costs no more than reading its window, one seen at every sync is indexed once.
    """

    __slots__ = ("n", "step", "generated", "first", "last_end", "_columns")

    def __init__(self, forecast: Forecast) -> None:
        points = forecast.points
        self.n = len(points)
        self.step = forecast.step_seconds
        self.generated = forecast.generated_at.timestamp()
        self.first = points[0].timestamp.timestamp() if points else math.nan
        self.last_end = points[-1].timestamp.timestamp() + self.step if points else math.nan
        # key -> None (asked once) or (the column, whether every point has the key)
        self._columns: dict[str, tuple[tuple[float | None, ...], bool] | None] = {}

    def window(self, forecast: Forecast, key: str, lo: int, hi: int) -> tuple[float, ...] | list[float]:
        """The quantile `key` of bins lo..hi (0 <= lo <= hi < n). Raises KeyError when one lacks it.

        `forecast` is the Forecast this view was made from (not kept here, so the memo never keeps
        a forecast's points alive).
        """
        columns = self._columns
        found = columns.get(key)
        if found is None:
            if key not in columns:
                columns[key] = None  # first use: read the window's points only
                points = forecast.points
                return [points[i].quantiles[key] for i in range(lo, hi + 1)]
            values = tuple(p.quantiles.get(key) for p in forecast.points)
            found = columns[key] = (values, None not in values)
        values, complete = found
        window = values[lo:hi + 1]
        if not complete and None in window:
            raise KeyError(key)
        return window


_VIEWS: IdentityMemo[ForecastView] = IdentityMemo(ForecastView)


def score_matured(pending: tuple[PendingForecast, ...], outcomes: tuple[ForecastOutcome, ...],
                  observed: Mapping[str, float | None], capacity: CapacitySpec, now: float,
                  keep: int = MAX_OUTCOMES_PER_SIGNAL
                  ) -> tuple[tuple[PendingForecast, ...], tuple[ForecastOutcome, ...]]:
    """Move the pending forecasts whose bin is over into outcomes, scored against `observed`.

    A bin is scored by the first call in [bin end, bin end + step / 2]: the observed rate is the rate
    over the last step, which then overlaps the bin by at least half. Later than that the forecast
    is dropped unscored rather than compared with a different period. The newest `keep` outcomes of
    each signal are kept (the live error's window).
    """
    for p in pending:
        if now >= p.target + p.step:
            break
    else:
        return pending, outcomes  # nothing has matured (or nothing pending): the common case, kept cheap
    still: list[PendingForecast] = []
    new: list[ForecastOutcome] = []
    for p in pending:
        end = p.target + p.step
        if now < end:
            still.append(p)
            continue
        rate = observed.get(p.signal)
        if rate is None or not math.isfinite(rate) or now > end + p.step / 2:
            if rate is None and now <= end + p.step / 2:
                still.append(p)  # no observation yet; the next call may have one
            continue
        per_replica = capacity.per_replica.rate(p.signal) or 0.0
        denominator = max(rate, per_replica * capacity.target_utilization, 1e-12)
        new.append(ForecastOutcome(p.signal, p.target, p.predicted, rate, abs(p.predicted - rate) / denominator))
    if not new:
        return tuple(still), outcomes
    merged = outcomes + tuple(new)
    # Keep the newest `keep` per signal.
    keep = min(keep, MAX_OUTCOMES_PER_SIGNAL)
    counts: dict[str, int] = {}
    kept: list[ForecastOutcome] = []
    for o in reversed(merged):
        n = counts.get(o.signal, 0)
        if n < keep:
            counts[o.signal] = n + 1
            kept.append(o)
    kept.reverse()
    return tuple(still), tuple(kept)


def live_errors(outcomes: tuple[ForecastOutcome, ...], signals: tuple[str, ...], samples: int,
                min_samples: int) -> dict[str, float]:
    """Median relative error of the last `samples` outcomes per signal, where at least `min_samples`."""
    result: dict[str, float] = {}
    if len(outcomes) < min_samples:
        return result
    for signal in signals:
        errors = [o.error for o in outcomes if o.signal == signal][-samples:]
        if len(errors) >= min_samples:
            errors.sort()
            mid = len(errors) // 2
            result[signal] = errors[mid] if len(errors) % 2 else (errors[mid - 1] + errors[mid]) / 2
    return result


class _LiveErrorSummary(NamedTuple):
    errors: dict[str, float]  # live_errors(); copied before it leaves the stage
    shown: str                # "requests 5%, prompt_tokens 7%", as the ForecastHealthy message lists them


def _live_error_summary(outcomes: tuple[ForecastOutcome, ...], signals: tuple[str, ...], samples: int,
                        min_samples: int) -> _LiveErrorSummary:
    errors = live_errors(outcomes, signals, samples, min_samples)
    return _LiveErrorSummary(errors, ", ".join(f"{s} {errors[s]:.0%}" for s in signals if s in errors))


# The outcomes tuple is passed on unchanged by every sync where no forecast matures (3 of 4 at a
# 15 s sync and 1-minute bins), so its live errors are computed once per tuple.
_LIVE_ERRORS: TupleMemo[_LiveErrorSummary] = TupleMemo(_live_error_summary)


def _window_max(forecast: Forecast, key: str, start: float, end: float, first: float | None = None) -> float | None:
    """contract.Forecast.window_max on Unix seconds, with the points' regular spacing used to index.

    None when no bin overlaps. Raises KeyError when the quantile is absent from a bin in the window.
    `first` is the first point's Unix time when the caller has it already.
    """
    view = _VIEWS(forecast)
    return _view_window_max(forecast, view, key, start, end, view.first if first is None else first)


def _view_window_max(forecast: Forecast, view: ForecastView, key: str, start: float, end: float,
                     first: float) -> float | None:
    step = view.step
    n = view.n
    # A bin stamped t overlaps [start, end] when t <= end and t + step > start: the first such bin
    # is floor((start - first) / step), the last floor((end - first) / step); one correction step
    # each guards the float division at exact bin edges.
    lo = max(0, math.floor((start - first) / step))
    if lo > 0 and first + lo * step > start:
        lo -= 1
    if first + (lo + 1) * step <= start:
        lo += 1
    hi = min(n - 1, math.floor((end - first) / step))
    if hi + 1 < n and first + (hi + 1) * step <= end:
        hi += 1
    elif hi >= 0 and first + hi * step > end:
        hi -= 1
    if lo > hi:
        return None
    # max() keeps the first of equal values and, like the comparison loop it replaces
    # (`if value > best`), never replaces by a NaN, nor replaces a NaN in the first bin.
    return max(view.window(forecast, key, lo, hi))


def recommend(spec: PredictiveAutoscalerSpec, inputs: PredictiveInputs | None,
              pending: tuple[PendingForecast, ...], outcomes: tuple[ForecastOutcome, ...],
              now: float) -> PredictiveResult:
    """The predictive recommendation and the updated live-error bookkeeping."""
    settings = _SETTINGS(spec)
    if not settings.configured:
        msg = "spec.forecast is not set"
        return PredictiveResult(StageResult(None, Reason.FORECAST_NOT_CONFIGURED, msg), False,
                                Reason.FORECAST_NOT_CONFIGURED, msg, {}, pending, outcomes)
    fc = spec.forecast
    cap = spec.capacity
    signals = settings.signals
    if inputs is None:
        msg = "no forecast inputs this sync"
        return PredictiveResult(StageResult(None, Reason.FORECAST_MISSING, msg), False, Reason.FORECAST_MISSING,
                                msg, live_errors(outcomes, signals, fc.live_error_samples, fc.live_error_min_samples),
                                pending, outcomes)
    lead = inputs.lead_time_seconds
    if isinstance(lead, bool) or not isinstance(lead, (int, float)) or not math.isfinite(lead) or lead < 0:
        raise PolicyInputError(f"predictive.lead_time_seconds must be a finite number >= 0, got {lead!r}")

    pending, outcomes = score_matured(pending, outcomes, inputs.observed_rates, cap, now, fc.live_error_samples)
    summary = _LIVE_ERRORS(outcomes, signals, fc.live_error_samples, fc.live_error_min_samples)
    errors = dict(summary.errors)

    key = settings.key
    start = now + lead
    end = start + fc.interval_seconds
    rates: dict[str, float] = {}
    problems: list[tuple[str, str]] = []  # (reason, message) per unusable signal
    new_pending = list(pending)
    forecasts = inputs.forecasts
    for signal in signals:
        forecast = forecasts.get(signal)
        if forecast is None:
            problems.append((Reason.FORECAST_MISSING, f"no {signal} forecast"))
            continue
        if forecast.signal != signal:
            raise PolicyInputError(f"predictive.forecasts[{signal!r}] holds a forecast of {forecast.signal!r}")
        view = _VIEWS(forecast)  # the forecast's times and columns, derived once per Forecast object
        if not view.n:
            problems.append((Reason.FORECAST_MISSING, f"the {signal} forecast has no points"))
            continue
        age = now - view.generated
        if age > fc.max_age_seconds:
            problems.append((Reason.FORECAST_STALE, f"the {signal} forecast is {age:.0f} s old "
                                                     f"(maxAge {fc.max_age_seconds:.0f} s)"))
            continue
        step = view.step
        last_end = view.last_end
        if last_end <= end:
            problems.append((Reason.FORECAST_STALE, f"the {signal} forecast ends at {_hhmm(last_end)}, before the "
                                                     f"window [{_hhmm(start)}, {_hhmm(end)}] does"))
            continue
        first = view.first
        try:
            value = _view_window_max(forecast, view, key, start, end, first)
        except KeyError:
            problems.append((Reason.FORECAST_MISSING, f"the {signal} forecast has no quantile {key} "
                                                       f"(has {sorted(forecast.points[0].quantiles)})"))
            continue
        if value is None or not math.isfinite(value):
            problems.append((Reason.FORECAST_MISSING, f"the {signal} forecast has no finite value over "
                                                       f"[{_hhmm(start)}, {_hhmm(end)}]"))
            continue
        # Remember the point forecast for the bin containing now + lead, to score it once it is over;
        # one per signal and bin: none if a remembered bin (of this or an earlier, possibly
        # differently aligned forecast) already covers now + lead.
        index = math.floor((start - first) / step)
        if 0 <= index < view.n:
            target = first + index * step
            for p in new_pending:
                if p.target <= start < p.target + p.step and p.signal == signal:
                    break
            else:
                mean = forecast.points[index].mean
                if math.isfinite(mean):
                    new_pending.append(PendingForecast(signal, target, float(step), float(mean)))
        err = errors.get(signal)
        if err is not None and err > fc.max_live_error:
            problems.append((Reason.FORECAST_INACCURATE, f"the {signal} forecast's median live error is "
                                                          f"{err:.0%} (maxLiveError {fc.max_live_error:.0%})"))
            continue
        rates[signal] = value
    if len(new_pending) > MAX_PENDING_FORECASTS:
        new_pending = new_pending[-MAX_PENDING_FORECASTS:]
    pending_out = tuple(new_pending)

    healthy = not problems
    if healthy:
        health_reason = Reason.FORECAST_HEALTHY
        shown = summary.shown
        health_message = f"forecasts fresh; median live error {shown}" if shown else \
            "forecasts fresh; live error not judged yet"
    else:
        health_reason = problems[0][0]
        health_message = "; ".join(m for _, m in problems)
    if not rates:
        stage = StageResult(None, health_reason, health_message)
        return PredictiveResult(stage, healthy, health_reason, health_message, errors, pending_out, outcomes)

    replicas, binding, load = capacity_model.replicas_for_loads(rates, settings.per_replica, cap.target_utilization,
                                                                cap.combine == "Sum")
    # binding is never None here: every forecast signal has a perReplica rate (the spec checks it).
    message = (f"q{key} of {binding} {lead:.0f}-{lead + fc.interval_seconds:.0f} s ahead is {rates[binding]:.4g}/s: "
               f"{load:.2f} replicas at {settings.per_replica_text[binding]}/s each, {replicas}"
               f"{settings.utilization_text}")
    if problems:
        message += f" (without {', '.join(m for _, m in problems)})"
    return PredictiveResult(StageResult(replicas, Reason.PREDICTED, message), healthy, health_reason,
                            health_message, errors, pending_out, outcomes)
