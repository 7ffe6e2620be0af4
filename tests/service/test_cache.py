"""The cache's numbers: the scaling window (the contract's rule), the desired replicas (the
contract's capacity model, with the service's min/max clamp), and the slices /v1 serves."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forecaster.contract import Forecast, ForecastPoint, WorkloadForecast
from forecaster.service.cache import CachedForecast, desired_replicas, forecast_value, overlapping, slice_forecast
from forecaster.service.config import ConfigError, WorkloadSettings, parse_config
from tests.service.conftest import config_dict

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def make(n: int, step: int = 600) -> Forecast:
    points = [ForecastPoint(timestamp=T0 + timedelta(seconds=i * step), mean=float(i),
                            quantiles={"0.5": float(i), "0.9": float(i) + 0.5}) for i in range(n)]
    return Forecast(workload="w", signal="requests", model="m", generated_at=T0, step_seconds=step,
                    points=points)


offsets = st.integers(min_value=-5000, max_value=100_000)


@given(n=st.integers(0, 150), start=offsets, length=st.integers(1, 50_000))
def test_slice_keeps_exactly_the_overlapping_bins(n, start, length):
    forecast = make(n)
    begin = T0 + timedelta(seconds=start)
    end = begin + timedelta(seconds=length)
    expected = [p.timestamp for p in forecast.points
                if p.timestamp < end and p.timestamp + timedelta(seconds=600) > begin]
    got = slice_forecast(forecast, start=begin, horizon=timedelta(seconds=length), quantiles=None,
                         step_seconds=None)
    assert [p.timestamp for p in got.points] == expected
    assert forecast.points[overlapping(forecast, begin, end, include_end=False)] == got.points


# ---------------------------------------------------------------------------------------------------
# desired replicas: the controller's capacity model on the scaling window
# ---------------------------------------------------------------------------------------------------

NOW = datetime(2025, 1, 18, 12, 3, tzinfo=timezone.utc)
# The example config's capacity (configs/forecaster/forecaster.yaml): 4 req/s, 2,500 output tok/s, 0.8, [1, 20].
EXAMPLE = {"per_replica": {"requests": 4.0, "output_tokens": 2500.0}, "target_utilization": 0.8,
           "min_replicas": 1, "max_replicas": 20}


def workload(**capacity) -> WorkloadSettings:
    return WorkloadSettings.model_validate({
        "name": "m-small", "model_name": "m-small", "signals": {"requests": {}, "output_tokens": {}},
        "candidates": ["seasonal_naive_daily"], "lead_time": "5m", "interval": "1m", "quantile": 0.9,
        "capacity": {**EXAMPLE, **capacity},
    })


def flat(signal: str, q90: float, *, peak: float | None = None, peak_minute: int = 0) -> Forecast:
    """One-minute bins from 12:00; q0.9 is `q90`, or `peak` in the bin starting at 12:00 + peak_minute."""
    start = NOW.replace(minute=0)
    points = [ForecastPoint(timestamp=start + timedelta(minutes=m), mean=q90 / 2,
                            quantiles={"0.9": peak if peak is not None and m == peak_minute else q90})
              for m in range(60)]
    return Forecast(workload="m-small", signal=signal, model="test", generated_at=start, step_seconds=60,
                    points=points)


def entry(**forecasts: Forecast) -> CachedForecast:
    return CachedForecast(WorkloadForecast(workload="m-small", forecasts=forecasts), NOW, {})


@pytest.mark.parametrize(
    ("rates", "capacity", "expected"),
    [
        # 8/4 = 2, 3000/2500 = 1.2: max 2 / 0.8 = 2.5 -> 3 (the sum the service used to take: 3.2 / 0.8 -> 4).
        pytest.param({"requests": 8.0, "output_tokens": 3000.0}, {}, 3, id="example-max"),
        pytest.param({"requests": 8.0, "output_tokens": 3000.0}, {"combine": "Sum"}, 4, id="example-sum"),
        # 6/4 = 1.5, 6000/2500 = 2.4: max 2.4 / 0.8 = 3.0 -> 3; sum 3.9 / 0.8 = 4.875 -> 5.
        pytest.param({"requests": 6.0, "output_tokens": 6000.0}, {}, 3, id="decode-bound-max"),
        pytest.param({"requests": 6.0, "output_tokens": 6000.0}, {"combine": "Sum"}, 5, id="decode-bound-sum"),
        # 2.1 / 0.3 / 0.7 = 10.000000000000002 in floats: 10, not 11.
        pytest.param({"requests": 2.1, "output_tokens": 0.0},
                     {"per_replica": {"requests": 0.3, "output_tokens": 2500.0}, "target_utilization": 0.7}, 10,
                     id="float-noise"),
        # Nothing forecast: 0 replicas, clamped to min_replicas 1 (or 0 where the minimum is 0).
        pytest.param({"requests": 0.0, "output_tokens": 0.0}, {}, 1, id="zero-clamped-to-min"),
        pytest.param({"requests": 0.0, "output_tokens": 0.0}, {"min_replicas": 0}, 0, id="zero-with-min-zero"),
        # A negative forecast counts as 0, never against another signal: sum (0 + 1.2) / 0.8 = 1.5 -> 2
        # (the old sum gave (-2 + 1.2) / 0.8 = -1 -> min_replicas 1).
        pytest.param({"requests": -8.0, "output_tokens": 3000.0}, {"combine": "Sum"}, 2, id="negative-is-zero"),
        # 400/4 = 100 / 0.8 = 125 replicas, clamped to max_replicas 20.
        pytest.param({"requests": 400.0, "output_tokens": 0.0}, {}, 20, id="clamped-to-max"),
        # min_replicas 5 above the 3 the load needs.
        pytest.param({"requests": 8.0, "output_tokens": 3000.0}, {"min_replicas": 5}, 5, id="clamped-to-min"),
    ],
)
def test_desired_replicas(rates, capacity, expected) -> None:
    cached = entry(**{s: flat(s, r) for s, r in rates.items()})
    assert desired_replicas(cached, workload(**capacity), NOW) == expected


@pytest.mark.parametrize(
    ("peak_minute", "expected"),
    [
        # The window is [12:08, 12:09] (now 12:03 + lead 5m, + interval 1m): bins 12:08 and 12:09.
        pytest.param(8, 10, id="peak-at-lead"),       # 32 / 4 / 0.8 = 10
        pytest.param(9, 10, id="peak-at-lead-plus-interval"),
        pytest.param(7, 3, id="peak-before-the-window"),  # the flat 8 req/s: 2.5 -> 3
        pytest.param(10, 3, id="peak-after-the-window"),
    ],
)
def test_desired_replicas_reads_the_scaling_window(peak_minute, expected) -> None:
    cached = entry(requests=flat("requests", 8.0, peak=32.0, peak_minute=peak_minute),
                   output_tokens=flat("output_tokens", 3000.0))
    assert desired_replicas(cached, workload(), NOW) == expected
    start, end = NOW + timedelta(minutes=5), NOW + timedelta(minutes=6)
    assert forecast_value(cached, workload(), "requests", NOW) == \
        cached.forecast.forecasts["requests"].window_max(start, end, 0.9)


def test_an_uncovered_signal_gives_no_answer() -> None:
    """One signal alone could under-provision: None (the endpoints answer NotReady)."""
    assert desired_replicas(entry(requests=flat("requests", 8.0)), workload(), NOW) is None
    short = flat("output_tokens", 3000.0).model_copy(update={"points": flat("output_tokens", 3000.0).points[:5]})
    assert desired_replicas(entry(requests=flat("requests", 8.0), output_tokens=short), workload(), NOW) is None


@pytest.mark.parametrize(
    ("capacity", "message"),
    [
        pytest.param({"combine": "Mean"}, "workloads.0.capacity.combine: Input should be 'Max' or 'Sum'",
                     id="combine-unknown"),
        pytest.param({"target_utilisation": 0.8},
                     "workloads.0.capacity: target_utilisation (0.8) is spelt target_utilization", id="old-spelling"),
    ],
)
def test_capacity_config_errors_name_the_field(tmp_path: Path, capacity, message) -> None:
    data = config_dict(tmp_path)
    data["workloads"][0]["capacity"] = {"per_replica": {"requests": 4.0}, **capacity}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "test")
    assert message in str(caught.value)


def test_combine_defaults_to_max(tmp_path: Path) -> None:
    config = parse_config(config_dict(tmp_path), "test")
    assert config.workload("m-small").capacity.combine == "Max"
