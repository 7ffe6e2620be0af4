"""Stage 2, predictive: the forecast one lead time ahead -> replicas, or abstain with a reason.

For each configured signal: the chosen quantile's maximum over the bins overlapping
[now + lead, now + lead + interval] (forecaster.contract.window, the rule Forecast.window_max and the
service's external metrics use too), through the capacity model (forecaster.contract.capacity). A
signal's forecast is unusable when it is
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
from functools import lru_cache
from typing import NamedTuple

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
from forecaster.contract import Forecast, quantile_key
from forecaster.contract.capacity import replicas_for_loads
from forecaster.contract.window import overlapping_bins


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


def _per_replica(signals: tuple[str, ...], cap: CapacitySpec) -> dict[str, float]:
    """Forecast signal -> its capacity.perReplica rate: only the forecast signals reach the capacity
    model (the rates come from their forecasts)."""
    return {s: r for s in signals if (r := cap.per_replica.rate(s)) is not None}


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


def window_max(forecast: Forecast, key: str, start: float, end: float) -> float | None:
    """The quantile `key`'s maximum over the bins overlapping [start, end] (Unix seconds): the
    contract's Forecast.window_max on floats, by the same rule (forecaster.contract.window).

    None when no bin overlaps. Raises KeyError when the quantile is absent from a bin in the window.
    max() keeps the first of equal values and never replaces a value by a NaN, nor a NaN in the
    window's first bin (the stage then abstains on the non-finite value).
    """
    points = forecast.points
    if not points:
        return None
    lo, hi = overlapping_bins(points[0].timestamp.timestamp(), forecast.step_seconds, len(points), start, end)
    return max([points[i].quantiles[key] for i in range(lo, hi)], default=None)


def recommend(spec: PredictiveAutoscalerSpec, inputs: PredictiveInputs | None,
              pending: tuple[PendingForecast, ...], outcomes: tuple[ForecastOutcome, ...],
              now: float) -> PredictiveResult:
    """The predictive recommendation and the updated live-error bookkeeping."""
    fc, cap = spec.forecast, spec.capacity
    if fc is None or cap is None:
        msg = "spec.forecast is not set"
        return PredictiveResult(StageResult(None, Reason.FORECAST_NOT_CONFIGURED, msg), False,
                                Reason.FORECAST_NOT_CONFIGURED, msg, {}, pending, outcomes)
    signals = spec.forecast_signals
    if inputs is None:
        msg = "no forecast inputs this sync"
        return PredictiveResult(StageResult(None, Reason.FORECAST_MISSING, msg), False, Reason.FORECAST_MISSING,
                                msg, live_errors(outcomes, signals, fc.live_error_samples, fc.live_error_min_samples),
                                pending, outcomes)
    lead = inputs.lead_time_seconds
    if isinstance(lead, bool) or not isinstance(lead, (int, float)) or not math.isfinite(lead) or lead < 0:
        raise PolicyInputError(f"predictive.lead_time_seconds must be a finite number >= 0, got {lead!r}")

    pending, outcomes = score_matured(pending, outcomes, inputs.observed_rates, cap, now, fc.live_error_samples)
    errors = live_errors(outcomes, signals, fc.live_error_samples, fc.live_error_min_samples)

    key = _key(fc.quantile)
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
        points = forecast.points
        n = len(points)
        if not n:
            problems.append((Reason.FORECAST_MISSING, f"the {signal} forecast has no points"))
            continue
        age = now - forecast.generated_at.timestamp()
        if age > fc.max_age_seconds:
            problems.append((Reason.FORECAST_STALE, f"the {signal} forecast is {age:.0f} s old "
                                                     f"(maxAge {fc.max_age_seconds:.0f} s)"))
            continue
        step = forecast.step_seconds
        first = points[0].timestamp.timestamp()
        last_end = points[-1].timestamp.timestamp() + step
        if last_end <= end:
            problems.append((Reason.FORECAST_STALE, f"the {signal} forecast ends at {_hhmm(last_end)}, before the "
                                                     f"window [{_hhmm(start)}, {_hhmm(end)}] does"))
            continue
        try:
            value = window_max(forecast, key, start, end)
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
        if 0 <= index < n:
            target = first + index * step
            for p in new_pending:
                if p.target <= start < p.target + p.step and p.signal == signal:
                    break
            else:
                mean = points[index].mean
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
        shown = ", ".join(f"{s} {errors[s]:.0%}" for s in signals if s in errors)
        health_message = f"forecasts fresh; median live error {shown}" if shown else \
            "forecasts fresh; live error not judged yet"
    else:
        health_reason = problems[0][0]
        health_message = "; ".join(m for _, m in problems)
    if not rates:
        stage = StageResult(None, health_reason, health_message)
        return PredictiveResult(stage, healthy, health_reason, health_message, errors, pending_out, outcomes)

    per_replica = _per_replica(signals, cap)
    replicas, binding, load = replicas_for_loads(rates, per_replica, cap.target_utilization, cap.combine)
    # binding is never None here: every forecast signal has a perReplica rate (the spec checks it).
    assert binding is not None
    message = (f"q{key} of {binding} {lead:.0f}-{lead + fc.interval_seconds:.0f} s ahead is {rates[binding]:.4g}/s: "
               f"{load:.2f} replicas at {per_replica[binding]:.4g}/s each, {replicas}"
               f" at {cap.target_utilization:.0%} utilization")
    if problems:
        message += f" (without {', '.join(m for _, m in problems)})"
    return PredictiveResult(StageResult(replicas, Reason.PREDICTED, message), healthy, health_reason,
                            health_message, errors, pending_out, outcomes)
