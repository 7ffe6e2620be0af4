"""The drain metric (controller/sim/backlog.py): replicas for the arrivals plus the queue left at ready time."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.policy import PredictiveAutoscalerSpec
from controller.sim.backlog import ArrivalRate, replicas_needed
from controller.sim.config import SimConfig
from controller.sim.engine import MetricsSample, run
from controller.sim.policies import DecideScaler, base_spec, metric_spec
from tests.sim.conftest import flat_workload

RPS = 2.0  # requests per second one replica sustains in the table below


@pytest.mark.parametrize("arrivals, waiting, requested, lead, drain, expected", [
    pytest.param(4.0, 0.0, 2, 300.0, 60.0, 2.0, id="no-queue-the-arrivals-alone"),
    # 10 replica-seconds queued, 3 replicas asked for and 1 of load: it drains long before 300 s.
    pytest.param(2.0, 20.0, 3, 300.0, 60.0, 1.0, id="a-queue-that-drains-before-ready-adds-nothing"),
    # 4 replicas of load on 2: by ready time 600 replica-seconds wait, drained in 60 s by 10 more.
    pytest.param(8.0, 0.0, 2, 300.0, 60.0, 14.0, id="under-provisioned-the-growth-until-ready"),
    pytest.param(8.0, 240.0, 4, 300.0, 60.0, 6.0, id="enough-asked-for-only-the-queue-now"),
    pytest.param(8.0, 240.0, 4, 0.0, 120.0, 4.0 + 120.0 / 120.0, id="no-cold-start-the-queue-over-the-budget"),
])
def test_replicas_needed_table(arrivals, waiting, requested, lead, drain, expected) -> None:
    assert replicas_needed(arrivals, waiting, RPS, requested, lead, drain) == pytest.approx(expected)


@pytest.mark.parametrize("kwargs, field", [
    ({"arrivals_per_second": -1.0}, "arrivals_per_second"),
    ({"waiting": math.nan}, "waiting"),
    ({"lead_seconds": math.inf}, "lead_seconds"),
    ({"per_replica_rps": 0.0}, "per_replica_rps"),
    ({"drain_seconds": 0.0}, "drain_seconds"),
])
def test_replicas_needed_names_a_bad_input(kwargs, field) -> None:
    args = {"arrivals_per_second": 1.0, "waiting": 0.0, "per_replica_rps": 1.0, "requested": 1,
            "lead_seconds": 300.0, "drain_seconds": 60.0, **kwargs}
    with pytest.raises(ValueError, match=field):
        replicas_needed(**args)


finite = st.floats(0, 1e4, allow_nan=False)


@given(arrivals=finite, waiting=finite, requested=st.integers(0, 200), more=st.floats(0, 100),
       lead=st.floats(0, 900), drain=st.floats(1, 900))
def test_more_load_never_fewer_replicas_more_asked_never_more(arrivals, waiting, requested, more, lead,
                                                               drain) -> None:
    base = replicas_needed(arrivals, waiting, RPS, requested, lead, drain)
    assert base >= arrivals / RPS - 1e-9  # never below what the arrivals keep busy
    assert replicas_needed(arrivals + more, waiting, RPS, requested, lead, drain) >= base - 1e-9
    assert replicas_needed(arrivals, waiting + more, RPS, requested, lead, drain) >= base - 1e-9
    assert replicas_needed(arrivals, waiting, RPS, requested + 1, lead, drain) <= base + 1e-9
    # No wind-up: bounded by the work there is (what waits, and what arrives over one cold start),
    # whatever the fleet asked for before; an in-flight metric grows with the queue times the fleet.
    load = arrivals / RPS
    assert base <= load + (waiting / RPS + load * lead) / drain + 1e-6


def test_arrival_rate_is_completions_plus_the_growth_in_flight() -> None:
    rate = ArrivalRate(window_seconds=60.0)
    assert rate.per_second() is None
    for k in range(6):  # 10 completions a second, 2 more in flight each second
        rate.add(15.0 * k, completed_total=150.0 * k, in_flight=30.0 * k)
    assert rate.per_second() == pytest.approx(12.0)
    rate.add(75.0, completed_total=750.0, in_flight=150.0)  # the same scrape again: ignored
    assert rate.per_second() == pytest.approx(12.0)


def test_arrival_rate_keeps_only_its_window_and_restarts_on_a_counter_reset() -> None:
    rate = ArrivalRate(window_seconds=30.0)
    for k in range(4):  # 4/s, then the last two scrapes at 1/s
        rate.add(15.0 * k, completed_total=[0.0, 60.0, 120.0, 135.0][k], in_flight=0.0)
    assert rate.per_second() == pytest.approx((135.0 - 60.0) / 30.0)  # the first scrape left the window
    rate.add(75.0, completed_total=5.0, in_flight=0.0)  # a restart: the counter went back
    assert rate.per_second() is None
    with pytest.raises(ValueError, match="window_seconds"):
        ArrivalRate(0.0)


def test_the_drain_metric_is_one_external_value_at_the_utilization() -> None:
    entry = metric_spec("drain", 0.7)
    assert entry["type"] == "External"
    assert entry["external"]["metric"]["name"] == "prescaler_vllm_replicas_needed"
    assert entry["external"]["target"] == {"type": "AverageValue", "averageValue": "700m"}


def _drain_scaler(config: SimConfig, workload, metric: str, *, initial: int) -> DecideScaler:
    factor = 0.8 if metric == "drain" else 1.0
    spec = PredictiveAutoscalerSpec.model_validate(base_spec(workload, config, metric=metric, target_factor=factor))
    scaler = DecideScaler(metric, spec, workload, config, metric=metric, queue_weight=1.0)
    scaler.initial = lambda w, c: initial  # type: ignore[method-assign]  # start under-provisioned
    return scaler


def test_the_drain_metric_reads_two_scrapes() -> None:
    config = SimConfig(lead_seconds=300, max_replicas=50)
    workload = flat_workload(30, 1200.0, config, history_days=0.1)
    scaler = _drain_scaler(config, workload, "drain", initial=2)
    first = MetricsSample(tick=0, ready=2, pending=0, running=4.0, waiting=0.0, kv_cache_usage=0.1,
                          prompt_tokens_total=0.0, generation_tokens_total=0.0, request_success_total=0.0)
    (observation,) = scaler._reactive(first, current=2, ready=2).metrics
    assert observation.value is None and observation.pod_values is None  # one scrape: no rate yet
    second = MetricsSample(tick=15, ready=2, pending=0, running=4.0, waiting=3.0, kv_cache_usage=0.1,
                           prompt_tokens_total=0.0, generation_tokens_total=0.0, request_success_total=30.0)
    (observation,) = scaler._reactive(second, current=2, ready=2).metrics
    per_replica = scaler._per_replica_rps
    # 30 completed + 6 more in flight over 15 s: 2.4/s arriving; the queue is the 6 waiting.
    assert observation.value == pytest.approx(replicas_needed(2.4, 6.0, per_replica, 2, 300.0, 60.0))


def test_from_an_under_provisioned_start_drain_asks_less_than_in_flight_and_still_catches_up() -> None:
    """The wind-up the metric exists to remove: a queue built during a cold start."""
    config = SimConfig(lead_seconds=300, max_replicas=400)
    workload = flat_workload(40, 24000.0, config, history_days=0.1)  # 20 replicas at 80 %
    need = max(1, math.ceil(24000.0 / 60.0 / config.replica.requests_per_second(400.0, 100.0)
                            / config.target_utilization))
    peaks = {}
    for metric in ("inflight", "drain"):
        result = run(workload, config, _drain_scaler(config, workload, metric, initial=max(1, need // 4)))
        peaks[metric] = max(result.series.requested)
        assert result.series.ready[-1] >= need * 0.9, metric  # both serve the load in the end
    assert peaks["drain"] < peaks["inflight"]
    # Bounded by the work: 16 replicas of load (20 at 80 %) on 5, so 11 x 300 s queued by ready time,
    # drained in 60 s: (16 + 55) / 0.8 = 89, plus the queue of the ~30 s before two scrapes give a rate
    # (11 x 30 / 60 / 0.8 = 7); the in-flight metric multiplies the queue by the fleet, to the maximum.
    assert peaks["drain"] <= 100, peaks
    assert peaks["inflight"] == config.max_replicas
