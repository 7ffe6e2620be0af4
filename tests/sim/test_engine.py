"""The fluid cluster: determinism, conservation, cold start, GPU accounting, drains, queueing."""

from __future__ import annotations

import math

import pytest

from controller.sim.config import SimConfig
from controller.sim.engine import hist_quantile, run
from controller.sim.reference import OracleScaler, StaticScaler
from controller.sim.workload import build_workload
from tests.sim.conftest import ScriptedScaler, daily_frame, flat_workload

PER_REPLICA_RPM = 1500.0  # 400-token prompts at 10k tokens/s, 100-token outputs at 3k tokens/s: 25 req/s


def test_same_seed_same_outcome_other_seed_other_arrivals(config: SimConfig) -> None:
    frame = daily_frame(2)
    a = build_workload(frame, config, replay_days=0.25, peak_replicas=5)
    b = build_workload(frame, config, replay_days=0.25, peak_replicas=5)
    c = build_workload(frame, config.model_copy(update={"seed": 7}), replay_days=0.25, peak_replicas=5)
    assert a.arrivals == b.arrivals and a.arrivals != c.arrivals
    ra, rb = run(a, config, OracleScaler()), run(b, config, OracleScaler())
    assert (ra.slo_misses, ra.gpu_seconds, ra.hist, ra.series.requested) == (
        rb.slo_misses, rb.gpu_seconds, rb.hist, rb.series.requested)


@pytest.mark.parametrize("replicas", [pytest.param(1, id="overloaded"), pytest.param(4, id="ample")])
def test_every_arrived_request_is_served_running_or_queued(config: SimConfig, replicas: int) -> None:
    workload = flat_workload(30, 2.5 * PER_REPLICA_RPM, config)
    result = run(workload, config, ScriptedScaler(replicas))
    assert result.arrived == pytest.approx(sum(workload.arrivals))
    accounted = result.completed + result.running_at_end + result.queued_at_end
    assert accounted == pytest.approx(result.arrived, rel=1e-9)
    assert result.admitted + result.queued_at_end == pytest.approx(result.arrived, rel=1e-9)
    if replicas == 1:
        assert result.queued_at_end > 0.5 * result.arrived  # 2.5x the capacity of one replica


def test_a_replica_is_not_ready_before_the_lead_time() -> None:
    config = SimConfig(lead_seconds=300, max_replicas=10, metrics_delay_seconds=0)
    workload = flat_workload(12, 600.0, config)
    scaler = ScriptedScaler(1, {60: 4})  # ask for 3 more at t = 60 s
    result = run(workload, config, scaler)
    ready_seen = [(tick, s.ready) for tick, s, _ in scaler.seen if s is not None]
    assert all(ready == 1 for tick, ready in ready_seen if tick < 60 + 300)
    assert any(ready == 4 for tick, ready in ready_seen if tick >= 60 + 300 + 15)
    # per-minute series: requested jumps in minute 1, ready only from minute 6 (60 s + 300 s)
    assert result.series.requested[1] == 4 and result.series.ready[5] == 1 and result.series.ready[6] == 4


def test_gpu_time_counts_from_the_request_and_stops_when_a_pending_replica_is_cancelled() -> None:
    config = SimConfig(lead_seconds=300, max_replicas=10)
    workload = flat_workload(10, 300.0, config)
    # 1 replica throughout; 2 more requested at 60 s and cancelled at 120 s (still pending).
    result = run(workload, config, ScriptedScaler(1, {60: 3, 120: 1}))
    assert result.gpu_seconds == pytest.approx(600 + 2 * 60)
    # 2 more requested at 60 s and kept: they count from 60 s though they serve only from 360 s.
    kept = run(workload, config, ScriptedScaler(1, {60: 3}))
    assert kept.gpu_seconds == pytest.approx(600 + 2 * 540)


def test_a_drained_replica_finishes_its_work_and_counts_until_then() -> None:
    config = SimConfig(lead_seconds=0, max_replicas=10)
    # Long outputs (1,000 tokens at <= 80 tokens/s: 12.5 s a sequence) keep sequences running.
    workload = flat_workload(10, 120.0, config, prompt=200.0, output=1000.0)
    drained = run(workload, config, ScriptedScaler(2, {300: 1}))
    assert drained.scale_events == 1
    # The drained replica keeps its GPU until its sequences finish (~1,000 / 80 s after the drain).
    extra = drained.gpu_seconds - (600 + 300)
    assert extra == pytest.approx(1000 / 80, abs=2)
    # ...and they are served: nothing is lost in the drain.
    assert drained.completed > 0.95 * drained.arrived
    assert drained.completed + drained.running_at_end + drained.queued_at_end == pytest.approx(drained.arrived)


@pytest.mark.parametrize(
    ("provisioned", "expect_misses"),
    [
        pytest.param(1.5, False, id="50pct-headroom"),
        pytest.param(1.1, False, id="10pct-headroom"),
        pytest.param(0.95, True, id="5pct-short"),
        pytest.param(0.7, True, id="30pct-short"),
    ],
)
def test_ttft_grows_when_under_provisioned(provisioned: float, expect_misses: bool) -> None:
    config = SimConfig(lead_seconds=300, max_replicas=50)
    replicas = 10
    workload = flat_workload(20, replicas * PER_REPLICA_RPM / provisioned, config)
    result = run(workload, config, ScriptedScaler(replicas))
    p99 = hist_quantile(result.hist, 0.99)
    assert (result.slo_misses > 0) == expect_misses
    if expect_misses:
        assert p99 > config.slo_ttft_seconds
    else:
        assert p99 < 0.2


def test_ttft_is_monotone_in_the_shortfall() -> None:
    config = SimConfig(lead_seconds=300, max_replicas=50)
    p99s = []
    for provisioned in (1.2, 1.0, 0.9, 0.8):
        workload = flat_workload(15, 10 * PER_REPLICA_RPM / provisioned, config)
        p99s.append(hist_quantile(run(workload, config, ScriptedScaler(10)).hist, 0.99))
    assert p99s == sorted(p99s) and p99s[-1] > p99s[0]


def test_oracle_meets_the_slo_on_a_smooth_trace_with_fewer_gpu_hours_than_static() -> None:
    config = SimConfig(lead_seconds=300, max_replicas=80)
    workload = build_workload(daily_frame(2), config, replay_days=1, peak_replicas=30)
    oracle = run(workload, config, OracleScaler())
    static = run(workload, config, StaticScaler())
    assert oracle.slo_misses == 0 and static.slo_misses == 0
    assert oracle.gpu_seconds < 0.8 * static.gpu_seconds
    assert static.gpu_seconds == pytest.approx(30 * 86400, rel=0.04)  # the peak needs ~30 replicas
    assert oracle.scale_events > 10


def test_metrics_are_what_a_vllm_replica_exposes_and_arrive_late() -> None:
    config = SimConfig(lead_seconds=300, max_replicas=10, metrics_delay_seconds=30)
    workload = flat_workload(5, 2 * 0.5 * PER_REPLICA_RPM, config)  # 50% utilisation on 2 replicas
    scaler = ScriptedScaler(2)
    run(workload, config, scaler)
    for tick, sample, _ in scaler.seen:
        if sample is not None:
            assert sample.tick <= tick - 30  # never fresher than the pipeline delay
    last = scaler.seen[-1][1]
    assert last.ready == 2 and last.pending == 0 and last.waiting == pytest.approx(0, abs=1e-6)
    # Little's law: 12.5 req/s per replica x (40 ms prefill + 100 tokens / 80 tokens/s) ~ 16 sequences.
    assert last.running == pytest.approx(12.5 * (0.04 + 100 / 80), rel=0.15)
    assert 0 < last.kv_cache_usage < 1
    assert last.request_success_total > 0 and last.prompt_tokens_total > last.generation_tokens_total


def test_histogram_quantiles_are_within_a_bin() -> None:
    from controller.sim.engine import HIST_BINS, hist_index

    hist = [0.0] * HIST_BINS
    for value in (0.01, 0.1, 1.0, 10.0):
        hist[hist_index(value)] += 1
    assert hist_quantile(hist, 0.5) == pytest.approx(0.1, rel=0.05)
    assert hist_quantile(hist, 0.99) == pytest.approx(10.0, rel=0.05)
    assert math.isnan(hist_quantile([0.0] * HIST_BINS, 0.5))


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25,
          suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.function_scoped_fixture])
@given(
    start=st.integers(1, 6),
    plan=st.dictionaries(st.integers(0, 7) .map(lambda m: m * 30), st.integers(1, 8), max_size=5),
    load=st.floats(0.2, 3.0),
    lead=st.sampled_from([0, 60, 120]),
)
def test_invariants_under_any_scaling_plan(start, plan, load, lead) -> None:
    """Whatever the scaler does: nothing is lost, GPU time covers the serving replicas, bounds hold."""
    config = SimConfig(lead_seconds=lead, max_replicas=8, metrics_delay_seconds=15)
    workload = flat_workload(5, load * PER_REPLICA_RPM, config, output=300.0)
    result = run(workload, config, ScriptedScaler(start, plan))
    assert result.completed + result.running_at_end + result.queued_at_end == pytest.approx(result.arrived, rel=1e-9)
    # At least one replica is paid for all the time; never more than max_replicas plus drain tails.
    assert result.replay_seconds <= result.gpu_seconds <= 8 * result.replay_seconds + 8 * 60
    assert all(1 <= r <= 8 for r in result.series.requested)
    assert all(ready <= req for ready, req in zip(result.series.ready, result.series.requested))
    assert 0 <= result.slo_misses <= result.admitted + result.queued_at_end + 1e-6
