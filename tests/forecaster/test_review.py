"""forecaster.review: the numbers the review notebooks and `prescaler report` show."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecaster.estimators import make_estimator
from forecaster.review import (
    horizon_forecasts,
    interval_coverage,
    residual_profile,
    under_forecast_episodes,
)


def _series(values, step="10min", start="2025-01-06T00:00:00Z") -> pd.Series:
    index = pd.date_range(start, periods=len(values), freq=step)
    return pd.Series(np.asarray(values, dtype="float64"), index=index, name="requests")


def _frame(actual, q05, q50, q90, q95, start="2025-01-06T00:00:00Z") -> pd.DataFrame:
    index = pd.date_range(start, periods=len(actual), freq="10min")
    return pd.DataFrame(
        {"actual": actual, "0.05": q05, "0.5": q50, "0.9": q90, "0.95": q95}, index=index, dtype="float64"
    )


def test_horizon_forecasts_use_only_the_past() -> None:
    # last_value's mean forecast h bins ahead of origin t is the value at t, so the forecast for the
    # target bin t+h must equal the actual h bins earlier: any peek at the target would break this.
    series = _series(np.arange(300, dtype=float) % 37)
    model = make_estimator("last_value").fit(series.iloc[:200])
    frame = horizon_forecasts(model, series, start=series.index[220], horizon_bins=3)
    assert frame.index[0] == series.index[220]
    expected = series.shift(3).reindex(frame.index)
    np.testing.assert_allclose(frame["mean"].to_numpy(), expected.to_numpy())
    np.testing.assert_allclose(frame["actual"].to_numpy(), series.reindex(frame.index).to_numpy())


def test_horizon_forecasts_rejects_bad_arguments() -> None:
    series = _series(np.ones(50))
    model = make_estimator("last_value").fit(series)
    with pytest.raises(ValueError, match="horizon_bins"):
        horizon_forecasts(model, series, start=series.index[10], horizon_bins=0)
    with pytest.raises(ValueError, match="after the end"):
        horizon_forecasts(model, series, start=series.index[-1] + pd.Timedelta("1D"), horizon_bins=1)


def test_interval_coverage_by_hand() -> None:
    # actuals 5, 11, 0, NaN against [1, 10] each bin: inside, above, below, unknown -> 1 of 3 observed.
    frame = _frame([5, 11, 0, np.nan], [1] * 4, [5] * 4, [9] * 4, [10] * 4)
    assert interval_coverage(frame) == pytest.approx(1 / 3)


def test_under_forecast_episodes_by_hand() -> None:
    # q0.9 = 10 everywhere. Bins 1-2 exceed (12, 15: worst +50%), bin 4 exceeds (11: +10%),
    # the NaN in bin 6 is not a miss and ends nothing since nothing runs there.
    actual = [9, 12, 15, 10, 11, 3, np.nan, 8]
    frame = _frame(actual, [0] * 8, [5] * 8, [10] * 8, [20] * 8)
    episodes = under_forecast_episodes(frame, quantile=0.9)
    assert list(episodes["bins"]) == [2, 1]
    assert episodes.loc[0, "start"] == frame.index[1] and episodes.loc[0, "end"] == frame.index[2]
    assert episodes["worst_excess"].tolist() == pytest.approx([0.5, 0.1])


def test_residual_profile_by_hand() -> None:
    # Two days of hourly bins; the model is 2 too low at 13:00 and exact elsewhere.
    index = pd.date_range("2025-01-06T00:00:00Z", periods=48, freq="1h")
    actual = np.full(48, 10.0)
    median = np.where(index.hour == 13, 8.0, 10.0)
    frame = pd.DataFrame({"actual": actual, "0.5": median}, index=index)
    profile = residual_profile(frame)
    by_hour = profile[profile["period"] == "hour"].set_index("key")
    assert by_hour.loc[13, "bias"] == pytest.approx(2.0) and by_hour.loc[13, "count"] == 2
    assert by_hour.drop(13)["bias"].abs().max() == 0.0
    by_day = profile[profile["period"] == "weekday"].set_index("key")
    # 2025-01-06 is a Monday (0): one miss of 2 in 24 hourly bins each day.
    assert by_day.loc[0, "bias"] == pytest.approx(2 / 24) and by_day.loc[1, "mae"] == pytest.approx(2 / 24)
