"""The inputs, state and output of `controller.policy.decide`: immutable records.

Inputs and state are frozen dataclasses; the per-call outputs (Decision, StageResult, Condition)
are NamedTuples, equally immutable and read by attribute, because decide() builds a dozen of them
per call and a frozen dataclass costs several times more to construct (bench/decide_speed.py).

Everything here is plain data: no I/O, no clock. Times inside the state are Unix seconds (float, UTC),
so a decision costs no datetime arithmetic; they are written as RFC 3339 strings by `to_dict()` /
`to_json()` for the CRD status, and read back by `from_dict()` / `from_json()`.

Who fills what:
- `ReactiveInputs` mirrors what the Kubernetes HPA sees at one sync: the target's `/scale`
  (`spec.replicas`, `status.replicas`), the pods its selector matches with their readiness, and, per
  entry of `spec.metrics` (same order), what the metrics API returned.
- `PredictiveInputs`: the newest forecast per signal (or None), the rate observed over the most recent
  forecast step per signal (for the live error), and the lead time in seconds (`spec.leadTime`, or
  what the controller learned when it is `auto`).
- `PolicyState` is what persists between calls (in the CRD status, so a restart loses nothing).
- `Decision` is what a call concludes, with each stage's recommendation and reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from forecaster.contract import Forecast


class PolicyInputError(ValueError):
    """An input to decide() is malformed (names the field and what is wrong). Never raised for
    missing data, which is a normal state the policy handles (it abstains or holds)."""


class Reason:
    """Reasons (CamelCase: usable as an Event reason, a condition reason and a metric label)."""

    # final decision
    SCALE_UP_REACTIVE = "ScaleUpReactive"      # the live metrics asked for more replicas
    SCALE_UP_PREDICTIVE = "ScaleUpPredictive"  # the forecast at now + lead asked for more than the metrics
    SCALE_DOWN = "ScaleDown"                   # both stages agree on fewer replicas
    NO_CHANGE = "NoChange"
    WITHIN_TOLERANCE = "WithinTolerance"       # every metric ratio within 1 +/- tolerance
    SCALE_UP_STABILIZED = "ScaleUpStabilized"
    SCALE_DOWN_STABILIZED = "ScaleDownStabilized"
    # The ScalingLimited reasons are upstream's own (horizontal.go), which is what users grep for in
    # `kubectl describe`: ScaleUpLimit/ScaleDownLimit (a behavior policy, or the max(2x, 4) cap,
    # bound), TooManyReplicas/TooFewReplicas (maxReplicas/minReplicas bound).
    SCALE_UP_LIMITED = "ScaleUpLimit"
    SCALE_DOWN_LIMITED = "ScaleDownLimit"
    SCALING_DISABLED = "ScalingDisabled"       # selectPolicy Disabled, or the target is at 0 replicas
    BOUNDED_BY_MAX = "TooManyReplicas"
    BOUNDED_BY_MIN = "TooFewReplicas"
    MODE_OFF = "ModeOff"
    # reactive stage
    METRICS_UNAVAILABLE = "MetricsUnavailable"        # no valid metric at all: hold
    INVALID_METRICS_HOLD = "InvalidMetricsHold"       # some metric invalid and the rest say scale down
    # predictive stage
    FORECAST_HEALTHY = "ForecastHealthy"
    FORECAST_NOT_CONFIGURED = "ForecastNotConfigured"
    FORECAST_MISSING = "ForecastMissing"
    FORECAST_STALE = "ForecastStale"
    FORECAST_INACCURATE = "ForecastInaccurate"
    PREDICTED = "Predicted"               # the stage's own reason when it gives a number
    # merge
    PREDICTIVE_HOLDS = "PredictiveHolds"   # the forecast keeps replicas the metrics would remove


Direction = Literal["up", "down", "none"]
PodCondition = Literal["Ready", "Unready", "Ignored"]
"""How the HPA groups a pod (replica_calculator.go groupPods):
Ready: counted with its metric; Unready: Pending, or not yet ready (the HPA applies readiness to CPU;
we apply it to every metric, since an LLM pod loading weights serves nothing): counted as 0 on a
scale-up, left out otherwise; Ignored: being deleted or Failed, left out entirely."""


@dataclass(frozen=True, slots=True)
class MetricObservation:
    """What the metrics API returned for one entry of `spec.metrics`.

    - Pods / Resource / ContainerResource: `pod_values`, pod name -> the pod's current value (a pod
      of `ReactiveInputs.pods` absent from it is a *missing* pod). For a `Utilization` target,
      `pod_requests` holds each pod's request of that resource (same units), as the HPA divides usage
      by requests.
    - Object / External: `value`, the metric's value (for External, already summed over the series the
      selector matched, as the HPA sums them).
    - `error`: the metric could not be fetched or computed; the metric counts as invalid (the HPA never
      scales down while a metric is invalid). `MetricObservation.unavailable("why")` builds one.
    """

    pod_values: Mapping[str, float] | None = None
    pod_requests: Mapping[str, float] | None = None
    value: float | None = None
    error: str | None = None

    @classmethod
    def unavailable(cls, error: str) -> "MetricObservation":
        return cls(error=error)


@dataclass(frozen=True, slots=True)
class ReactiveInputs:
    """What the HPA sees at one sync.

    current_replicas: the target's `/scale` `spec.replicas` (what the controller last asked for).
    pods: every pod the target's selector matches -> Ready | Unready | Ignored.
    metrics: one entry per `spec.metrics` entry, same order; None means unavailable.
    status_replicas: `/scale` `status.replicas` (pods that exist); None means equal to current_replicas.
      The HPA divides per-pod Object/External targets by it.
    """

    current_replicas: int
    pods: Mapping[str, PodCondition]
    metrics: Sequence[MetricObservation | None]
    status_replicas: int | None = None


@dataclass(frozen=True, slots=True)
class PredictiveInputs:
    """What the predictive stage reads.

    forecasts: signal name (requests, prompt_tokens, output_tokens) -> the newest Forecast, or None
      when the forecaster has none. A configured signal absent from the mapping counts as None.
    observed_rates: signal -> the rate per second observed over the most recent forecast step
      (`Forecast.step_seconds`), or None when unknown; used to score forecasts made earlier.
    lead_time_seconds: how long a new replica takes to serve (spec.leadTime, or the learned value).
    """

    forecasts: Mapping[str, Forecast | None]
    observed_rates: Mapping[str, float | None]
    lead_time_seconds: float


# ---------------------------------------------------------------------------------------------------
# state
# ---------------------------------------------------------------------------------------------------


def _ts(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _parse_ts(value: Any, where: str) -> float:
    if not isinstance(value, str):
        raise PolicyInputError(f"{where}: expected an RFC 3339 timestamp string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise PolicyInputError(f"{where}: {value!r} is not an RFC 3339 timestamp ({err})") from None
    if parsed.tzinfo is None:
        raise PolicyInputError(f"{where}: {value!r} has no time zone (write it in UTC with a Z)")
    return parsed.timestamp()


def _number(value: Any, where: str, *, integer: bool = False) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok or isinstance(value, bool):
        kind = "an integer" if integer else "a number"
        raise PolicyInputError(f"{where}: expected {kind}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One sync's recommendation before behavior (the HPA's timestampedRecommendation)."""

    at: float  # Unix seconds
    replicas: int


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    """One applied scale change (the HPA's timestampedScaleEvent); change > 0 up, < 0 down."""

    at: float
    change: int


@dataclass(frozen=True, slots=True)
class PendingForecast:
    """A forecast made for a future bin, kept until the bin is over and can be scored."""

    signal: str
    target: float  # Unix seconds, the start of the forecast bin
    step: float    # seconds, the bin length
    predicted: float  # the forecast's mean rate for that bin


@dataclass(frozen=True, slots=True)
class ForecastOutcome:
    """A matured forecast: what was predicted for a bin and what then happened."""

    signal: str
    target: float
    predicted: float
    observed: float
    error: float  # |predicted - observed| / max(observed, one replica's rate)


# Bounds on the state's size (it lives in the CRD status, which etcd limits to ~1.5 MB in all).
MAX_RECOMMENDATIONS = 1024
MAX_SCALE_EVENTS = 256
MAX_PENDING_FORECASTS = 256
MAX_OUTCOMES_PER_SIGNAL = 256


@dataclass(frozen=True, slots=True)
class PolicyState:
    """What persists between decide() calls. Immutable: decide() returns a new one.

    recommendations: each sync's merged recommendation, for the stabilization windows (the longest
      window's worth is kept).
    scale_events: applied changes, for the behavior policies' periodSeconds (the longest period's
      worth is kept). decide() records one when it returns act=True with a change, assuming the
      caller applies it; if the scale patch fails, call `without_scale_event_at(now)`.
    pending_forecasts / outcomes: the live-error bookkeeping of the predictive stage.
    """

    recommendations: tuple[Recommendation, ...] = ()
    scale_events: tuple[ScaleEvent, ...] = ()
    pending_forecasts: tuple[PendingForecast, ...] = ()
    outcomes: tuple[ForecastOutcome, ...] = ()

    def without_scale_event_at(self, at: datetime) -> "PolicyState":
        """This state minus the scale events recorded at `at` (the patch that decision asked for failed)."""
        t = at.timestamp()
        return PolicyState(self.recommendations, tuple(e for e in self.scale_events if e.at != t),
                           self.pending_forecasts, self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (RFC 3339 times), for the CRD status field `policyState`."""
        return {
            "recommendations": [{"at": _ts(r.at), "replicas": r.replicas} for r in self.recommendations],
            "scaleEvents": [{"at": _ts(e.at), "change": e.change} for e in self.scale_events],
            "pendingForecasts": [
                {"signal": p.signal, "target": _ts(p.target), "step": p.step, "predicted": p.predicted}
                for p in self.pending_forecasts
            ],
            "outcomes": [
                {"signal": o.signal, "target": _ts(o.target), "predicted": o.predicted,
                 "observed": o.observed, "error": o.error}
                for o in self.outcomes
            ],
        }

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "policyState") -> "PolicyState":
        """Read back what to_dict wrote; a malformed entry raises PolicyInputError naming it."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise PolicyInputError(f"{where}: expected an object, got {type(data).__name__}")
        unknown = set(data) - {"recommendations", "scaleEvents", "pendingForecasts", "outcomes"}
        if unknown:
            raise PolicyInputError(f"{where}: unknown fields {sorted(unknown)}")

        def items(key: str) -> list[tuple[str, Mapping[str, Any]]]:
            value = data.get(key, [])
            if not isinstance(value, list):
                raise PolicyInputError(f"{where}.{key}: expected a list, got {type(value).__name__}")
            out = []
            for i, item in enumerate(value):
                if not isinstance(item, Mapping):
                    raise PolicyInputError(f"{where}.{key}[{i}]: expected an object, got {item!r}")
                out.append((f"{where}.{key}[{i}]", item))
            return out

        def get(item: Mapping[str, Any], name: str, at: str) -> Any:
            if name not in item:
                raise PolicyInputError(f"{at}: missing field {name!r}")
            return item[name]

        recs = tuple(
            Recommendation(_parse_ts(get(it, "at", w), f"{w}.at"),
                           _number(get(it, "replicas", w), f"{w}.replicas", integer=True))
            for w, it in items("recommendations")
        )
        events = tuple(
            ScaleEvent(_parse_ts(get(it, "at", w), f"{w}.at"),
                       _number(get(it, "change", w), f"{w}.change", integer=True))
            for w, it in items("scaleEvents")
        )
        pending = tuple(
            PendingForecast(str(get(it, "signal", w)), _parse_ts(get(it, "target", w), f"{w}.target"),
                            float(_number(get(it, "step", w), f"{w}.step")),
                            float(_number(get(it, "predicted", w), f"{w}.predicted")))
            for w, it in items("pendingForecasts")
        )
        outcomes = tuple(
            ForecastOutcome(str(get(it, "signal", w)), _parse_ts(get(it, "target", w), f"{w}.target"),
                            float(_number(get(it, "predicted", w), f"{w}.predicted")),
                            float(_number(get(it, "observed", w), f"{w}.observed")),
                            float(_number(get(it, "error", w), f"{w}.error")))
            for w, it in items("outcomes")
        )
        return cls(recs, events, pending, outcomes)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "PolicyState":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise PolicyInputError(f"policyState: not JSON: {err}") from None
        return cls.from_dict(data)


# ---------------------------------------------------------------------------------------------------
# decision
# ---------------------------------------------------------------------------------------------------


class StageResult(NamedTuple):
    """One stage's recommendation. replicas is None when the stage abstained (see reason).

    A NamedTuple (immutable, like the dataclasses here) because decide() builds about eight a call
    and a frozen dataclass costs five times as much to construct.
    """

    replicas: int | None
    reason: str
    message: str


ConditionType = Literal["AbleToScale", "ScalingActive", "ForecastHealthy", "ScalingLimited"]


class Condition(NamedTuple):
    """A status condition as the HPA writes them (type, "True"/"False", reason, message)."""

    type: ConditionType
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str


class Decision(NamedTuple):
    """What one decide() call concluded (immutable; a NamedTuple for the same reason as StageResult).

    desired_replicas: what the target should have (equals current_replicas when nothing changes, and
      always in Off mode). act: whether the caller should patch /scale (False in Advisory and Off
      modes, and when desired == current).
    reason/message: the headline, e.g. ScaleUpPredictive, "forecast 41.2 req/s at 12:05 needs 9".
    reactive/predictive/merged/behavior/bounded: each stage's recommendation in order.
    scaling_limited: a rate limit or minReplicas/maxReplicas changed the recommendation.
    forecast_healthy/forecast_reason/forecast_message: the ForecastHealthy condition.
    live_error: median relative live error per signal, where enough forecasts have matured.
    """

    desired_replicas: int
    current_replicas: int
    reason: str
    message: str
    act: bool
    mode: str
    reactive: StageResult
    predictive: StageResult
    merged: StageResult
    behavior: StageResult
    bounded: StageResult
    scaling_limited: bool
    forecast_healthy: bool
    forecast_reason: str
    forecast_message: str
    live_error: Mapping[str, float] = MappingProxyType({})
    conditions: tuple[Condition, ...] = ()

    @property
    def direction(self) -> Direction:
        if self.desired_replicas > self.current_replicas:
            return "up"
        if self.desired_replicas < self.current_replicas:
            return "down"
        return "none"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, camelCase, for logs, the advisory status and the simulator's traces."""

        def stage(s: StageResult) -> dict[str, Any]:
            return {"replicas": s.replicas, "reason": s.reason, "message": s.message}

        return {
            "desiredReplicas": self.desired_replicas,
            "currentReplicas": self.current_replicas,
            "reason": self.reason,
            "message": self.message,
            "act": self.act,
            "mode": self.mode,
            "stages": {"reactive": stage(self.reactive), "predictive": stage(self.predictive),
                       "merged": stage(self.merged), "behavior": stage(self.behavior),
                       "bounded": stage(self.bounded)},
            "scalingLimited": self.scaling_limited,
            "forecastHealthy": self.forecast_healthy,
            "forecastReason": self.forecast_reason,
            "forecastMessage": self.forecast_message,
            "liveError": dict(self.live_error),
            "conditions": [{"type": c.type, "status": c.status, "reason": c.reason, "message": c.message}
                           for c in self.conditions],
        }
