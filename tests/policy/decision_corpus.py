"""A fixed corpus of decide() calls and a digest of every result, to prove that work on decide()'s
speed changes no decision, message or state.

Each sequence is a random autoscaler (metrics of every HPA type, with or without behavior and a
forecast, every mode) driven through `STEPS` syncs of random inputs: pods ready, unready, ignored
or without samples; invalid metrics; forecasts fresh, stale, short, without the quantile, with NaN,
often the same Forecast object again (as between forecaster refreshes); time jumps; failed scale
patches. The digest covers Decision.to_dict() and PolicyState.to_dict() of every step, or the
PolicyInputError message. tests/policy/data/decision_corpus.json holds the digests made with the
implementation before the speed work (commit ae12698), so a changed digest is a changed decision.

Regenerate, only for an intended change of behaviour or wording, and say so in the commit:
    .venv/bin/python -m tests.policy.decision_corpus --write
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from controller.policy.spec import PredictiveAutoscalerSpec
from controller.policy.types import MetricObservation, PolicyInputError, PolicyState, PredictiveInputs, ReactiveInputs
from forecaster.contract import Forecast, ForecastPoint

CORPUS = Path(__file__).parent / "data" / "decision_corpus.json"
SEQUENCES = 60
STEPS = 30
T0 = datetime(2026, 3, 2, 11, 0, tzinfo=timezone.utc)
SIGNALS = ("requests", "prompt_tokens", "output_tokens")
LEVEL = {"requests": 20.0, "prompt_tokens": 40000.0, "output_tokens": 6000.0}


def _rules(rng: random.Random) -> dict:
    rules: dict[str, Any] = {}
    if rng.random() < .5:
        rules["stabilizationWindowSeconds"] = rng.choice([0, 15, 60, 300, 3600])
    if rng.random() < .5:
        rules["selectPolicy"] = rng.choice(["Max", "Min", "Disabled"])
    if rng.random() < .5:
        rules["policies"] = [{"type": rng.choice(["Pods", "Percent"]), "value": rng.choice([1, 2, 4, 10, 50, 100, 200]),
                              "periodSeconds": rng.choice([15, 30, 60, 120, 1800])} for _ in range(rng.randint(1, 3))]
    if rng.random() < .3:
        rules["tolerance"] = rng.choice([0, 0.05, "0.2", 0.5])
    return rules


def _metric(rng: random.Random) -> dict:
    kind = rng.choice(["PodsAV", "CPU", "ExtV", "ExtAV", "ObjV", "ObjAV", "ResAV"])
    target = rng.choice([1, 4, 10, 48, 0.5, "500m", 3.3])
    if kind == "PodsAV":
        return {"type": "Pods", "pods": {"metric": {"name": f"m{rng.randint(0, 9)}"},
                                         "target": {"type": "AverageValue", "averageValue": target}}}
    if kind == "CPU":
        return {"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": rng.choice([50, 80, 100, 150])}}}
    if kind == "ResAV":
        return {"type": "ContainerResource", "containerResource": {
            "name": "cpu", "container": "c", "target": {"type": "AverageValue", "averageValue": target}}}
    field, target_type = ("value", "Value") if kind.endswith("V") and not kind.endswith("AV") \
        else ("averageValue", "AverageValue")
    if kind.startswith("Ext"):
        return {"type": "External", "external": {"metric": {"name": "q"},
                                                 "target": {"type": target_type, field: target}}}
    return {"type": "Object", "object": {"describedObject": {"kind": "Service", "name": "s"}, "metric": {"name": "rps"},
                                         "target": {"type": target_type, field: target}}}


def random_spec(rng: random.Random) -> PredictiveAutoscalerSpec:
    data: dict[str, Any] = {
        "scaleTargetRef": {"kind": "Deployment", "name": "x"}, "minReplicas": rng.choice([1, 1, 2, 3]),
        "maxReplicas": rng.choice([3, 20, 40, 100]), "metrics": [_metric(rng) for _ in range(rng.randint(1, 4))],
        "mode": rng.choice(["Auto"] * 6 + ["Advisory", "Off"]),
    }
    data["maxReplicas"] = max(data["maxReplicas"], data["minReplicas"])
    r = rng.random()
    if .3 <= r < .6:
        data["behavior"] = {}
    elif r >= .6:
        data["behavior"] = {k: _rules(rng) for k in ("scaleUp", "scaleDown") if rng.random() < .7}
    if rng.random() < .75:
        data["forecast"] = {
            "signals": [{"name": s} for s in rng.sample(SIGNALS, rng.randint(1, 3))],
            "quantile": rng.choice([0.5, 0.9, 0.95, 0.99]), "maxAge": rng.choice(["2m", "10m", "10m"]),
            "interval": rng.choice(["0s", "1m", "5m"]), "maxLiveError": rng.choice([0.1, 0.5, 2]),
            "liveErrorSamples": rng.choice([4, 12]), "liveErrorMinSamples": rng.choice([1, 4]), "horizon": "1h"}
        data["capacity"] = {"perReplica": {"requestsPerSecond": 4, "promptTokensPerSecond": 10000,
                                           "outputTokensPerSecond": 3000},
                            "targetUtilization": rng.choice([0.5, 0.8, 1]), "combine": rng.choice(["Max", "Sum"])}
        data["leadTime"] = rng.choice(["0s", "2m", "5m"])
    return PredictiveAutoscalerSpec.model_validate(data)


def _value(rng: random.Random, scale: float) -> float | None:
    r = rng.random()
    if r < .03:
        return float("nan")
    if r < .06:
        return None
    if r < .1:
        return 0.0
    return round(rng.uniform(0.3, 1.6) * scale, rng.choice([0, 1, 3]))


def random_reactive(rng: random.Random, spec: PredictiveAutoscalerSpec, current: int) -> ReactiveInputs:
    pods = {f"p{i}": rng.choices(["Ready", "Unready", "Ignored"], [.85, .1, .05])[0]
            for i in range(max(0, current + rng.randint(-2, 2)))}
    observations: list[MetricObservation | None] = []
    for metric in spec.metrics:
        r = rng.random()
        if r < .05:
            observations.append(None)
            continue
        if r < .1:
            observations.append(MetricObservation.unavailable("adapter down"))
            continue
        target = metric.target
        scale = target.average_value or target.value or (target.average_utilization or 50)
        if metric.type in ("Pods", "Resource", "ContainerResource"):
            values = {p: v for p in pods if (v := _value(rng, scale)) is not None}
            if rng.random() < .1:
                values["stranger"] = 5.0
            requests = None
            if target.type == "Utilization":
                values = {p: v for p in pods if (v := _value(rng, 1.0)) is not None}
                requests = {p: rng.choice([1.0, 2.0, 0.5]) for p in pods if rng.random() < .97}
            observations.append(MetricObservation(pod_values=values, pod_requests=requests))
        else:
            observations.append(MetricObservation(value=_value(rng, scale * max(1, current))))
    status = None if rng.random() < .8 else max(0, current + rng.randint(-1, 1))
    return ReactiveInputs(current_replicas=current, pods=pods, metrics=observations, status_replicas=status)


def _forecast(rng: random.Random, signal: str, now: datetime, level: float) -> Forecast:
    step = rng.choice([60, 60, 60, 300, 600])
    generated = now - timedelta(seconds=rng.choice([0, 0, 0, 0, 30, 100, 400, 900]))
    start = generated + timedelta(seconds=rng.choice([0, 0, step, -step]))
    keys = rng.choice([("0.5", "0.9", "0.95", "0.99")] * 6 + [("0.5", "0.9")])
    points = []
    for i in range(rng.choice([0, 3, 10] + [60] * 8)):
        mean = level * rng.uniform(0.3, 1.7)
        if rng.random() < .02:
            mean = float("nan")
        value = mean if mean == mean else level
        quantiles = {}
        for key in keys:
            quantiles[key] = value
            value *= rng.uniform(1, 1.3)
        if rng.random() < .02:
            quantiles = {k: float("nan") for k in keys}
        points.append(ForecastPoint(timestamp=start + timedelta(seconds=i * step), mean=mean, quantiles=quantiles))
    if rng.random() < .05:
        points = points[:2]
    return Forecast(workload="w", signal=signal, model="t", generated_at=generated, step_seconds=step, points=points)


def random_predictive(rng: random.Random, spec: PredictiveAutoscalerSpec, now: datetime,
                      last: dict[str, Forecast]) -> PredictiveInputs | None:
    if (spec.forecast is None and rng.random() < .5) or rng.random() < .1:
        return None
    forecasts: dict[str, Forecast | None] = {}
    for signal in SIGNALS:
        r = rng.random()
        if r < .04:
            continue
        if r < .06:
            forecasts[signal] = None
        elif signal in last and rng.random() < .6:
            forecasts[signal] = last[signal]  # the same object again, as between forecaster refreshes
        else:
            last[signal] = forecasts[signal] = _forecast(rng, signal, now, LEVEL[signal] * rng.uniform(.2, 3))
    observed = {s: (None if rng.random() < .15 else LEVEL[s] * rng.uniform(.3, 2))
                for s in SIGNALS if rng.random() < .9}
    return PredictiveInputs(forecasts=forecasts, observed_rates=observed,
                            lead_time_seconds=rng.choice([0.0, 120.0, 300.0, 300, 600.0]))


Decide = Callable[..., tuple[Any, Any]]


def sequence_digest(seed: int, decide: Decide, initial_state: Any = None, steps: int = STEPS,
                    input_error: type[Exception] = PolicyInputError) -> str:
    """The sha256 of every step's decision and state (or input error) of sequence `seed`."""
    rng = random.Random(seed)
    spec = random_spec(rng)
    state = initial_state if initial_state is not None else PolicyState()
    now = T0 + timedelta(seconds=rng.randint(0, 86400))
    current = rng.randint(0, 12)
    last: dict[str, Forecast] = {}
    digest = hashlib.sha256()
    for _ in range(steps):
        inputs = random_reactive(rng, spec, current), random_predictive(rng, spec, now, last)
        try:
            decision, state = decide(spec, *inputs, state, now)
        except input_error as err:
            digest.update(f"error {err}\n".encode())
        else:
            digest.update(json.dumps([decision.to_dict(), state.to_dict()], sort_keys=True).encode() + b"\n")
            if decision.act:
                current = decision.desired_replicas
            if rng.random() < .05:
                state = state.without_scale_event_at(now)  # the scale patch failed
        if rng.random() < .1:
            current = max(0, current + rng.randint(-3, 3))
        now += timedelta(seconds=rng.choice([15, 15, 15, 15, 1, 30, 60, 400]))
    return digest.hexdigest()


def corpus(decide: Decide, **kwargs: Any) -> dict[str, str]:
    return {str(seed): sequence_digest(seed, decide, **kwargs) for seed in range(SEQUENCES)}


def main(argv: list[str]) -> int:
    if argv != ["--write"]:
        print(__doc__)
        return 2
    from controller.policy import decide
    CORPUS.parent.mkdir(parents=True, exist_ok=True)
    tmp = CORPUS.with_suffix(".tmp")
    tmp.write_text(json.dumps({"steps": STEPS, "digests": corpus(decide)}, indent=1) + "\n")
    tmp.replace(CORPUS)
    print(f"wrote {CORPUS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
