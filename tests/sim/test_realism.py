"""Simulator realism, each off by default: client timeouts, gateway shedding, drawn cold starts, KV usage.

The queue scenarios are small enough to follow by hand: one replica with a single sequence slot
(max_num_seqs 1), one request arriving every second (prompt 400, output 800 tokens at the
80 tokens/s small-batch speed: 10 s a request), for 60 s. The first request is admitted at once and
meets the 2 s SLO; the slot frees every 10 s (ticks 10, 20, ..., 50), each time for the oldest
request still waiting, which has waited > 2 s.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from controller.sim.coldstart import ColdStartDraws, ColdStartModel
from controller.sim.config import DEFAULT_KV_CACHE_TOKENS, KV_BYTES_PER_TOKEN, ReplicaModel, SimConfig
from controller.sim.engine import MetricsSample, run
from controller.sim.results import summarise
from tests.sim.conftest import ScriptedScaler, flat_workload

ONE_SLOT = ReplicaModel(max_num_seqs=1)


def one_slot_config(**extra) -> SimConfig:
    return SimConfig(lead_seconds=0, max_replicas=1, metrics_delay_seconds=0, replica=ONE_SLOT, **extra)


@pytest.mark.parametrize(
    ("extra", "admitted", "queued", "abandoned", "rejected", "misses"),
    [
        # No timeout, no limit: requests 0-5 are admitted (FIFO), 54 still wait at the end, of which
        # those older than the SLO at the end (arrived before 57.5 s: 52) are misses, with 5 late
        # admissions: 57.
        pytest.param({}, 6, 54, 0, 0, 57, id="fluid-queue"),
        # Timeout 5 s: a request older than 5 whole ticks is gone; each free slot takes the one that
        # arrived 5 s before (5, 15, ..., 45). At the end 54-59 wait; 48 were abandoned. Misses:
        # 48 abandoned + 5 late admissions + 4 still waiting past 2 s (54-57).
        pytest.param({"request_timeout_seconds": 5.0}, 6, 6, 48, 0, 57, id="timeout-5s"),
        # Timeout 20 s: admitted 0, 1, 2, then 10, 20, 30; at the end 39-59 wait; 33 abandoned.
        pytest.param({"request_timeout_seconds": 20.0}, 6, 21, 33, 0, 33 + 5 + 19, id="timeout-20s"),
        # At most 3 waiting per ready replica: 1, 2, 3 wait; every later arrival is turned away
        # unless a slot freed in its own tick (10, 20, ..., 50 get in). Accepted 9, rejected 51;
        # misses: 51 rejected + 5 late admissions + 3 still waiting past 2 s (30, 40, 50).
        pytest.param({"max_waiting_per_replica": 3.0}, 6, 3, 0, 51, 59, id="limit-3"),
        # No queueing at all: only the arrivals that find the slot free get in, and they meet the SLO.
        pytest.param({"max_waiting_per_replica": 0.0}, 6, 0, 0, 54, 54, id="limit-0"),
    ],
)
def test_timeouts_and_shedding_by_hand(extra, admitted, queued, abandoned, rejected, misses) -> None:
    config = one_slot_config(**extra)
    workload = flat_workload(1, 60.0, config, output=800.0)
    result = run(workload, config, ScriptedScaler(1))
    assert result.arrived == 60
    assert result.admitted == pytest.approx(admitted)
    assert result.queued_at_end == pytest.approx(queued)
    assert result.abandoned == pytest.approx(abandoned)
    assert result.rejected == pytest.approx(rejected)
    assert result.slo_misses == pytest.approx(misses)
    # Nothing is lost: served, running, waiting, turned away or given up.
    assert (result.completed + result.running_at_end + result.queued_at_end + result.rejected
            + result.abandoned) == pytest.approx(result.arrived)
    outcome = summarise(result, 0.0, None)
    assert outcome.requests == 60
    assert outcome.slo_attainment == pytest.approx(1 - misses / 60)
    assert (outcome.rejected, outcome.abandoned) == (pytest.approx(rejected), pytest.approx(abandoned))
    # The per-minute series counts the turned away and the given up when it happens (only those
    # still waiting at the end are added after it).
    assert rejected + abandoned <= sum(result.series.misses) <= misses


def test_shedding_caps_what_the_metrics_show_waiting() -> None:
    config = one_slot_config(max_waiting_per_replica=3.0)
    scaler = ScriptedScaler(1)
    run(flat_workload(2, 60.0, config, output=800.0), config, scaler)
    waiting = [s.waiting for _, s, _ in scaler.seen if s is not None]
    assert max(waiting) == pytest.approx(3.0)
    unlimited = ScriptedScaler(1)
    run(flat_workload(2, 60.0, one_slot_config(), output=800.0), one_slot_config(), unlimited)
    assert max(s.waiting for _, s, _ in unlimited.seen if s is not None) > 90


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        pytest.param("request_timeout_seconds", 0.0, "request_timeout_seconds", id="zero-timeout"),
        pytest.param("max_waiting_per_replica", -1.0, "max_waiting_per_replica", id="negative-limit"),
        pytest.param("cold_start", {"kind": "tail", "tail_fraction": 1.5}, "tail_fraction", id="tail-over-1"),
        pytest.param("cold_start", {"kind": "gamma"}, "kind", id="unknown-kind"),
    ],
)
def test_bad_realism_settings_name_the_field(field: str, value, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SimConfig(**{field: value})


# --- cold starts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "low", "high", "median", "tail_share"),
    [
        # All pods at the lead: the mixture without a tail, and the lognormal without spread.
        pytest.param(ColdStartModel(kind="tail", tail_fraction=0.0), 300, 300, 300, 0.0, id="no-tail"),
        pytest.param(ColdStartModel(kind="lognormal", sigma=0.0), 300, 300, 300, 0.0, id="no-spread"),
        # 10 % slow image pulls, uniform up to 3x: the rest exactly at the lead.
        pytest.param(ColdStartModel(kind="tail", tail_fraction=0.1), 300, 900, 300, 0.1, id="tail-10pct"),
        # Every pod slow: uniform on [lead, 3 lead], median 2 lead.
        pytest.param(ColdStartModel(kind="tail", tail_fraction=1.0), 300, 900, 600, 1.0, id="all-slow"),
        # A wide lognormal is clipped to [lead / 3, 3 lead]; its median stays the lead.
        pytest.param(ColdStartModel(kind="lognormal", sigma=2.0), 100, 900, 300, None, id="clipped"),
    ],
)
def test_cold_start_distributions(model, low, high, median, tail_share) -> None:
    draws = ColdStartDraws(model, lead_seconds=300.0, tick_seconds=1.0, seed=0)
    ticks = np.array([draws.next_ticks() for _ in range(20_000)])
    assert ticks.min() >= low and ticks.max() <= high
    assert np.median(ticks) == pytest.approx(median, rel=0.05)
    if tail_share is not None:
        assert np.mean(ticks > 300) == pytest.approx(tail_share, abs=0.01)
    assert draws.drawn == 20_000


def test_the_nth_new_replica_gets_the_nth_draw_whatever_the_seed_stream_is_asked() -> None:
    model = ColdStartModel(kind="lognormal", sigma=0.3)
    a = ColdStartDraws(model, 300.0, 1.0, seed=3)
    b = ColdStartDraws(model, 300.0, 1.0, seed=3)
    c = ColdStartDraws(model, 300.0, 1.0, seed=4)
    first = [a.next_ticks() for _ in range(3000)]  # crosses refill blocks
    assert first == [b.next_ticks() for _ in range(3000)]
    assert first != [c.next_ticks() for _ in range(3000)]


class ReadyRecorder:
    """Asks for `plan[tick]` from that tick on and records the ready pods at every sync."""

    name = "recorder"

    def __init__(self, initial: int, plan: dict[int, int]) -> None:
        self.start, self.plan, self.want = initial, plan, initial
        self.ready: dict[int, int] = {}

    def initial(self, workload, config) -> int:
        return self.start

    def desired(self, tick: int, sample: MetricsSample | None, current: int, ready: int) -> int:
        self.ready[tick] = ready
        self.want = self.plan.get(tick, self.want)
        return self.want


def _ready_times(recorder: ReadyRecorder, initial: int) -> list[int]:
    """The ticks at which the ready count went up, one entry per replica."""
    times, before = [], initial
    for tick in sorted(recorder.ready):
        times += [tick] * (recorder.ready[tick] - before)
        before = recorder.ready[tick]
    return times


@pytest.mark.parametrize("request_at", [pytest.param(60, id="at-60s"), pytest.param(200, id="at-200s")])
def test_new_replicas_become_ready_after_their_drawn_cold_start(request_at: int) -> None:
    model = ColdStartModel(kind="tail", tail_fraction=0.5)
    config = SimConfig(lead_seconds=120, max_replicas=10, sync_seconds=1, scrape_seconds=1, seed=5,
                       cold_start=model)
    expected = ColdStartDraws(model, 120.0, 1.0, seed=5)
    leads = [expected.next_ticks() for _ in range(3)]
    recorder = ReadyRecorder(1, {request_at: 4})
    result = run(flat_workload(15, 300.0, config), config, recorder)
    # The replica requested at tick t is ready from the sync after t + its cold start (the engine
    # promotes in step 2, after the sync of the same tick).
    assert _ready_times(recorder, 1) == sorted(request_at + lead + 1 for lead in leads)
    assert result.cold_starts == 3
    # Whenever the plan runs, the first three new replicas get the same three cold starts.


def test_scale_in_cancels_the_newest_request_even_when_it_would_be_ready_first() -> None:
    model = ColdStartModel(kind="tail", tail_fraction=1.0)
    config = SimConfig(lead_seconds=100, max_replicas=10, sync_seconds=1, scrape_seconds=1, seed=2,
                       cold_start=model)
    draws = ColdStartDraws(model, 100.0, 1.0, seed=2)
    first, second = draws.next_ticks(), draws.next_ticks()
    recorder = ReadyRecorder(1, {0: 3, 10: 2})  # two requested at 0 s, one cancelled at 10 s
    result = run(flat_workload(6, 300.0, config), config, recorder)
    assert _ready_times(recorder, 1) == [first + 1]  # only the first requested one ever serves
    # GPU time: 1 replica all along, the kept one from 0 s, the cancelled one for 10 s.
    assert result.gpu_seconds == pytest.approx(360 + 360 + 10)
    assert second < first  # (seed 2: 271 s and 142 s) the cancelled one would have served first


def test_without_a_cold_start_model_every_lead_is_exact() -> None:
    config = SimConfig(lead_seconds=120, max_replicas=10, sync_seconds=1, scrape_seconds=1)
    recorder = ReadyRecorder(1, {30: 3})
    result = run(flat_workload(6, 300.0, config), config, recorder)
    assert _ready_times(recorder, 1) == [151, 151] and result.cold_starts == 0


# --- KV-cache usage ---------------------------------------------------------------------------


def test_default_kv_capacity_is_the_derivation_in_capacity_md() -> None:
    assert KV_BYTES_PER_TOKEN == 128 * 1024  # 2 x 32 layers x 8 KV heads x 128 dims x 2 bytes
    assert DEFAULT_KV_CACHE_TOKENS == 442_368  # 54 GiB of cache
    assert ReplicaModel().kv_cache_tokens == DEFAULT_KV_CACHE_TOKENS


@pytest.mark.parametrize(
    ("capacity", "usage"),
    [
        # 12.5 requests/s per replica, each holding its 400-token prompt plus what it has generated:
        # 80 tokens/s for 1.25 s, a tick at 440 tokens on average and a quarter tick at 490:
        # 12.5 x (440 + 0.25 x 490) = 7,031.25 tokens per replica.
        pytest.param(10_000, 0.703125, id="10k-tokens"),
        pytest.param(20_000, 0.3515625, id="20k-tokens"),
        pytest.param(5_000, 1.0, id="full-clipped"),  # 1.41 of the cache: vLLM would preempt
    ],
)
def test_kv_cache_usage_is_the_tokens_in_flight_over_the_capacity(capacity: int, usage: float) -> None:
    config = SimConfig(lead_seconds=0, max_replicas=10, metrics_delay_seconds=0,
                       replica=ReplicaModel(kv_cache_tokens=capacity))
    scaler = ScriptedScaler(2)
    run(flat_workload(3, 1500.0, config, prompt=400.0, output=100.0), config, scaler)
    last = scaler.seen[-1][1]
    assert last.running == pytest.approx(12.5 * 1.25)
    assert last.kv_cache_usage == pytest.approx(usage, rel=1e-9)


def test_kv_usage_stays_in_range_and_empties_with_the_replicas_work() -> None:
    config = SimConfig(lead_seconds=0, max_replicas=10, metrics_delay_seconds=0,
                       replica=ReplicaModel(kv_cache_tokens=20_000))
    workload = flat_workload(6, 240.0, config, output=1000.0)
    workload.arrivals[180:] = [0] * (len(workload.arrivals) - 180)  # traffic stops after 3 minutes
    scaler = ScriptedScaler(3, {60: 1, 120: 4})  # drains to one replica (overloaded), then 4
    run(workload, config, scaler)
    usage = [s.kv_cache_usage for _, s, _ in scaler.seen if s is not None]
    assert all(0.0 <= u <= 1.0 for u in usage) and max(usage) > 0.5
    assert usage[-1] == 0.0  # 1,000 tokens at 80/s: all done 12.5 s after the last arrival


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25,
          suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.function_scoped_fixture])
@given(
    start=st.integers(1, 6),
    plan=st.dictionaries(st.integers(0, 7).map(lambda m: m * 30), st.integers(1, 8), max_size=5),
    load=st.floats(0.2, 3.0),
    timeout=st.one_of(st.none(), st.floats(1.0, 60.0)),
    limit=st.one_of(st.none(), st.floats(0.0, 50.0)),
    tail=st.one_of(st.none(), st.floats(0.0, 1.0)),
)
def test_invariants_with_every_realism_knob(start, plan, load, timeout, limit, tail) -> None:
    """Whatever the scaler and the knobs: every arrival is accounted for, the misses include every
    rejected and abandoned request, and the KV usage stays a fraction."""
    config = SimConfig(lead_seconds=60, max_replicas=8, metrics_delay_seconds=15,
                       request_timeout_seconds=timeout, max_waiting_per_replica=limit,
                       cold_start=None if tail is None else ColdStartModel(kind="tail", tail_fraction=tail),
                       replica=ReplicaModel(kv_cache_tokens=50_000))
    scaler = ScriptedScaler(start, plan)
    result = run(flat_workload(5, load * 1500.0, config, output=300.0), config, scaler)
    assert (result.completed + result.running_at_end + result.queued_at_end + result.rejected
            + result.abandoned) == pytest.approx(result.arrived, rel=1e-9)
    assert result.rejected >= 0 and result.abandoned >= 0
    assert result.rejected + result.abandoned - 1e-6 <= result.slo_misses <= result.arrived + 1e-6
    assert (timeout is not None) or result.abandoned == 0
    assert (limit is not None) or result.rejected == 0
    assert all(0.0 <= s.kv_cache_usage <= 1.0 for _, s, _ in scaler.seen if s is not None)
