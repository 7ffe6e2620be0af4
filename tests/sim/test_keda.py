"""KEDA's polling in front of the HPA it builds (controller/sim/keda.py)."""

from __future__ import annotations

import pytest

from controller.sim.config import SimConfig
from controller.sim.engine import run
from controller.sim.keda import DEFAULT_POLLING_SECONDS, PolledMetrics
from tests.sim.conftest import ScriptedScaler, flat_workload


def _seen_ticks(inner: ScriptedScaler) -> list[tuple[int, int | None]]:
    """(sync tick, tick of the sample the inner scaler was handed) at every sync."""
    return [(tick, None if s is None else s.tick) for tick, s, _ in inner.seen]


@pytest.mark.parametrize(
    ("polling", "cached", "refreshed_at"),
    [
        # KEDA's default (useCachedMetrics false): the metrics server queries afresh on every HPA
        # request, so each 15 s sync sees the newest sample.
        pytest.param(30.0, False, [0, 15, 30, 45, 60, 75, 90, 105], id="default-fresh"),
        # useCachedMetrics: the value of the latest poll (every pollingInterval), held between polls.
        pytest.param(30.0, True, [0, 30, 60, 90], id="cached-30s"),
        pytest.param(45.0, True, [0, 45, 90], id="cached-45s"),
        # A poll between two syncs is served at the next sync (60 s polls on 15 s syncs are aligned;
        # 50 s ones land at 60 and 105).
        pytest.param(50.0, True, [0, 60, 105], id="cached-50s"),
    ],
)
def test_the_metric_is_refreshed_at_each_poll_and_held_between(polling, cached, refreshed_at) -> None:
    config = SimConfig(lead_seconds=0, max_replicas=4, metrics_delay_seconds=0)
    inner = ScriptedScaler(2)
    scaler = PolledMetrics(inner, polling_seconds=polling, use_cached_metrics=cached)
    run(flat_workload(2, 600.0, config), config, scaler)
    seen = _seen_ticks(inner)
    changes = [tick for i, (tick, sample) in enumerate(seen) if i == 0 or sample != seen[i - 1][1]]
    assert changes == refreshed_at
    # Between polls the sample handed over is the one of the poll, however old.
    by_tick = dict(seen)
    for tick, sample in seen:
        poll = max(t for t in refreshed_at if t <= tick)
        assert sample == by_tick[poll]
    assert scaler.describe()["keda_polls"] == (len(refreshed_at) if cached else 0)


def test_pods_stay_live_and_the_name_and_start_are_the_inner_scalers() -> None:
    config = SimConfig(lead_seconds=0, max_replicas=6)
    inner = ScriptedScaler(3, {30: 5})
    scaler = PolledMetrics(inner, use_cached_metrics=True, name="keda-waiting")
    result = run(flat_workload(2, 600.0, config), config, scaler)
    assert scaler.name == "keda-waiting" and result.policy == "keda-waiting"
    assert scaler.polling_seconds == DEFAULT_POLLING_SECONDS == 30.0
    assert [current for _, _, current in inner.seen][:4] == [3, 3, 3, 5]  # /scale read live
    assert result.series.requested[-1] == 5


def test_a_non_positive_polling_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="polling_seconds must be positive, got 0"):
        PolledMetrics(ScriptedScaler(1), polling_seconds=0)
