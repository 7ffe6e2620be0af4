"""The `kpa` family against what Knative documents and implements (controller/sim/kpa.py cites each rule).

Samples are fed one a second unless a test says otherwise; a total concurrency of C on R ready pods
is a sample with (running + waiting) = C / R per pod.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from controller.sim.config import SimConfig
from controller.sim.engine import MetricsSample, run
from controller.sim.kpa import KpaScaler, KpaSettings, knative_timing
from tests.sim.conftest import flat_workload


def sample(tick: int, total: float, ready: int, *, kv: float = 0.0) -> MetricsSample:
    return MetricsSample(tick=tick, ready=ready, pending=0, running=total / ready, waiting=0.0,
                         kv_cache_usage=kv, prompt_tokens_total=0.0, generation_tokens_total=0.0,
                         request_success_total=0.0)


def feed(scaler: KpaScaler, totals: list[float], ready: int, start: int = 0) -> int | None:
    """One sample a second from `start`, then one decision at the last sample's second."""
    for i, total in enumerate(totals):
        scaler.observe(sample(start + i, total, ready))
    return scaler.decide(float(start + len(totals) - 1), ready)


@pytest.mark.parametrize(
    ("target", "utilization", "value"),
    [
        # config-autoscaler: "if a Revision specifies ContainerConcurrency of 10, then the Autoscaler
        # will try to maintain 7 concurrent connections per pod on average."
        pytest.param(10, 0.7, 7.0, id="cc10-70pct"),
        pytest.param(100, 0.7, 70.0, id="default-100-70pct"),
        pytest.param(4, 1.0, 4.0, id="full-utilization"),
        pytest.param(0.005, 0.7, 0.01, id="floored-at-target-min"),
    ],
)
def test_target_is_container_concurrency_times_utilization(target, utilization, value) -> None:
    assert KpaSettings(target=target, target_utilization=utilization).target_value == pytest.approx(value)


def test_windows_default_to_knatives() -> None:
    s = KpaSettings(target=10)
    assert (s.stable_window_seconds, s.panic_window_seconds, s.panic_threshold) == (60.0, 6.0, 2.0)
    assert (s.max_scale_up_rate, s.max_scale_down_rate, s.scale_down_delay_seconds) == (1000.0, 2.0, 0.0)


@pytest.mark.parametrize(
    ("totals", "ready", "desired"),
    [
        # 30 s at 100 then 30 s at 200: the stable window's mean is 150, so ceil(150 / 10) = 15 pods;
        # the 6 s panic window (200: 20 pods) is under 2x the 15 ready, so no panic.
        pytest.param([100.0] * 30 + [200.0] * 30, 15, 15, id="mean-of-the-stable-window"),
        # A sample older than the 60 s window no longer counts: 1000 then 60 s of 120 -> 12 pods.
        pytest.param([1000.0] * 10 + [120.0] * 60, 12, 12, id="old-samples-leave"),
        # A partial window averages what it has (Knative: over the buckets since the first write).
        pytest.param([80.0] * 5, 8, 8, id="partial-window"),
    ],
)
def test_stable_mode_scales_on_the_stable_window_average(totals, ready, desired) -> None:
    scaler = KpaScaler(KpaSettings(target=10, target_utilization=1.0))
    assert feed(scaler, totals, ready) == desired
    assert scaler.panic_time is None


def test_window_average_with_coarse_scrapes_is_the_mean_of_the_samples_inside() -> None:
    scaler = KpaScaler(KpaSettings(target=1, target_utilization=1.0))
    for tick, total in zip((15, 30, 45, 60, 75), (10.0, 20.0, 30.0, 40.0, 50.0)):
        scaler.observe(sample(tick, total, 40))
    # (15, 75]: 20, 30, 40, 50 -> 35 -> 35 pods (40 ready: no panic, and above floor(40 / 2)).
    assert scaler.decide(75.0, 40) == 35


@pytest.mark.parametrize(
    ("burst", "panics", "desired"),
    [
        # 54 s at 100 on 10 pods, then 6 s at X. X = 200: the panic window wants 20 pods, 2.0x the
        # 10 ready (panic-threshold-percentage 200): panic, and the larger window wins: 20.
        pytest.param(200.0, True, 20, id="exactly-2x-panics"),
        pytest.param(300.0, True, 30, id="3x-panics"),
        # X = 190: 19 pods is 1.9x: stable mode, on the 60 s mean (5400 + 1140) / 60 = 109 -> 11.
        pytest.param(190.0, False, 11, id="1.9x-stays-stable"),
    ],
)
def test_panic_mode_is_entered_at_twice_the_ready_pods(burst, panics, desired) -> None:
    scaler = KpaScaler(KpaSettings(target=10, target_utilization=1.0))
    assert feed(scaler, [100.0] * 54 + [burst] * 6, 10) == desired
    assert (scaler.panic_time is not None) == panics


def test_in_panic_it_never_scales_down_and_leaves_after_a_stable_window_without_panic() -> None:
    scaler = KpaScaler(KpaSettings(target=10, target_utilization=1.0))
    assert feed(scaler, [100.0] * 54 + [300.0] * 6, 10) == 30  # panic at second 59
    assert scaler.panic_time == 59.0
    # The surge is over (10 pods' worth again); 60 s after the last second over the threshold the
    # panic still holds the 30 pods it reached.
    wants = [feed(scaler, [100.0], 30, start=t) for t in range(60, 120)]
    assert set(wants) == {30}
    # At 120 s, more than a stable window after 59 s: un-panic, and the stable mean decides (the
    # window now holds 60 s at 100: 10 pods, within floor(30 / 2) = 15 pods of max-scale-down-rate).
    assert feed(scaler, [100.0], 30, start=120) == 15
    assert scaler.panic_time is None and scaler.max_panic_pods == 0


def test_a_new_surge_in_panic_extends_it() -> None:
    scaler = KpaScaler(KpaSettings(target=10, target_utilization=1.0))
    feed(scaler, [100.0] * 54 + [300.0] * 6, 10)
    feed(scaler, [100.0] * 30, 30, start=60)
    feed(scaler, [700.0] * 6, 30, start=90)  # 70 pods wanted on 30 ready: over 2x again
    assert scaler.panic_time == 95.0 and scaler.max_panic_pods == 70


@pytest.mark.parametrize(
    ("settings", "totals", "ready", "desired"),
    [
        # max-scale-up-rate 2: "the number of pods can at most go N to 2N over single Autoscaler
        # period", even when the load asks for 100.
        pytest.param({"max_scale_up_rate": 2.0}, [1000.0] * 60, 10, 20, id="up-rate-2"),
        pytest.param({}, [1000.0] * 60, 10, 100, id="up-rate-1000"),
        # "but at least N to N+1": rate 1.1 on 2 pods, 3 pods wanted (autoscaler.go's own example).
        pytest.param({"max_scale_up_rate": 1.1, "target": 1.0}, [3.0] * 60, 2, 3, id="up-at-least-one"),
        # max-scale-down-rate 2: "at most go N to N/2": 10 pods, 1 wanted -> 5.
        pytest.param({}, [10.0] * 60, 10, 5, id="down-rate-2"),
        pytest.param({"max_scale_down_rate": 10.0}, [10.0] * 60, 10, 1, id="down-rate-10"),
        # min-scale / max-scale bound the result.
        pytest.param({"max_scale": 50}, [1000.0] * 60, 10, 50, id="max-scale"),
        pytest.param({"min_scale": 8, "max_scale_down_rate": 10.0}, [10.0] * 60, 10, 8, id="min-scale"),
    ],
)
def test_rate_limits_and_bounds(settings, totals, ready, desired) -> None:
    base = {"target": 10.0, "target_utilization": 1.0}
    scaler = KpaScaler(KpaSettings(**{**base, **settings}))
    assert feed(scaler, totals, ready) == desired


@pytest.mark.parametrize(
    ("delay", "wants"),
    [
        # Decisions at 5 s (10 pods), 11 s and 15 s (5 pods, the load halved): without a delay the
        # scale-down is immediate; with one it waits until the higher decision leaves the window.
        pytest.param(0.0, [10, 5, 5], id="no-delay"),
        pytest.param(10.0, [10, 10, 5], id="delay-10s"),
        pytest.param(20.0, [10, 10, 10], id="delay-20s"),
    ],
)
def test_scale_down_delay_holds_the_maximum_of_the_window(delay: float, wants: list[int]) -> None:
    # A 6 s stable window equal to the panic window, so the halved load shows within 6 samples.
    scaler = KpaScaler(KpaSettings(target=10, target_utilization=1.0, stable_window_seconds=6,
                                   panic_window_percentage=100, scale_down_delay_seconds=delay))
    got = [feed(scaler, [100.0] * 6, 10)]
    got.append(feed(scaler, [50.0] * 6, 10, start=6))
    got.append(feed(scaler, [50.0] * 4, 10, start=12))
    assert got == wants


def test_no_data_means_no_change_and_a_start_above_one_pod_starts_in_panic(config) -> None:
    scaler = KpaScaler(KpaSettings(target=10, target_utilization=1.0))
    assert scaler.desired(0, None, 7, 7) == 7  # Knative: no data, the scale is left alone
    # A fleet started at 5 pods (6,000 requests a minute at 1,500 per replica and 0.8) holds them
    # while its windows fill, even when the load would want 1.
    workload = flat_workload(5, 6000.0, config)
    assert scaler.initial(workload, config) == 5 and scaler.panic_time == 0.0
    assert feed(scaler, [5.0] * 60, 5) == 5
    assert feed(scaler, [5.0], 5, start=61) == 2  # > 60 s after the start: un-panic, floor(5 / 2)


@pytest.mark.parametrize(
    ("metric", "per_pod", "desired"),
    [
        pytest.param("concurrency", 30.0, 30, id="concurrency"),  # 10 pods x (20 running + 10 waiting)
        pytest.param("running", 20.0, 20, id="running"),
        pytest.param("kv_cache_usage", 0.45, 9, id="kv"),  # target 0.5: 10 x 0.45 / 0.5
    ],
)
def test_the_metric_is_the_revision_total_of_a_per_pod_value(metric, per_pod, desired) -> None:
    target = 0.5 if metric == "kv_cache_usage" else 10.0
    scaler = KpaScaler(KpaSettings(metric=metric, target=target, target_utilization=1.0))
    s = MetricsSample(tick=1, ready=10, pending=0, running=20.0, waiting=10.0, kv_cache_usage=0.45,
                      prompt_tokens_total=0.0, generation_tokens_total=0.0, request_success_total=0.0)
    scaler.observe(s)
    assert scaler.decide(1.0, 10) == desired


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("target", 0.0, id="zero-target"),
        pytest.param("max_scale_up_rate", 1.0, id="up-rate-1"),
        pytest.param("panic_threshold_percentage", 100.0, id="threshold-100"),
        pytest.param("stable_window_seconds", 5.0, id="window-under-6s"),
        pytest.param("metric", "cpu", id="unknown-metric"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(field: str, value) -> None:
    with pytest.raises(ValidationError, match=field):
        KpaSettings(**{"target": 10.0, field: value})


def test_kpa_drives_the_simulator_with_knatives_timing() -> None:
    config = knative_timing(SimConfig(lead_seconds=60, max_replicas=40))
    assert (config.scrape_seconds, config.sync_seconds, config.metrics_delay_seconds) == (1.0, 2.0, 1.0)
    # 10 minutes at 4 replicas' worth, then 10 at 16: the step is a surge the panic mode catches.
    low, high = flat_workload(10, 4 * 1500.0, config), flat_workload(10, 16 * 1500.0, config)
    workload = low.__class__(**{**low.__dict__, "minutes": 20, "arrivals": low.arrivals + high.arrivals,
                                "prompt_mean": low.prompt_mean * 2, "output_mean": low.output_mean * 2})
    # Little's law: 25 req/s per replica x ~1.29 s in flight ~ 32 at 100 %; aim at 70 % of 40.
    scaler = KpaScaler(KpaSettings(target=40))
    result = run(workload, config, scaler)
    assert scaler.panic_decisions > 0
    assert max(result.series.requested) >= 16
    assert result.series.requested[9] < result.series.requested[-1]
