"""Trace scaling: `counts` multiplies each minute's count, `poisson` replays the trace's rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from controller.sim.config import SimConfig
from controller.sim.workload import build_workload, trace_rate
from tests.sim.conftest import daily_frame


def poisson_frame(rates: np.ndarray, *, prompt: float = 400.0, output: float = 100.0, seed: int = 0) -> pd.DataFrame:
    """A per-minute trace whose counts are Poisson draws of `rates` (a small web server's trace)."""
    counts = np.random.default_rng(seed).poisson(rates).astype("float64")
    index = pd.date_range("2025-01-01T00:00Z", periods=len(rates), freq="60s", tz="UTC").as_unit("ns")
    frame = pd.DataFrame({"requests": counts, "prompt_tokens": counts * prompt,
                          "output_tokens": counts * output}, index=index)
    frame.index.name = "timestamp"
    return frame


def _cv(values: np.ndarray) -> float:
    return float(np.std(values) / np.mean(values))


@pytest.mark.parametrize(
    ("mean", "counts_cv", "poisson_cv_below", "load_ratio"),
    [
        # 48 a minute: chance alone moves a minute by 1/sqrt(48) = 14 %; `counts` scales that noise
        # into the fleet, `poisson` keeps only the fleet's own (0.5 % at 40 replicas' worth) plus
        # the rate estimate's residue (~1/sqrt(48 x 15) = 4 %, ~5 % with the shrinkage it lets through).
        pytest.param(48.0, 1 / np.sqrt(48.0), 0.065, 1.2, id="48-a-minute"),
        pytest.param(400.0, 1 / np.sqrt(400.0), 0.025, 1.05, id="400-a-minute"),
    ],
)
def test_poisson_scaling_drops_the_small_traces_counting_noise(mean, counts_cv, poisson_cv_below,
                                                                load_ratio) -> None:
    frame = poisson_frame(np.full(2 * 1440, mean))
    config = SimConfig(max_replicas=100)
    by = {s: build_workload(frame, config, replay_days=1, peak_replicas=40, scaling=s)
          for s in ("counts", "poisson")}
    realised = {s: w.observed["requests"].to_numpy() for s, w in by.items()}
    assert _cv(realised["counts"]) == pytest.approx(counts_cv, rel=0.1)
    assert _cv(realised["poisson"]) < poisson_cv_below
    # Both are scaled so that the busiest minute needs the peak replicas: poisson's busiest rate
    # minute is less extreme (the counts' is ~3.5 sd of chance above the mean), so its mean load is
    # the higher.
    assert by["poisson"].rate_per_minute.mean() > load_ratio * by["counts"].rate_per_minute.mean()
    # The forecaster's history is scaled the same way (the rate, not the noisy counts).
    assert _cv(by["poisson"].history["requests"].to_numpy()) < poisson_cv_below


def test_a_large_trace_is_replayed_the_same_either_way() -> None:
    # Tens of thousands a minute with 5 % noise of its own, far above the 0.4-0.7 % of counting
    # noise: the rate is the count, to a few tenths of a percent (a minute whose local variance
    # happens to look small is shrunk a little more).
    frame = daily_frame(2, mean_rpm=60_000.0, noise=0.05)
    config = SimConfig(max_replicas=100)
    counts = build_workload(frame, config, replay_days=1, peak_replicas=40, scaling="counts")
    poisson = build_workload(frame, config, replay_days=1, peak_replicas=40, scaling="poisson")
    relative = np.abs(poisson.rate_per_minute / counts.rate_per_minute - 1)
    assert np.median(relative) < 2e-3 and relative.max() < 1e-2
    assert poisson.scale == pytest.approx(counts.scale, rel=5e-3)


@pytest.mark.parametrize(
    ("rates", "inside", "kept_above", "outside_sd_below"),
    [
        # A 10-minute burst at 10x a 48-a-minute base: the rate keeps it (>= 90 % of the counts),
        # while the base's noise (sd ~7) is mostly shrunk away.
        pytest.param(np.r_[np.full(600, 48.0), np.full(10, 480.0), np.full(600, 48.0)],
                     slice(602, 608), 0.9, 3.5, id="burst-kept"),
        # A doubling step stays a step.
        pytest.param(np.r_[np.full(600, 48.0), np.full(600, 96.0)], slice(620, 1200), 0.9, 4.0, id="step-kept"),
    ],
)
def test_trace_rate_keeps_real_changes_and_drops_counting_noise(rates, inside, kept_above, outside_sd_below) -> None:
    counts = poisson_frame(rates, seed=3)["requests"]
    rate = trace_rate(counts)
    assert rate.iloc[inside].mean() >= kept_above * counts.iloc[inside].mean()
    base = slice(20, 580)
    assert rate.iloc[base].std() < outside_sd_below < counts.iloc[base].std()
    assert rate.iloc[base].mean() == pytest.approx(48.0, rel=0.05)


def test_trace_rate_keeps_gaps_and_refuses_a_window_under_two() -> None:
    counts = poisson_frame(np.full(100, 48.0))["requests"]
    counts.iloc[40:45] = np.nan
    rate = trace_rate(counts)
    assert rate.iloc[40:45].isna().all() and rate.drop(rate.index[40:45]).notna().all()
    with pytest.raises(ValueError, match="window must be at least 2 minutes, got 1"):
        trace_rate(counts, window=1)


def test_poisson_history_keeps_the_traces_token_lengths() -> None:
    frame = poisson_frame(np.full(2 * 1440, 48.0), prompt=700.0, output=90.0)
    frame.iloc[100:110] = np.nan  # a gap in the history stays a gap
    workload = build_workload(frame, SimConfig(), replay_days=1, peak_replicas=10, scaling="poisson")
    history = workload.history.dropna()
    assert (history["prompt_tokens"] / history["requests"]).to_numpy() == pytest.approx(700.0)
    assert (history["output_tokens"] / history["requests"]).to_numpy() == pytest.approx(90.0)
    assert workload.history["requests"].iloc[100:110].isna().all()


def test_counts_is_the_default_and_an_unknown_scaling_is_refused() -> None:
    frame = daily_frame(2, noise=0.1)
    config = SimConfig()
    default = build_workload(frame, config, replay_days=1, peak_replicas=10)
    counts = build_workload(frame, config, replay_days=1, peak_replicas=10, scaling="counts")
    assert default.arrivals == counts.arrivals
    with pytest.raises(ValueError, match="scaling 'linear' unknown; choose one of counts, poisson"):
        build_workload(frame, config, replay_days=1, scaling="linear")
