"""What decide()'s speed rests on. The memos (controller/policy/memo.py): keyed by the very object,
bounded, and never able to change a result: two different specs, forecasts or outcome tuples never
share an entry, and a hit gives what a fresh computation gives. The forecast window read from the
points or from a column alike, and the pods grouped once per decision."""

from __future__ import annotations

import gc
from datetime import timedelta

import pytest

from controller.policy import decide
from controller.policy import predictive as predictive_stage
from controller.policy import reactive as reactive_stage
from controller.policy.memo import IdentityMemo, TupleMemo
from controller.policy.types import ForecastOutcome, PolicyState, Reason
from forecaster.contract import Forecast, ForecastPoint
from tests.policy.builders import (
    NOW,
    flat_forecast,
    forecast_spec,
    make_spec,
    pods_metric,
    predictive,
    predictive_spec,
    reactive,
    shaped_forecast,
)

T = NOW.timestamp()


class Box:
    """A weak-referenceable object with a value, standing in for a frozen model."""

    def __init__(self, value: int) -> None:
        self.value = value


class CountingBuild:
    def __init__(self) -> None:
        self.calls: list[object] = []

    def __call__(self, obj, *args):
        self.calls.append(obj)
        return (obj.value if isinstance(obj, Box) else sum(obj), args)


# ---------------------------------------------------------------------------------------------------
# IdentityMemo / TupleMemo
# ---------------------------------------------------------------------------------------------------


def test_identity_memo_builds_once_per_object() -> None:
    build = CountingBuild()
    memo = IdentityMemo(build)
    a = Box(1)
    assert memo(a) == (1, ()) and memo(a) == (1, ())
    assert build.calls == [a]


def test_equal_but_distinct_objects_get_their_own_entries() -> None:
    build = CountingBuild()
    memo = IdentityMemo(build)
    a, b = Box(1), Box(1)
    memo(a), memo(b), memo(a), memo(b)
    assert build.calls == [a, b]


def test_an_entry_is_never_served_to_another_object_with_the_same_id() -> None:
    """A freed object's id can be reused; the entry's weak reference tells the objects apart."""
    build = CountingBuild()
    memo = IdentityMemo(build)
    a, b = Box(1), Box(2)
    memo(a)
    # Put a's entry where b's id would find it, as if b had been allocated at a's freed address.
    memo._entries[id(b)] = memo._entries.pop(id(a))
    assert memo(b) == (2, ())
    assert build.calls == [a, b]


def test_the_memo_keeps_no_object_alive() -> None:
    memo = IdentityMemo(lambda obj: obj.value)
    a = Box(1)
    memo(a)
    ref, _ = memo._entries[id(a)]
    del a
    gc.collect()
    assert ref() is None  # collected: its entry can never match a live object again
    assert memo(Box(2)) == 2


def test_an_object_without_weak_references_is_derived_at_every_call() -> None:
    build = CountingBuild()
    memo = IdentityMemo(build)
    value = (1, 2)  # tuples take no weak reference
    assert memo(value) == (3, ()) and memo(value) == (3, ())
    assert build.calls == [value, value] and len(memo) == 0


def test_identity_memo_is_bounded() -> None:
    memo = IdentityMemo(CountingBuild(), maxsize=8)
    boxes = [Box(i) for i in range(50)]
    for box in boxes:
        assert memo(box) == (box.value, ())
        assert len(memo) <= 8


@pytest.mark.parametrize("memo_type", [IdentityMemo, TupleMemo])
def test_maxsize_must_be_positive(memo_type) -> None:
    with pytest.raises(ValueError, match="maxsize must be >= 1, got 0"):
        memo_type(CountingBuild(), maxsize=0)


def test_tuple_memo_keys_on_the_tuple_object_and_the_arguments() -> None:
    build = CountingBuild()
    memo = TupleMemo(build)
    first = tuple([1, 2])
    same_contents = tuple([1, 2])
    assert first is not same_contents
    assert memo(first, "x") == (3, ("x",))
    assert memo(first, "x") == (3, ("x",))
    assert memo(first, "y") == (3, ("y",))
    assert memo(same_contents, "x") == (3, ("x",))
    assert build.calls == [first, first, same_contents]


def test_tuple_memo_is_bounded() -> None:
    memo = TupleMemo(CountingBuild(), maxsize=4)
    for i in range(20):
        assert memo(tuple([i, i]))[0] == 2 * i
        assert len(memo) <= 4


# ---------------------------------------------------------------------------------------------------
# the memos inside the stages
# ---------------------------------------------------------------------------------------------------


def test_two_forecasts_never_share_a_view() -> None:
    """A model_copy with new points is a new object: its own view, its own window."""
    low = flat_forecast(10.0)
    high = low.model_copy(update={"points": flat_forecast(30.0).points})
    spec = predictive_spec()
    for _ in range(3):  # alternate, so each is served from the memo after the first call
        assert predictive_stage.recommend(spec, predictive({"requests": low}), (), (), T).stage.replicas == 4
        assert predictive_stage.recommend(spec, predictive({"requests": high}), (), (), T).stage.replicas == 12
    assert predictive_stage._VIEWS(low) is predictive_stage._VIEWS(low)
    assert predictive_stage._VIEWS(low) is not predictive_stage._VIEWS(high)


@pytest.mark.parametrize("calls", [1, 2, 3], ids=["points-read", "column-built", "column-reused"])
def test_window_is_the_same_whether_read_from_points_or_from_the_column(calls) -> None:
    forecast = shaped_forecast([float((i * 7) % 5) for i in range(40)])
    for _ in range(calls):
        got = [predictive_stage._window_max(forecast, "0.9", T + offset, T + offset + 90)
               for offset in range(-120, 2500, 45)]
    want = [forecast.window_max(NOW + timedelta(seconds=offset), NOW + timedelta(seconds=offset + 90), 0.9)
            for offset in range(-120, 2500, 45)]
    assert got == want


def _partly_quantified(missing_at: int) -> Forecast:
    points = [ForecastPoint(timestamp=NOW + timedelta(minutes=i), mean=5.0,
                            quantiles={"0.5": 5.0} if i == missing_at else {"0.5": 5.0, "0.9": 6.0 + i})
              for i in range(20)]
    return Forecast(workload="llm", signal="requests", model="test", generated_at=NOW, step_seconds=60, points=points)


@pytest.mark.parametrize("calls", [1, 2, 3], ids=["points-read", "column-built", "column-reused"])
def test_a_quantile_missing_only_outside_the_window_does_not_matter(calls) -> None:
    forecast = _partly_quantified(missing_at=15)
    for _ in range(calls):
        assert predictive_stage._window_max(forecast, "0.9", T + 300, T + 360) == 6.0 + 6
        with pytest.raises(KeyError):
            predictive_stage._window_max(forecast, "0.9", T + 850, T + 960)


@pytest.mark.parametrize("calls", [1, 2], ids=["points-read", "column-built"])
def test_a_nan_in_the_first_bin_of_the_window_still_shows(calls) -> None:
    points = [ForecastPoint(timestamp=NOW + timedelta(minutes=i), mean=5.0,
                            quantiles={"0.9": float("nan") if i == 5 else 6.0}) for i in range(20)]
    forecast = Forecast(workload="llm", signal="requests", model="test", generated_at=NOW, step_seconds=60,
                        points=points)
    for _ in range(calls):
        first = predictive_stage._window_max(forecast, "0.9", T + 300, T + 360)
        assert first != first  # NaN, as the comparison loop gave: the stage then abstains
        assert predictive_stage._window_max(forecast, "0.9", T + 240, T + 300) == 6.0


def test_specs_never_share_reactive_plans() -> None:
    """Interleaved decisions of two autoscalers that differ only in target and tolerance."""
    tight = make_spec([pods_metric(average_value=10)], behavior={"scaleUp": {"tolerance": 0.0}})
    loose = make_spec([pods_metric(average_value=20)])
    inputs = reactive(4, [10.5] * 4)
    for _ in range(3):
        assert reactive_stage.recommend(tight, inputs, reactive_stage.tolerances_for(tight)).replicas == 5
        assert reactive_stage.recommend(loose, inputs, reactive_stage.tolerances_for(loose)).replicas == 3
    assert reactive_stage.tolerances_for(tight).high == 1.0
    assert reactive_stage.tolerances_for(loose).high == pytest.approx(1.1)


def test_specs_never_share_predictive_settings() -> None:
    """Same forecast, two quantiles: each spec reads its own quantile."""
    median = predictive_spec(forecast=forecast_spec(quantile=0.5))
    upper = predictive_spec(forecast=forecast_spec(quantile=0.9))
    inputs = predictive({"requests": flat_forecast(30.0, spread=2.0)})
    for _ in range(3):
        assert predictive_stage.recommend(median, inputs, (), (), T).stage.replicas == 10  # 30 / 4 / 0.8
        assert predictive_stage.recommend(upper, inputs, (), (), T).stage.replicas == 19  # 60 / 4 / 0.8


def _outcomes(error: float, n: int = 6) -> tuple[ForecastOutcome, ...]:
    return tuple(ForecastOutcome("requests", T - 60 * (n - i), 10.0, 10.0, error) for i in range(n))


def test_live_errors_follow_the_outcomes_not_the_memo() -> None:
    spec = predictive_spec(forecast=forecast_spec(maxLiveError=0.5))
    inputs = predictive({"requests": flat_forecast(30.0)}, {"requests": 30.0})
    good, bad = _outcomes(0.1), _outcomes(0.9)
    for _ in range(3):
        ok = predictive_stage.recommend(spec, inputs, (), good, T)
        assert ok.healthy and ok.live_error == {"requests": pytest.approx(0.1)}
        assert ok.health_message == "forecasts fresh; median live error requests 10%"
        poor = predictive_stage.recommend(spec, inputs, (), bad, T)
        assert poor.health_reason == Reason.FORECAST_INACCURATE and poor.live_error == {"requests": pytest.approx(0.9)}


def test_a_returned_live_error_can_be_changed_without_touching_the_next_result() -> None:
    spec = predictive_spec()
    inputs = predictive({"requests": flat_forecast(30.0)}, {"requests": 30.0})
    outcomes = _outcomes(0.1)
    first = predictive_stage.recommend(spec, inputs, (), outcomes, T)
    first.live_error["requests"] = 99.0  # a caller's own copy
    assert predictive_stage.recommend(spec, inputs, (), outcomes, T).live_error == {"requests": pytest.approx(0.1)}


def test_decisions_do_not_depend_on_what_the_memos_saw_before() -> None:
    """The same call gives the same Decision with the memos emptied, warm, or filled by another spec."""
    spec = predictive_spec([pods_metric()])
    other = predictive_spec([pods_metric(average_value=3)], forecast=forecast_spec(quantile=0.5))
    forecast = flat_forecast(30.0)
    state = PolicyState(outcomes=_outcomes(0.2))
    call = (reactive(4, [12.0] * 4), predictive({"requests": forecast}, {"requests": 29.0}), state, NOW)
    memos = (reactive_stage._PLANS, predictive_stage._SETTINGS, predictive_stage._VIEWS,
             predictive_stage._LIVE_ERRORS)
    for memo in memos:
        memo.clear()
    cold = decide(spec, *call)
    warm = decide(spec, *call)
    decide(other, *call)
    after_other = decide(spec, *call)
    assert cold == warm == after_other
    assert cold[0].to_dict() == after_other[0].to_dict()


@pytest.mark.parametrize(
    ("pods", "ready", "unready"),
    [
        pytest.param({}, [], [], id="none"),
        pytest.param({"a": "Ready", "b": "Ready"}, ["a", "b"], [], id="all-ready"),
        pytest.param({"b": "Unready", "a": "Ready", "c": "Ignored", "d": "Ready", "e": "Unready"},
                     ["a", "d"], ["b", "e"], id="mixed-in-mapping-order"),
        pytest.param({"a": "Ignored"}, [], [], id="ignored-drop-out"),
    ],
)
def test_group_pods(pods, ready, unready) -> None:
    """The pods are grouped once per decision for every Pods/Resource metric, as groupPods does."""
    assert reactive_stage.group_pods(pods) == (ready, unready)
