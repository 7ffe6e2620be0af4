"""The frontier's HPA-style families and the recorded forecasts its prescaler points share."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from controller.policy import PredictiveAutoscalerSpec
from controller.sim.config import SimConfig
from controller.sim.engine import MetricsSample
from controller.sim.forecasting import ForecastTape, RollingForecaster
from controller.sim.policies import DecideScaler, base_spec, metric_spec
from controller.sim.workload import build_workload
from forecaster.replay import EstimatorForecasting
from tests.sim.conftest import daily_frame


@pytest.mark.parametrize("metric, kind, name", [
    pytest.param("inflight", "Pods", "vllm:num_requests_running_plus_waiting", id="inflight-pods"),
    pytest.param("running", "Pods", "vllm:num_requests_running", id="running-pods"),
    pytest.param("kv", "Pods", "vllm:kv_cache_usage_perc", id="kv-pods"),
    # KEDA's prometheus trigger becomes an External metric with an AverageValue target.
    pytest.param("waiting_total", "External", "prescaler_vllm_num_requests_waiting_sum", id="keda-external"),
])
def test_metric_spec_follows_each_family(metric, kind, name) -> None:
    entry = metric_spec(metric, 2.5)
    assert entry["type"] == kind
    source = entry[kind.lower()]
    assert source["metric"]["name"] == name
    assert source["target"] == {"type": "AverageValue", "averageValue": "2500m"}


@pytest.mark.parametrize("target", [0.0, -1.0, float("nan"), float("inf")])
def test_metric_spec_refuses_a_target_that_is_not_positive(target) -> None:
    with pytest.raises(ValueError, match="target must be a positive number"):
        metric_spec("running", target)


def _scaler(metric, *, queue_weight=1.0) -> DecideScaler:
    config = SimConfig(max_replicas=8)
    workload = build_workload(daily_frame(2), config, replay_days=0.1, peak_replicas=4)
    spec = PredictiveAutoscalerSpec.model_validate(base_spec(workload, config, metric=metric))
    return DecideScaler(metric, spec, workload, config, metric=metric, queue_weight=queue_weight)


SAMPLE = MetricsSample(tick=0, ready=3, pending=0, running=3.0, waiting=2.0, kv_cache_usage=0.5,
                       prompt_tokens_total=0.0, generation_tokens_total=0.0, request_success_total=0.0)


@pytest.mark.parametrize("metric, queue_weight, pod_value, external", [
    pytest.param("inflight", 1.0, 5.0, None, id="inflight-sums-running-and-waiting"),
    pytest.param("inflight", 0.2, 3.4, None, id="queue-weighted-inflight"),
    pytest.param("running", 1.0, 3.0, None, id="running-only"),
    pytest.param("kv", 1.0, 0.5, None, id="kv-usage"),
    # The External value is the sum over the scraped pods: 2 waiting on each of 3 pods.
    pytest.param("waiting_total", 1.0, None, 6.0, id="keda-sum-of-waiting"),
])
def test_each_family_reads_its_own_metric(metric, queue_weight, pod_value, external) -> None:
    inputs = _scaler(metric, queue_weight=queue_weight)._reactive(SAMPLE, current=4, ready=3)
    (observation,) = inputs.metrics
    assert inputs.pods == {"vllm-0": "Ready", "vllm-1": "Ready", "vllm-2": "Ready", "vllm-pending-0": "Unready"}
    if external is None:
        assert observation.pod_values == {f"vllm-{i}": pytest.approx(pod_value) for i in range(3)}
        assert observation.value is None
    else:
        assert observation.value == pytest.approx(external)
        assert observation.pod_values is None


def test_a_tape_replays_exactly_the_forecasts_of_a_rolling_forecaster() -> None:
    """Refits land mid-bin (the window starts 7 minutes into a bin); the tape must follow them."""
    frame = daily_frame(3, noise=0.1)
    counts = frame.iloc[: int(2.3 * 1440) + 7]
    start = counts.index[-1].to_pydatetime() + timedelta(minutes=1)
    full = frame

    def rolling():
        return RollingForecaster(full, forecasting=EstimatorForecasting("seasonal_naive_daily"), bin_seconds=600,
                                 quantiles=(0.5, 0.9), refit_seconds=3 * 3600)

    syncs = 4 * 60 * 6  # six hours of 15 s syncs: the first fit and one refit, 3 h in
    tape = ForecastTape(rolling(), start=start, syncs=syncs, sync_seconds=15.0)
    live = rolling()
    changed = 0
    previous = None
    for k in range(syncs):
        now = start + timedelta(seconds=15 * k)
        expected, got = live.forecasts(now), tape.forecasts(now)
        for signal in live.signals:
            assert got[signal] == expected[signal], f"sync {k}: {signal} differs"
        changed += got is not previous
        previous = got
        assert tape.observed_rate("prompt_tokens", now) == live.observed_rate("prompt_tokens", now)
    assert tape.fits == live.fits == 2 * 2  # two signals, fitted at the start and 3 h in
    bins = {int(pd.Timestamp(start + timedelta(seconds=15 * k)).timestamp() // 600) for k in range(syncs)}
    assert (start.minute % 10) != 0  # the refit 3 h in falls inside a bin...
    assert changed == len(bins) + 1  # ...so the forecasts change at every new bin and at the refit
    with pytest.raises(ValueError, match="before the recorded window"):
        tape.forecasts(start - timedelta(seconds=1))


def _bursty_minutes(peak: float, *, hours: int = 6) -> pd.Series:
    """Per-minute rates: 1.0, with the 5th minute of every 10 at `peak` (a burst a bin)."""
    index = pd.date_range("2025-01-01T00:00Z", periods=hours * 60, freq="60s", tz="UTC")
    values = [peak if i % 10 == 4 else 1.0 for i in range(len(index))]
    return pd.Series(values, index=index, name="prompt_tokens")


@pytest.mark.parametrize("peak, expected", [
    pytest.param(1.0, 1.0, id="flat-bins-need-no-headroom"),
    # mean of a bin = (9 + 5.5) / 10 = 1.45; busiest minute 5.5: ratio 5.5 / 1.45
    pytest.param(5.5, 5.5 / 1.45, id="one-burst-a-bin"),
])
def test_peak_provisioning_learns_the_busiest_minute_ratio(peak, expected) -> None:
    from controller.sim.forecasting import PeakProvisioning

    engine = PeakProvisioning(EstimatorForecasting("last_value"), 0.9)
    minutes = _bursty_minutes(peak)
    binned = engine.bin_rates(minutes, 600)
    model = engine.fit("prompt_tokens", binned.iloc[:12])
    assert model.ratio == pytest.approx(expected)
    out = model.forecast(binned.iloc[:12], steps=2, quantiles=[0.5, 0.9], workload="w",
                         generated_at=binned.index[12].to_pydatetime())
    plain = EstimatorForecasting("last_value").fit("prompt_tokens", binned.iloc[:12]).forecast(
        binned.iloc[:12], steps=2, quantiles=[0.5, 0.9], workload="w", generated_at=binned.index[12].to_pydatetime())
    for scaled, base in zip(out.points, plain.points):
        assert scaled.mean == pytest.approx(base.mean)  # the mean is the bin's mean: left alone
        assert scaled.quantiles["0.9"] == pytest.approx(base.quantiles["0.9"] * expected)


def test_peak_provisioning_never_learns_from_bins_after_the_fit() -> None:
    from controller.sim.forecasting import PeakProvisioning

    calm, bursty = _bursty_minutes(1.0, hours=3), _bursty_minutes(5.5, hours=6).iloc[180:]
    engine = PeakProvisioning(EstimatorForecasting("last_value"), 0.9)
    binned = engine.bin_rates(pd.concat([calm, bursty]), 600)
    assert engine.fit("prompt_tokens", binned.iloc[:18]).ratio == 1.0  # only the calm 3 hours seen
    assert engine.fit("prompt_tokens", binned).ratio > 3.0


def test_hindsight_peak_forecasts_each_bins_true_busiest_minute() -> None:
    from controller.sim.forecasting import HindsightForecasting

    counts = (_bursty_minutes(5.5) * 60.0).to_frame()
    binning = EstimatorForecasting("last_value")
    truth = HindsightForecasting(counts, 600, binning, peaks=True)
    history = binning.bin_rates(counts["prompt_tokens"] / 60.0, 600).rename("prompt_tokens").iloc[:10]
    out = truth.fit("prompt_tokens", history).forecast(history, steps=3, quantiles=[0.9], workload="w",
                                                       generated_at=history.index[-1].to_pydatetime())
    assert [p.mean for p in out.points] == pytest.approx([1.45] * 3)
    assert [p.quantiles["0.9"] for p in out.points] == pytest.approx([5.5] * 3)
