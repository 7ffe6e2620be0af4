"""Reading traces, scaling them to a fleet, and the token-length sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from controller.sim.config import SimConfig
from controller.sim.tokens import AZURE_CONV_SHAPE, length_distribution
from controller.sim.workload import build_workload, replicas_needed
from prescaler.traces import read_trace_csv
from tests.sim.conftest import daily_frame

GOOD = "timestamp,requests,prompt_tokens,output_tokens\n" + "".join(
    f"2025-01-01T00:{m:02d}:00Z,{60 + m},{(60 + m) * 100},{(60 + m) * 10}\n" for m in range(10)
)


GOOD_5MIN = "timestamp,requests\n2025-01-01T00:00:00Z,1\n2025-01-01T00:05:00Z,2\n2025-01-01T00:10:00Z,3\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("time,requests\n2025-01-01T00:00:00Z,1\n", "timestamp", id="no-timestamp"),
        pytest.param(GOOD.replace("2025-01-01T00:03:00Z", "yesterday"), "line 5", id="bad-timestamp"),
        pytest.param(GOOD.replace(",63,", ",lots,"), "line 5, column 'requests'", id="not-a-number"),
        pytest.param(GOOD.replace(",64,", ",-64,"), "line 6, column 'requests'", id="negative"),
        pytest.param(GOOD.replace("00:05:00Z", "00:05:30Z"), "line 7", id="off-minute"),
        pytest.param(GOOD_5MIN, "one-minute rows", id="five-minute-rows"),
    ],
)
def test_a_bad_trace_is_refused_naming_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=None) as err:
        read_trace_csv(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_gap_stays_a_gap(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(GOOD.replace(",62,6200,620", ",,,"))
    frame = read_trace_csv(path)
    assert np.isnan(frame["requests"].iloc[2]) and frame["requests"].iloc[3] == 63


@pytest.mark.parametrize("peak", [pytest.param(10, id="10"), pytest.param(40, id="40")])
def test_the_peak_needs_about_peak_replicas(peak: int) -> None:
    config = SimConfig(max_replicas=100)
    workload = build_workload(daily_frame(2), config, replay_days=1, peak_replicas=peak)
    needed = [replicas_needed(r, p, o, config) for r, p, o in
              zip(workload.rate_per_minute, workload.prompt_mean, workload.output_mean)]
    assert max(needed) == peak
    # The history before the window is scaled the same way (the forecaster sees the fleet's load).
    assert workload.history["requests"].max() == pytest.approx(workload.rate_per_minute.max(), rel=0.01)
    assert len(workload.history) == 1440 and workload.minutes == 1440


def test_gaps_in_the_window_are_interpolated_for_arrivals_but_not_observed() -> None:
    frame = daily_frame(2)
    frame.iloc[2000:2010] = np.nan
    workload = build_workload(frame, SimConfig(), replay_days=1, peak_replicas=10)
    gap = slice(2000 - 1440, 2010 - 1440)
    assert workload.observed["requests"].iloc[gap].isna().all()
    assert sum(workload.arrivals[(2000 - 1440) * 60:(2010 - 1440) * 60]) > 0


def test_replay_window_is_validated() -> None:
    frame = daily_frame(2)
    with pytest.raises(ValueError, match="outside the trace"):
        build_workload(frame, SimConfig(), replay_from=frame.index[-1] + np.timedelta64(1, "D"))
    with pytest.raises(ValueError, match="peak_replicas must be positive"):
        build_workload(frame, SimConfig(), peak_replicas=0)


def test_embedded_shape_equals_the_one_computed_from_the_raw_trace(tmp_path: Path) -> None:
    # Without the shared traces the replay falls back to the embedded shape: it must be the same.
    embedded = length_distribution("trace", raw_dir=tmp_path)
    assert np.mean(embedded.prompt_shape) == pytest.approx(1.0, abs=1e-4)
    raw = Path(__file__).resolve().parents[3] / "shared/traces/raw"
    if raw.exists():
        computed = length_distribution("azure-conv", raw_dir=raw)
        assert embedded.prompt_shape == pytest.approx(computed.prompt_shape, abs=1e-4)


def test_token_sources() -> None:
    trace = length_distribution("trace")
    assert len(trace.prompt_shape) == len(AZURE_CONV_SHAPE)
    assert np.mean(trace.prompt_shape) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="choose one of"):
        length_distribution("sharegpt")
    frame = daily_frame(2)[["requests"]]
    with pytest.raises(ValueError, match="no prompt_tokens"):
        build_workload(frame, SimConfig(), replay_days=1)


@pytest.mark.skipif(not (Path(__file__).resolve().parents[3] / "shared/traces/raw").exists(),
                    reason="needs the shared per-request traces")
@pytest.mark.parametrize("source", ["azure-conv", "azure-code", "mooncake"])
def test_raw_token_distributions(source: str) -> None:
    dist = length_distribution(source)
    assert dist.prompt_mean > 100 and dist.output_mean > 1
    assert list(dist.prompt_shape) == sorted(dist.prompt_shape)
    workload = build_workload(daily_frame(2)[["requests"]], SimConfig(), replay_days=1, tokens=source)
    assert workload.prompt_mean[0] == pytest.approx(dist.prompt_mean)
