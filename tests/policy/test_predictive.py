"""The predictive stage: window, capacity, and each reason it abstains for."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.policy import predictive as stage
from controller.policy.types import ForecastOutcome, PolicyInputError, Reason
from forecaster.contract import Forecast, ForecastPoint
from tests.policy.builders import (
    NOW,
    flat_forecast,
    forecast_spec,
    make_spec,
    predictive,
    predictive_spec,
    shaped_forecast,
)

T = NOW.timestamp()


def run(spec, inputs, pending=(), outcomes=(), now=T):
    return stage.recommend(spec, inputs, pending, outcomes, now)


# 30 req/s, q0.9 = 36 req/s; 36 / 4 per replica / 0.8 = 11.25 -> 12
ABSTAIN_CASES = [
    pytest.param(make_spec(), predictive({"requests": flat_forecast(30)}), Reason.FORECAST_NOT_CONFIGURED,
                 id="not-configured"),
    pytest.param(predictive_spec(), None, Reason.FORECAST_MISSING, id="no-inputs"),
    pytest.param(predictive_spec(), predictive({}), Reason.FORECAST_MISSING, id="signal-absent"),
    pytest.param(predictive_spec(), predictive({"requests": None}), Reason.FORECAST_MISSING, id="signal-none"),
    pytest.param(predictive_spec(),
                 predictive({"requests": flat_forecast(30, generated_at=NOW - timedelta(minutes=11))}),
                 Reason.FORECAST_STALE, id="older-than-max-age"),
    pytest.param(predictive_spec(), predictive({"requests": flat_forecast(30, minutes=5)}), Reason.FORECAST_STALE,
                 id="points-end-before-window"),
    pytest.param(predictive_spec(), predictive({"requests": flat_forecast(30, minutes=6)}), Reason.FORECAST_STALE,
                 id="window-end-on-bin-boundary-needs-that-bin"),
    pytest.param(predictive_spec(forecast=forecast_spec(quantile=0.95)), predictive({"requests": flat_forecast(30)}),
                 Reason.FORECAST_MISSING, id="quantile-not-in-forecast"),
    pytest.param(predictive_spec(), predictive({"requests": flat_forecast(float("nan"))}), Reason.FORECAST_MISSING,
                 id="non-finite-value"),
]


@pytest.mark.parametrize(("spec", "inputs", "reason"), ABSTAIN_CASES)
def test_abstains_with_reason(spec, inputs, reason) -> None:
    result = run(spec, inputs)
    assert result.stage.replicas is None
    assert (result.stage.reason, result.health_reason, result.healthy) == (reason, reason, False)
    assert result.stage.message


@pytest.mark.parametrize(
    ("levels", "lead", "expected"),
    [
        pytest.param([4.0] * 5 + [36.0] + [4.0] * 30, 300, 12, id="peak-at-lead-counts"),
        pytest.param([4.0] * 6 + [36.0] + [4.0] * 30, 300, 12, id="peak-at-lead-plus-interval-counts"),
        pytest.param([4.0] * 7 + [36.0] + [4.0] * 30, 300, 2, id="peak-after-window-ignored"),
        pytest.param([36.0] * 4 + [4.0] * 30, 300, 2, id="peak-before-lead-ignored"),
        pytest.param([4.0] * 10 + [36.0] + [4.0] * 30, 600, 12, id="longer-lead-looks-further"),
        pytest.param([-5.0] * 40, 300, 0, id="negative-forecast-counts-as-zero"),
    ],
)
def test_window_is_lead_to_lead_plus_interval(levels, lead, expected) -> None:
    result = run(predictive_spec(), predictive({"requests": shaped_forecast(levels)}, lead=lead))
    assert result.stage.replicas == expected, result.stage.message
    assert result.healthy


def test_window_matches_contract_window_max() -> None:
    forecast = shaped_forecast([float(i % 7) for i in range(40)])
    for offset in range(0, 1800, 17):
        start = NOW + timedelta(seconds=offset)
        end = start + timedelta(seconds=90)
        assert stage.window_max(forecast, "0.9", start.timestamp(), end.timestamp()) == \
            forecast.window_max(start, end, 0.9), offset


@settings(max_examples=200)
@given(offset=st.floats(-900, 4000, allow_nan=False), width=st.floats(0, 900, allow_nan=False),
       step=st.sampled_from([60, 300, 600]), n=st.integers(1, 12))
def test_window_max_agrees_with_the_contract(offset, width, step, n) -> None:
    forecast = shaped_forecast([float((i * 7) % 5) for i in range(n)], step=step)
    start = NOW + timedelta(seconds=offset)
    end = start + timedelta(seconds=width)
    assert stage.window_max(forecast, "0.9", start.timestamp(), end.timestamp()) == \
        forecast.window_max(start, end, 0.9)


def _partly_quantified(missing_at: int) -> Forecast:
    points = [ForecastPoint(timestamp=NOW + timedelta(minutes=i), mean=5.0,
                            quantiles={"0.5": 5.0} if i == missing_at else {"0.5": 5.0, "0.9": 6.0 + i})
              for i in range(20)]
    return Forecast(workload="llm", signal="requests", model="test", generated_at=NOW, step_seconds=60, points=points)


def test_a_quantile_missing_only_outside_the_window_does_not_matter() -> None:
    forecast = _partly_quantified(missing_at=15)
    assert stage.window_max(forecast, "0.9", T + 300, T + 360) == 6.0 + 6  # bins 5 and 6: 11, 12
    with pytest.raises(KeyError):
        stage.window_max(forecast, "0.9", T + 850, T + 960)  # bins 14..16 include the bare bin 15


def test_a_nan_in_the_first_bin_of_the_window_still_shows() -> None:
    """max() never replaces a NaN in the window's first bin: the stage sees it and abstains."""
    points = [ForecastPoint(timestamp=NOW + timedelta(minutes=i), mean=5.0,
                            quantiles={"0.9": float("nan") if i == 5 else 6.0}) for i in range(20)]
    forecast = Forecast(workload="llm", signal="requests", model="test", generated_at=NOW, step_seconds=60,
                        points=points)
    first = stage.window_max(forecast, "0.9", T + 300, T + 360)
    assert first != first  # NaN
    assert stage.window_max(forecast, "0.9", T + 240, T + 300) == 6.0
    assert run(predictive_spec(), predictive({"requests": forecast})).stage.reason == Reason.FORECAST_MISSING


def test_each_spec_reads_its_own_quantile() -> None:
    """Same forecast, two quantiles, interleaved."""
    median = predictive_spec(forecast=forecast_spec(quantile=0.5))
    upper = predictive_spec(forecast=forecast_spec(quantile=0.9))
    inputs = predictive({"requests": flat_forecast(30.0, spread=2.0)})
    for _ in range(2):
        assert run(median, inputs).stage.replicas == 10  # 30 / 4 / 0.8 = 9.375 -> 10
        assert run(upper, inputs).stage.replicas == 19  # 60 / 4 / 0.8 = 18.75 -> 19


@pytest.mark.parametrize(
    ("combine", "expected"),
    [
        # requests 36/s -> 9 replicas' worth; prompt tokens 60000/s -> 6: max 9 / 0.8 = 11.25 -> 12
        pytest.param("Max", 12, id="max-over-signals"),
        # sum 15 / 0.8 = 18.75 -> 19
        pytest.param("Sum", 19, id="sum-over-signals"),
    ],
)
def test_capacity_combination(combine, expected) -> None:
    spec = predictive_spec(
        forecast=forecast_spec(signals=[{"name": "requests"}, {"name": "prompt_tokens"}]),
        capacity={"perReplica": {"requestsPerSecond": 4, "promptTokensPerSecond": 10000}, "targetUtilization": 0.8,
                  "combine": combine},
    )
    inputs = predictive({"requests": flat_forecast(30), "prompt_tokens": flat_forecast(50000, signal="prompt_tokens")})
    assert run(spec, inputs).stage.replicas == expected


def test_usable_signals_still_count_when_one_is_missing() -> None:
    spec = predictive_spec(forecast=forecast_spec(signals=[{"name": "requests"}, {"name": "prompt_tokens"}]))
    result = run(spec, predictive({"requests": flat_forecast(30)}))
    assert result.stage.replicas == 12
    assert (result.healthy, result.health_reason) == (False, Reason.FORECAST_MISSING)
    assert "without no prompt_tokens forecast" in result.stage.message


def test_wrong_signal_is_an_input_error() -> None:
    with pytest.raises(PolicyInputError,
                       match=r"predictive.forecasts\['requests'\] holds a forecast of 'prompt_tokens'"):
        run(predictive_spec(), predictive({"requests": flat_forecast(30, signal="prompt_tokens")}))


@pytest.mark.parametrize("lead", [-1.0, float("nan"), float("inf")])
def test_bad_lead_time_is_an_input_error(lead) -> None:
    with pytest.raises(PolicyInputError, match="lead_time_seconds"):
        run(predictive_spec(), predictive({"requests": flat_forecast(30)}, lead=lead))


def replay(spec, predicted: float, observed: float, calls: int, every: float = 60.0):
    """Call the stage every `every` s with a fresh flat forecast and the observed rate; yield results."""
    pending, outcomes = (), ()
    for i in range(calls):
        now = NOW + timedelta(seconds=i * every)
        inputs = predictive({"requests": flat_forecast(predicted, generated_at=now, spread=1.0)},
                            {"requests": observed})
        result = run(spec, inputs, pending, outcomes, now.timestamp())
        pending, outcomes = result.pending, result.outcomes
        yield i, result


def test_live_error_marks_forecast_inaccurate_once_enough_have_matured() -> None:
    spec = predictive_spec(forecast=forecast_spec(liveErrorMinSamples=4, liveErrorSamples=12, maxLiveError=0.5))
    results = dict(replay(spec, predicted=10.0, observed=30.0, calls=14))
    # The first forecast is for the bin at +5 min; it is over at +6 min and scored then: the 4th
    # outcome arrives at call 9 (t = +9 min).
    assert all(results[i].healthy for i in range(9))
    assert results[9].health_reason == Reason.FORECAST_INACCURATE
    assert results[9].stage.replicas is None
    assert results[9].live_error["requests"] == pytest.approx(20 / 30)
    assert len(results[13].outcomes) == 8


def test_accurate_forecast_stays_healthy() -> None:
    spec = predictive_spec()
    last = list(replay(spec, predicted=30.0, observed=29.0, calls=20))[-1][1]
    assert last.healthy and last.stage.replicas is not None
    assert last.live_error["requests"] == pytest.approx(1 / 29)
    assert len(last.pending) <= 7  # one per future bin up to the lead time


def test_error_is_floored_at_one_replica_of_load() -> None:
    # Night: 0.5 req/s forecast, nothing observed. Relative to one replica's planned 3.2 req/s: 16 %.
    spec = predictive_spec()
    last = list(replay(spec, predicted=0.5, observed=0.0, calls=12))[-1][1]
    assert last.healthy
    assert last.live_error["requests"] == pytest.approx(0.5 / 3.2)


def test_late_observation_is_dropped_not_scored() -> None:
    spec = predictive_spec()
    first = run(spec, predictive({"requests": flat_forecast(10)}, {"requests": 10.0}))
    assert len(first.pending) == 1
    # 10 minutes later the bin (+5..+6 min) ended 4 minutes ago: more than half a step late.
    later = run(spec, predictive({"requests": None}, {"requests": 10.0}), first.pending, first.outcomes,
                T + 600)
    assert later.outcomes == () and later.pending == ()


def test_pending_waits_for_an_observation() -> None:
    spec = predictive_spec()
    first = run(spec, predictive({"requests": flat_forecast(10)}))
    later = run(spec, predictive({"requests": None}, {}), first.pending, first.outcomes, T + 365)
    assert later.pending == first.pending  # bin over 5 s ago, no observed rate yet: kept


def test_ten_minute_bins_are_scored_once_per_bin() -> None:
    """The shipped trace's native bin: one pending forecast per 10-minute bin, scored when it ends."""
    spec = predictive_spec(forecast=forecast_spec(horizon="2h"))
    pending, outcomes = (), ()
    for i in range(60):  # an hour of 1-minute syncs
        now = NOW + timedelta(minutes=i)
        start = NOW.replace(minute=0)  # forecasts on the 10-minute grid, remade at every sync
        inputs = predictive({"requests": flat_forecast(12.0, generated_at=now, start=start, minutes=120, step=600,
                                                       spread=1.0)}, {"requests": 10.0})
        result = run(spec, inputs, pending, outcomes, now.timestamp())
        pending, outcomes = result.pending, result.outcomes
        assert len(pending) <= 2
    targets = [o.target - T for o in outcomes]
    assert targets == [0.0, 600.0, 1200.0, 1800.0, 2400.0]  # one outcome per bin, each scored once
    assert result.live_error["requests"] == pytest.approx(0.2)


def _outcomes(error: float, n: int = 6) -> tuple[ForecastOutcome, ...]:
    return tuple(ForecastOutcome("requests", T - 60 * (n - i), 10.0, 10.0, error) for i in range(n))


def test_live_errors_follow_the_outcomes() -> None:
    spec = predictive_spec(forecast=forecast_spec(maxLiveError=0.5))
    inputs = predictive({"requests": flat_forecast(30.0)}, {"requests": 30.0})
    good, bad = _outcomes(0.1), _outcomes(0.9)
    for _ in range(2):
        ok = run(spec, inputs, (), good)
        assert ok.healthy and ok.live_error == {"requests": pytest.approx(0.1)}
        assert ok.health_message == "forecasts fresh; median live error requests 10%"
        poor = run(spec, inputs, (), bad)
        assert poor.health_reason == Reason.FORECAST_INACCURATE and poor.live_error == {"requests": pytest.approx(0.9)}


def test_a_returned_live_error_can_be_changed_without_touching_the_next_result() -> None:
    spec = predictive_spec()
    inputs = predictive({"requests": flat_forecast(30.0)}, {"requests": 30.0})
    outcomes = _outcomes(0.1)
    first = run(spec, inputs, (), outcomes)
    first.live_error["requests"] = 99.0  # a caller's own copy
    assert run(spec, inputs, (), outcomes).live_error == {"requests": pytest.approx(0.1)}
