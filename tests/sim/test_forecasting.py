"""The replay's forecaster never sees the future: every series it is given ends before `now`."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from controller.sim.config import SimConfig
from controller.sim.forecasting import RollingForecaster
from controller.sim.workload import build_workload
from forecaster.replay import EstimatorForecasting
from tests.sim.conftest import daily_frame


class SpyModel:
    """Wraps a real fitted model and records the last timestamp of every series it is handed."""

    def __init__(self, inner, log: list) -> None:
        self.inner, self.log, self.name = inner, log, inner.name

    def forecast(self, history, **kwargs):
        self.log.append(("predict", history.index[-1]))
        return self.inner.forecast(history, **kwargs)


class SpyForecasting:
    """A real forecasting engine whose fits and forecasts are logged."""

    def __init__(self, inner: EstimatorForecasting, log: list) -> None:
        self.inner, self.log = inner, log

    def bin_rates(self, per_minute_rates, bin_seconds):
        return self.inner.bin_rates(per_minute_rates, bin_seconds)

    def fit(self, signal, series):
        self.log.append(("fit", series.index[-1]))
        return SpyModel(self.inner.fit(signal, series), self.log)


def test_no_peeking_fit_and_predict_see_only_bins_ended_by_now() -> None:
    frame = daily_frame(4, noise=0.1)
    workload = build_workload(frame, SimConfig(), replay_days=1.5, peak_replicas=10)
    counts = pd.concat([workload.history, workload.observed])
    log: list = []
    spy = SpyForecasting(EstimatorForecasting("seasonal_naive_daily"), log)
    forecaster = RollingForecaster(counts, forecasting=spy, bin_seconds=600, refit_seconds=6 * 3600)
    now = workload.start + timedelta(seconds=15)
    checked = 0
    while now < workload.end:
        before = len(log)
        forecasts = forecaster.forecasts(now)
        for kind, last in log[before:]:
            # A bin stamped `last` covers [last, last + 10 min): it must have ended by now.
            assert last + pd.Timedelta(minutes=10) <= now, f"{kind} at {now} saw the bin {last}"
            checked += 1
        assert all(f is not None and f.generated_at == now for f in forecasts.values()) or len(log) == before
        now += timedelta(seconds=15 * 7)
    fits = [entry for entry in log if entry[0] == "fit"]
    assert len(fits) == 2 * 6  # 2 signals, fitted at the start and refit at 6, 12, 18, 24, 30 h
    assert checked > 200


def test_forecast_points_start_after_the_origin_and_cover_lead_plus_interval() -> None:
    frame = daily_frame(3)
    workload = build_workload(frame, SimConfig(), replay_days=1, peak_replicas=10)
    counts = pd.concat([workload.history, workload.observed])
    forecaster = RollingForecaster(counts, forecasting=EstimatorForecasting("seasonal_naive_daily"),
                                   bin_seconds=600, horizon_seconds=300 + 60 + 1200)
    now = workload.start + timedelta(minutes=17)
    forecast = forecaster.forecasts(now)["prompt_tokens"]
    assert forecast.points[0].timestamp == workload.start + timedelta(minutes=10)
    assert forecast.window_max(now + timedelta(minutes=5), now + timedelta(minutes=6), 0.9) is not None
    # The daily cycle is smooth, so the seasonal-naive forecast is within a few % of the truth.
    truth = counts["prompt_tokens"].loc[now + timedelta(minutes=13): now + timedelta(minutes=22)].mean() / 60
    assert forecast.points[1].mean == pytest.approx(truth, rel=0.05)


def test_refit_interval_must_cover_a_bin() -> None:
    frame = daily_frame(2)
    with pytest.raises(ValueError, match="refit interval"):
        RollingForecaster(frame, forecasting=EstimatorForecasting("last_value"), bin_seconds=600,
                          refit_seconds=60)


def test_hindsight_forecasts_the_true_future_bins_and_nothing_before_now() -> None:
    from controller.sim.forecasting import HindsightForecasting, rate_series

    frame = daily_frame(2, noise=0.2)
    binning = EstimatorForecasting("last_value")
    truth = rate_series(frame, "prompt_tokens", 600, binning)
    model = HindsightForecasting(frame, 600, binning).fit("prompt_tokens", truth.iloc[:50])
    now = truth.index[50].to_pydatetime()
    out = model.forecast(truth.iloc[:50], steps=4, quantiles=[0.5, 0.9], workload="w", generated_at=now)
    # the bins after the last observed one
    assert [p.timestamp for p in out.points] == [t.to_pydatetime() for t in truth.index[50:54]]
    expected = truth.iloc[50:54].to_numpy()
    assert [p.mean for p in out.points] == pytest.approx(expected)
    for key in ("0.5", "0.9"):
        assert [p.quantiles[key] for p in out.points] == pytest.approx(expected)
    assert out.step_seconds == 600 and out.signal == "prompt_tokens"
    with pytest.raises(ValueError, match="observed bin"):
        model.forecast(truth.iloc[:0], steps=4, quantiles=[0.9], workload="w", generated_at=now)
