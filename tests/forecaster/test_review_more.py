"""forecaster.review additions (review_forecast, calibration, leaderboard tables), review_inputs and
the new forecaster.plots figures: what the notebooks and `prescaler report` show."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecaster import plots
from forecaster.backtest import BacktestConfig, backtest
from forecaster.estimators import estimator_class, make_estimator
from forecaster.review import (
    LEADERBOARD_COLUMNS,
    leaderboard_frame,
    model_runs_frame,
    quantile_calibration,
    review_forecast,
    selection_frame,
)
from forecaster.review_inputs import load_review_series
from forecaster.selection import select
from tests.forecaster._backtest_fakes import daily_series

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Broken(estimator_class("last_value")):
    """Fits, then fails every forecast: the backtest must record it as failed, not hide it."""

    name = "broken"

    def _predict(self, horizon, quantiles):
        raise RuntimeError("no forecast today")

    def _predict_from(self, history, horizon, quantiles):
        raise RuntimeError("no forecast today")


class _Counting(estimator_class("last_value")):
    fits = 0

    def _fit(self, series):
        type(self).fits += 1
        self.fitted_until = series.index[-1]
        return super()._fit(series)


def _frame(actual, **columns) -> pd.DataFrame:
    index = pd.date_range("2025-01-06T00:00:00Z", periods=len(actual), freq="10min")
    return pd.DataFrame({"actual": actual, **columns}, index=index, dtype="float64")


@pytest.fixture(scope="module")
def small_backtest():
    series = daily_series(5)
    factories = {
        "last_value": lambda: make_estimator("last_value"),
        "seasonal_naive_daily": lambda: make_estimator("seasonal_naive_daily"),
        "broken": _Broken,
    }
    config = BacktestConfig(horizons=("10m", "60m"), eval_days=1, refits=2)
    result = backtest(series, factories, config, native_bin_seconds=600)
    return result, select(result)


# ---- quantile_calibration -------------------------------------------------------------------------


def test_quantile_calibration_by_hand() -> None:
    # Observed actuals 1, 2, 3, 4 (the NaN is unknown, not counted): 2 of 4 at or below 2.5,
    # 3 of 4 at or below 3.5, all at or below 4 (at is inside).
    frame = _frame([1, 2, 3, 4, np.nan], **{"0.5": [2.5] * 5, "0.9": [3.5] * 5, "0.95": [4] * 5, "mean": [9] * 5})
    table = quantile_calibration(frame)
    assert table["quantile"].tolist() == ["0.5", "0.9", "0.95"]
    assert table["observed"].tolist() == pytest.approx([0.5, 0.75, 1.0])
    assert table["points"].tolist() == [4, 4, 4]


@settings(max_examples=40)
@given(st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=40))
def test_quantile_calibration_is_monotone_for_ordered_quantiles(values) -> None:
    # Whatever happened, a higher quantile column (pointwise >=) can never cover fewer actuals.
    actual = np.asarray(values)
    base = np.full(actual.size, float(np.median(actual)))
    frame = _frame(actual, **{"0.1": base - 1, "0.5": base, "0.9": base + 1})
    observed = quantile_calibration(frame)["observed"].to_numpy()
    assert np.all(np.diff(observed) >= 0)
    assert ((observed >= 0) & (observed <= 1)).all()


# ---- review_forecast ------------------------------------------------------------------------------


def test_review_forecast_fits_only_before_the_window_and_reviews_it() -> None:
    series = daily_series(6)
    _Counting.fits = 0
    estimator = _Counting()
    review = review_forecast(series, estimator, review_days=1, context_days=0.5, horizon_bins=3)
    window = 144  # one day of 10-minute bins
    assert _Counting.fits == 1
    assert estimator.fitted_until == series.index[-window - 1] == review.train_end
    assert review.frame.index[0] == series.index[-window]
    assert review.frame.index[-1] == series.index[-1]
    # last_value forecasts 3 bins ahead as the value 3 bins before: no peek at the target.
    np.testing.assert_allclose(review.frame["mean"], series.shift(3).reindex(review.frame.index))
    assert review.context.index[0] == series.index[-window] - pd.Timedelta(hours=12)
    summary = review.summary()
    assert summary["horizon_minutes"] == 30 and summary["points"] == window
    assert summary["coverage_0.05_0.95"] == review.coverage
    observed = review.frame["actual"].notna()
    above = (review.frame["actual"] > review.frame["0.9"])[observed].mean()
    assert summary["under_rate"] == pytest.approx(above) and summary["controller_quantile"] == 0.9
    assert set(review.calibration["quantile"]) >= {"0.05", "0.5", "0.9", "0.95"}


def test_review_forecast_refit_false_keeps_the_fitted_model() -> None:
    series = daily_series(6)
    _Counting.fits = 0
    estimator = _Counting().fit(series)
    review = review_forecast(series, estimator, review_days=1, refit=False)
    assert _Counting.fits == 1  # only the fit above
    assert review.train_end is None  # not fitted here: the review does not claim a training cut


@pytest.mark.parametrize(
    "kwargs, match",
    [
        pytest.param({"review_days": 0}, "review_days must be > 0", id="no-window"),
        pytest.param({"review_days": 4}, r"review_days 4 \(576 bins of 600 s\) must leave", id="window-too-long"),
        pytest.param({"context_days": -1}, "context_days must be >= 0", id="negative-context"),
    ],
)
def test_review_forecast_rejects_bad_windows(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        review_forecast(daily_series(6), make_estimator("last_value"), **kwargs)


# ---- leaderboard, runs and selection tables -------------------------------------------------------


def test_leaderboard_frame_rows_order_and_card_form_agree(small_backtest) -> None:
    result, _record = small_backtest
    board = leaderboard_frame(result)
    assert tuple(board.columns) == LEADERBOARD_COLUMNS
    assert set(board["model"]) == {"last_value", "seasonal_naive_daily"}  # the failed one has no scores
    assert board["horizon"].tolist()[:2] == ["10m", "10m"] and board["baseline"].all()
    for _, part in board.groupby("horizon"):
        assert part["pinball_q"].is_monotonic_increasing
    row = board[(board["model"] == "last_value") & (board["horizon"] == "60m")].iloc[0]
    assert row["mase"] == result.runs["last_value"].scores["60m"].mase
    # A model card stores result.to_dict(): the same table comes out of it.
    pd.testing.assert_frame_equal(leaderboard_frame(result.to_dict()), board)


def test_leaderboard_frame_names_what_a_bad_record_lacks() -> None:
    with pytest.raises(ValueError, match="lacks 'scores'"):
        leaderboard_frame({"models": {}})


def test_model_runs_frame_shows_the_failed_model_and_why(small_backtest) -> None:
    result, _ = small_backtest
    runs = model_runs_frame(result).set_index("model")
    assert runs.loc["broken", "status"] == "failed"
    assert "no forecast today" in runs.loc["broken", "reason"]
    assert runs.loc["last_value", "n_fits"] == 2 and runs.loc["last_value", "reason"] == ""
    pd.testing.assert_frame_equal(model_runs_frame(result.to_dict()), model_runs_frame(result))


def test_selection_frame_roles_and_order(small_backtest) -> None:
    _, record = small_backtest
    table = selection_frame(record)
    assert table["score"].is_monotonic_increasing
    selected = table[table["role"].str.startswith("selected")]
    assert selected["model"].tolist() == [record.selected]
    assert "best baseline" in selected["role"].iloc[0]  # only baselines scored here
    pd.testing.assert_frame_equal(selection_frame(record.to_dict()), table)


def test_selection_frame_from_a_card_without_scores() -> None:
    # Older cards carry only objective, selected, best_baseline and reason.
    table = selection_frame({"objective": "mase", "selected": "gbm", "best_baseline": "last_value",
                             "reason": "r"})
    assert table.empty
    with pytest.raises(ValueError, match="lacks 'selected'"):
        selection_frame({"objective": "mase"})


# ---- review_inputs --------------------------------------------------------------------------------


def test_load_review_series_shipped_trace() -> None:
    source = load_review_series(signal="requests", bin="1h")
    assert source.bin_seconds == 3600 and source.native_bin_seconds == 600
    assert source.label == "servegen_m-small_1min.csv"
    assert source.series.index.tz is not None and (source.series.dropna() >= 0).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        pytest.param({"bin": "1m"}, "finer than servegen_m-small_1min.csv's native bin 10m", id="bin-too-fine"),
        pytest.param({"trace": "x.csv", "prometheus": "http://p:9090"}, "not both", id="two-sources"),
        pytest.param({"prometheus": "http://p:9090"}, "model_name is required", id="prometheus-no-model"),
        pytest.param({"bin": "7m"}, "bin '7m' is not supported", id="odd-bin"),
    ],
)
def test_load_review_series_rejects(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        load_review_series(**kwargs)


# ---- figures --------------------------------------------------------------------------------------


def test_new_figures_draw_and_encode_as_png(small_backtest) -> None:
    result, record = small_backtest
    series = daily_series(6)
    review = review_forecast(series, make_estimator("seasonal_naive_daily"), review_days=1, horizon_bins=2)
    figures = [
        plots.calibration(review.calibration, coverage=review.coverage),
        plots.under_forecast(review.frame, review.episodes, quantile=0.9),
        plots.selection_scores(selection_frame(record)),
        plots.fit_predict_times(model_runs_frame(result)),
    ]
    for fig in figures:
        assert fig.axes, "a figure with no axes draws nothing"
        data = plots.png_bytes(fig)
        assert data.startswith(PNG_MAGIC) and len(data) > 2000
    title = figures[0].axes[0].get_title()
    assert f"{review.coverage:.1%}" in title
    assert not math.isnan(review.coverage)


def test_selection_figure_highlights_only_the_selected_model(small_backtest) -> None:
    from matplotlib.colors import to_rgba

    _, record = small_backtest
    fig = plots.selection_scores(selection_frame(record))
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    green = [label for label, bar in zip(labels, ax.patches) if bar.get_facecolor() == to_rgba("tab:green")]
    assert green == [record.selected]
    plots.png_bytes(fig)  # closes it


def test_fit_predict_times_bars_keep_their_order_on_the_log_scale() -> None:
    runs = pd.DataFrame({"model": ["a", "b", "c"], "fit_seconds": [0.0, 7e-4, 8.5],
                         "predict_seconds": [0.013, 0.012, 0.02]})
    fig = plots.fit_predict_times(runs)
    fit_ax = fig.axes[0]
    widths = [bar.get_width() for bar in fit_ax.patches]
    assert widths == sorted(widths)  # a 0 s fit is drawn (clipped), never longer than a real one
    assert fit_ax.get_xlim()[0] <= min(bar.get_x() for bar in fit_ax.patches)
    assert [t.get_text() for t in fit_ax.texts] == ["0.001 ms", "0.7 ms", "8.5 s"]
    plots.png_bytes(fig)
