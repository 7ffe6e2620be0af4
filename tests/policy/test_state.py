"""PolicyState and Decision serialisation: what goes into the CRD status comes back identical."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.policy import decide
from controller.policy.types import (
    ForecastOutcome,
    PendingForecast,
    PolicyInputError,
    PolicyState,
    Recommendation,
    ScaleEvent,
)
from tests.policy.builders import NOW, flat_forecast, predictive, predictive_spec, reactive

T = NOW.timestamp()
times = st.integers(-10**6, 10**6).map(lambda s: T + s)  # whole seconds: RFC 3339 keeps them exactly
finite = st.floats(0, 1e6, allow_nan=False)

states = st.builds(
    PolicyState,
    recommendations=st.lists(st.builds(Recommendation, times, st.integers(0, 1000)), max_size=5).map(tuple),
    scale_events=st.lists(st.builds(ScaleEvent, times, st.integers(-100, 100)), max_size=5).map(tuple),
    pending_forecasts=st.lists(st.builds(PendingForecast, st.sampled_from(["requests", "prompt_tokens"]), times,
                                         st.sampled_from([60.0, 600.0]), finite), max_size=5).map(tuple),
    outcomes=st.lists(st.builds(ForecastOutcome, st.just("requests"), times, finite, finite, finite),
                      max_size=5).map(tuple),
)


@given(states)
def test_state_json_round_trip(state: PolicyState) -> None:
    assert PolicyState.from_json(state.to_json()) == state
    assert PolicyState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_state_from_a_real_sequence_round_trips() -> None:
    spec = predictive_spec(behavior={})
    state = PolicyState()
    for minute in range(8):
        now = NOW.replace(minute=minute)
        _, state = decide(spec, reactive(4, [12.0] * 4), predictive({"requests": flat_forecast(10, generated_at=now)},
                                                                     {"requests": 11.0}), state, now)
    assert state.recommendations and state.pending_forecasts and state.outcomes
    assert PolicyState.from_json(state.to_json()) == state


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param([], "policyState: expected an object", id="not-object"),
        pytest.param({"recs": []}, "unknown fields ['recs']", id="unknown-field"),
        pytest.param({"recommendations": {}}, "policyState.recommendations: expected a list", id="not-list"),
        pytest.param({"recommendations": [{"at": "2026-03-02T12:00:00Z"}]},
                     "policyState.recommendations[0]: missing field 'replicas'", id="missing-field"),
        pytest.param({"recommendations": [{"at": "yesterday", "replicas": 1}]},
                     "policyState.recommendations[0].at: 'yesterday' is not an RFC 3339 timestamp", id="bad-time"),
        pytest.param({"recommendations": [{"at": "2026-03-02T12:00:00", "replicas": 1}]},
                     "has no time zone", id="naive-time"),
        pytest.param({"scaleEvents": [{"at": "2026-03-02T12:00:00Z", "change": 1.5}]},
                     "policyState.scaleEvents[0].change: expected an integer", id="non-integer"),
        pytest.param({"outcomes": [{"signal": "requests", "target": "2026-03-02T12:00:00Z", "predicted": "1",
                                    "observed": 1, "error": 0}]},
                     "policyState.outcomes[0].predicted: expected a number", id="string-number"),
    ],
)
def test_state_from_dict_names_the_bad_entry(data, message) -> None:
    with pytest.raises(PolicyInputError) as info:
        PolicyState.from_dict(data)
    assert message in str(info.value)


def test_state_from_json_rejects_non_json() -> None:
    with pytest.raises(PolicyInputError, match="policyState: not JSON"):
        PolicyState.from_json("{")


def test_decision_to_dict_is_json() -> None:
    decision, _ = decide(predictive_spec(), reactive(4, [12.0] * 4), predictive({"requests": flat_forecast(30)}),
                         PolicyState(), NOW)
    data = json.loads(json.dumps(decision.to_dict()))
    assert data["desiredReplicas"] == decision.desired_replicas
    assert set(data["stages"]) == {"reactive", "predictive", "merged", "behavior", "bounded"}
    assert [c["type"] for c in data["conditions"]] == ["AbleToScale", "ScalingActive", "ScalingLimited",
                                                       "ForecastHealthy"]
