"""The replay's forecaster never sees the future: every series it is given ends before `now`."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from controller.sim.config import SimConfig
from controller.sim.forecasting import RollingForecaster, fit_model
from controller.sim.workload import build_workload
from tests.sim.conftest import daily_frame


class SpyEstimator:
    """Wraps a real estimator and records the last timestamp of every series it is handed."""

    def __init__(self, inner, log: list) -> None:
        self.inner, self.log, self.name = inner, log, inner.name

    def predict(self, horizon, quantiles, history=None):
        self.log.append(("predict", history.index[-1]))
        return self.inner.predict(horizon, quantiles, history=history)


def test_no_peeking_fit_and_predict_see_only_bins_ended_by_now() -> None:
    frame = daily_frame(4, noise=0.1)
    workload = build_workload(frame, SimConfig(), replay_days=1.5, peak_replicas=10)
    counts = pd.concat([workload.history, workload.observed])
    log: list = []
    real_fit = fit_model("seasonal_naive_daily")

    def spy_fit(signal, series):
        log.append(("fit", series.index[-1]))
        return SpyEstimator(real_fit(signal, series), log)

    forecaster = RollingForecaster(counts, fit=spy_fit, bin_seconds=600, refit_seconds=6 * 3600)
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
    forecaster = RollingForecaster(counts, fit=fit_model("seasonal_naive_daily"), bin_seconds=600,
                                   horizon_seconds=300 + 60 + 1200)
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
        RollingForecaster(frame, fit=fit_model("last_value"), bin_seconds=600, refit_seconds=60)


def test_hindsight_forecasts_the_true_future_bins_and_nothing_before_now() -> None:
    from controller.sim.forecasting import hindsight_fit, rate_series

    frame = daily_frame(2, noise=0.2)
    truth = rate_series(frame, "prompt_tokens", 600)
    estimator = hindsight_fit(frame, 600)("prompt_tokens", truth.iloc[:50])
    out = estimator.predict(4, [0.5, 0.9], history=truth.iloc[:50])
    assert list(out.index) == list(truth.index[50:54])  # the bins after the last observed one
    for column in ("mean", "0.5", "0.9"):
        assert out[column].to_numpy() == pytest.approx(truth.iloc[50:54].to_numpy())
    with pytest.raises(ValueError, match="observed bin"):
        estimator.predict(4, [0.9], history=truth.iloc[:0])
