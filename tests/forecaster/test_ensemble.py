"""The ensemble: the quantile average of the backtest's best models, scored without fitting again,
selected like any candidate, fitted as one picklable Estimator, and the backtest's process pool."""

from __future__ import annotations

import functools
import os
import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from forecaster.backtest import BacktestConfig, auto_workers, backtest
from forecaster.errors import InsufficientHistory
from forecaster.estimators import ESTIMATORS, make_estimator
from forecaster.estimators.ensemble import DEFAULT_MEMBERS, QuantileAverage, quantile_average
from forecaster.registry import Registry
from forecaster.selection import select, select_from_scores
from forecaster.training import card_fields, evaluate_and_fit
from tests.forecaster._backtest_fakes import Broken, Counting, Flat, FlatBaseline, NeedsDays, Oracle, daily_series

SERIES = daily_series(8, gaps=12)
QUICK = BacktestConfig(eval_days=2, origin_every="2h", refits=3)
KEYS = ["mean", "0.05", "0.5", "0.9", "0.95"]


class Shifted(Oracle):
    """The truth plus a constant: two with opposite shifts average to the truth exactly."""

    name = "shifted"

    def __init__(self, truth: pd.Series, shift: float, spread: float = 2.0):
        super().__init__(truth, spread)
        self.shift = shift

    def _after(self, end, horizon, quantiles):
        point, quant = super()._after(end, horizon, quantiles)
        return point + self.shift, quant + self.shift


def shifted(shift: float):
    # functools.partial of module-level classes: picklable, so the process-pool test can use it too.
    return functools.partial(Shifted, SERIES, shift)


# ---- the average itself -----------------------------------------------------------------------------


@st.composite
def ordered_forecasts(draw):
    """2-5 member forecasts of one shape (origins, leads, mean + quantiles), quantiles in order."""
    members = draw(st.integers(2, 5))
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(2, 5)))
    values = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
    out = []
    for _ in range(members):
        array = draw(hnp.arrays("float64", shape, elements=values))
        array[..., 1:] = np.sort(array[..., 1:], axis=-1)  # each member's quantiles ascend
        out.append(array)
    return out


@settings(max_examples=60)
@given(ordered_forecasts())
def test_the_average_of_ordered_quantiles_is_ordered_and_bounded(forecasts):
    combined = quantile_average(forecasts)
    stacked = np.stack(forecasts)
    assert combined.shape == forecasts[0].shape
    quant = combined[..., 1:]
    assert (np.diff(quant, axis=-1) >= -1e-9 * np.maximum(1.0, np.abs(quant[..., :-1]))).all()
    # Per cell, the average lies between the members' least and greatest value.
    assert (combined >= stacked.min(axis=0) - 1e-6).all() and (combined <= stacked.max(axis=0) + 1e-6).all()


@pytest.mark.parametrize(
    ("forecasts", "message"),
    [
        pytest.param([], "at least one forecast", id="none"),
        pytest.param([np.zeros((2, 3)), np.zeros((2, 4))], "share one shape", id="shapes-differ"),
    ],
)
def test_the_average_refuses(forecasts, message):
    with pytest.raises(ValueError, match=message):
        quantile_average(forecasts)


# ---- the estimator ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        pytest.param({"k": 1}, ValueError, r"k \(how many models to combine\) must be an integer >= 2, got 1",
                     id="k-one"),
        pytest.param({"k": 2.5}, ValueError, "got 2.5", id="k-float"),
        pytest.param({"members": ["gbm"]}, ValueError, r"at least 2 members, got \['gbm'\]", id="one-member"),
        pytest.param({"members": "gbm,mstl"}, TypeError, "got the string 'gbm,mstl'", id="string"),
        pytest.param({"members": ["gbm", "gbm"]}, ValueError, r"members repeat: \['gbm'\]", id="repeat"),
        pytest.param({"members": ["gbm", "ensemble"]}, ValueError, "member of itself", id="itself"),
        pytest.param({"members": ["gbm", ""]}, ValueError, "non-empty strings, got ''", id="empty-name"),
        pytest.param({"members": ["gbm", "mstl"], "member_params": {"prophet": {}}}, ValueError,
                     r"member_params names \['prophet'\], which are not members", id="stray-params"),
        pytest.param({"member_params": {"gbm": {}}}, ValueError, "needs members", id="params-without-members"),
    ],
)
def test_settings_are_checked(kwargs, error, message):
    with pytest.raises(error, match=message):
        QuantileAverage(**kwargs)


def test_catalogue_names_it_ensemble_with_default_members():
    assert "ensemble" in ESTIMATORS
    estimator = make_estimator("ensemble")
    assert isinstance(estimator, QuantileAverage) and not estimator.is_baseline
    assert estimator.get_params() == {"members": list(DEFAULT_MEMBERS), "k": 2, "member_params": {}}


def members(**spec) -> dict:
    return {name: make() for name, make in spec.items()}


def test_forecast_is_the_average_of_the_members_forecasts():
    parts = members(low=functools.partial(Flat, 1, 2.0), high=functools.partial(Flat, 30, 20.0))
    ensemble = QuantileAverage.of(parts).fit(SERIES.iloc[:-50])
    alone = [type(p)(**p.get_params()).fit(SERIES.iloc[:-50]) for p in parts.values()]
    for history in (None, SERIES.iloc[:-20]):
        got = ensemble.predict(6, (0.05, 0.5, 0.95), history=history)
        frames = [m.predict(6, (0.05, 0.5, 0.95), history=history) for m in alone]
        expected = sum(f.to_numpy() for f in frames) / 2
        np.testing.assert_allclose(got.to_numpy(), expected)
        assert got.index.equals(frames[0].index)


@settings(max_examples=25)
@given(
    specs=st.lists(st.tuples(st.integers(1, 50), st.floats(0.0, 80.0), st.floats(-30.0, 30.0)),
                   min_size=2, max_size=4),
    quantiles=st.lists(st.floats(0.01, 0.99), min_size=1, max_size=5, unique=True),
)
def test_fitted_ensemble_quantiles_are_in_order_and_inside_the_members(specs, quantiles):
    # Members of any window, spread and bias: the ensemble's quantiles ascend with the level and each
    # lies within its members' values at that level.
    parts = {f"m{i}": functools.partial(Shifted, SERIES, shift, spread) if i % 2 else functools.partial(Flat, w, spread)
             for i, (w, spread, shift) in enumerate(specs)}
    ensemble = QuantileAverage.of({n: make() for n, make in parts.items()}).fit(SERIES.iloc[:-40])
    frame = ensemble.predict(6, quantiles, history=SERIES.iloc[:-10])
    keys = [c for c in frame.columns if c != "mean"]
    values = frame[keys].to_numpy()
    assert (np.diff(values, axis=1) >= -1e-9).all()
    members = np.stack([m.predict(6, quantiles, history=SERIES.iloc[:-10])[keys].to_numpy()
                        for m in ensemble.members_.values()])
    assert (values >= members.min(axis=0) - 1e-9).all() and (values <= members.max(axis=0) + 1e-9).all()


def test_history_reaches_every_member():
    # Oracles forecast the truth after whatever origin they are given: the average follows it too.
    ensemble = QuantileAverage.of(members(a=shifted(-5.0), b=shifted(5.0))).fit(SERIES.iloc[:300])
    frame = ensemble.predict(6, history=SERIES.iloc[:400])
    truth = SERIES.iloc[400:406].fillna(0.0).to_numpy()
    np.testing.assert_allclose(frame["mean"].to_numpy(), truth, atol=1e-9)


def test_pickled_ensemble_forecasts_the_same():
    ensemble = QuantileAverage.of(members(a=Flat, b=functools.partial(Flat, 12, 4.0))).fit(SERIES)
    restored = pickle.loads(pickle.dumps(ensemble))
    pd.testing.assert_frame_equal(restored.predict(12), ensemble.predict(12))
    pd.testing.assert_frame_equal(
        restored.predict(6, history=SERIES.iloc[:-30]), ensemble.predict(6, history=SERIES.iloc[:-30]),
    )


def test_a_member_that_cannot_fit_is_named():
    ensemble = QuantileAverage.of(members(flat=Flat, needs_days=functools.partial(NeedsDays, 30.0)))
    with pytest.raises(InsufficientHistory, match="ensemble: member needs_days cannot fit: needs_days needs 30"):
        ensemble.fit(SERIES)


# ---- scored in the backtest from the members' forecasts -------------------------------------------------


def run_with_ensemble(models: dict, k: int = 2, **kwargs):
    return backtest(SERIES, {**models, "ensemble": functools.partial(QuantileAverage, k=k)}, QUICK, **kwargs)


def test_backtest_scores_it_from_the_members_forecasts_without_fitting():
    counted = {name: Counting(make) for name, make in
               {"plus": shifted(4.0), "minus": shifted(-4.0), "flat": Flat}.items()}
    alone = backtest(SERIES, dict(counted), QUICK)
    fits_alone = {n: c.fits for n, c in counted.items()}
    result = run_with_ensemble(dict(counted), k=3)
    assert {n: c.fits - fits_alone[n] for n, c in counted.items()} == fits_alone  # no fit for the ensemble
    run = result.runs["ensemble"]
    assert run.status == "ok" and set(run.members) == {"plus", "minus", "flat"} and run.n_fits == 0
    for i in (0, 5, len(result.origins) - 1):
        expected = sum(result.forecast_frame(m, i) for m in run.members) / 3
        pd.testing.assert_frame_equal(result.forecast_frame("ensemble", i), expected)
    # The single models' scores are what they were without it.
    assert result.runs["plus"].scores == alone.runs["plus"].scores


def test_members_are_the_best_k_non_baselines_on_the_objective():
    models = {"base": FlatBaseline, "far": shifted(40.0), "near": shifted(1.0), "mid": shifted(-8.0),
              "wide": functools.partial(Shifted, SERIES, 3.0, 60.0)}
    result = backtest(SERIES, {**models, "ensemble": functools.partial(QuantileAverage, k=2)}, QUICK)
    scores = select(result).scores
    ranked = sorted((scores[n], n) for n in ("far", "near", "mid", "wide"))
    assert result.runs["ensemble"].members == tuple(n for _, n in ranked[:2])
    assert "base" not in result.runs["ensemble"].members


def test_fewer_than_two_scored_models_skip_it_with_the_reason():
    result = run_with_ensemble({"base": FlatBaseline, "only": Flat, "short": functools.partial(NeedsDays, 30.0)})
    run = result.runs["ensemble"]
    assert run.status == "skipped"
    assert run.reason == "an ensemble needs 2 scored models, got ['only']"


def test_fixed_members_outside_the_backtest_are_fitted_like_any_model():
    result = backtest(
        SERIES, {"flat": Flat, "ensemble": lambda: QuantileAverage.of(members(x=Flat, y=shifted(3.0)))}, QUICK,
    )
    run = result.runs["ensemble"]
    assert run.status == "ok" and run.n_fits == QUICK.refits and run.members == ()


def test_fixed_members_in_the_backtest_are_averaged_there():
    result = backtest(SERIES, {"a": shifted(2.0), "b": Flat, "c": shifted(-9.0),
                               "ensemble": lambda: QuantileAverage(members=["c", "a"])}, QUICK)
    assert result.runs["ensemble"].members == ("c", "a")
    expected = (result.forecast_frame("a", 3) + result.forecast_frame("c", 3)) / 2
    pd.testing.assert_frame_equal(result.forecast_frame("ensemble", 3), expected)


def test_to_dict_lists_the_members_and_never_the_forecast_arrays():
    result = run_with_ensemble({"plus": shifted(4.0), "minus": shifted(-4.0)})
    data = result.to_dict()
    assert data["models"]["ensemble"]["members"] == ["minus", "plus"] or \
        data["models"]["ensemble"]["members"] == ["plus", "minus"]
    assert "members" not in data["models"]["plus"]
    assert "forecasts" not in str(data)


# ---- selection and the final fit ------------------------------------------------------------------------


def test_selected_when_it_beats_every_single_model_and_records_members():
    # +-6 around the truth: each alone misses by 6, their average is exact.
    result = run_with_ensemble({"base": FlatBaseline, "plus": shifted(6.0), "minus": shifted(-6.0)})
    record = select(result)
    assert record.selected == "ensemble"
    assert set(record.ensemble_members) == {"plus", "minus"}
    assert "ensemble (" in record.reason and "beats the best baseline base" in record.reason


def test_not_selected_when_a_single_model_is_better():
    # The exact oracle is best; averaging it with worse models only adds their error.
    result = run_with_ensemble({"base": FlatBaseline, "exact": shifted(0.0), "off": shifted(9.0),
                                "more": shifted(15.0)}, k=3)
    record = select(result)
    assert record.selected == "exact"
    assert record.scores["ensemble"] > record.scores["exact"]
    assert record.ensemble_members == ("exact", "off", "more")  # still recorded


def test_a_tie_goes_to_the_single_model():
    table = {h: {"base": {"pinball": {"0.9": 5.0}}, "gbm": {"pinball": {"0.9": 1.0}},
                 "ensemble": {"pinball": {"0.9": 1.0}}} for h in ("15m", "60m")}
    record = select_from_scores(table, {"base"}, ensembles={"ensemble": ("gbm", "mstl")})
    assert record.selected == "gbm" and record.ensemble_members == ("gbm", "mstl")


def test_final_fit_fits_the_members_on_all_history_and_the_registry_stores_it(tmp_path):
    trained = evaluate_and_fit(
        SERIES, models={"base": FlatBaseline, "plus": shifted(6.0), "minus": shifted(-6.0),
                        "ensemble": QuantileAverage}, config=QUICK,
    )
    estimator = trained.estimator
    assert isinstance(estimator, QuantileAverage) and trained.selection.selected == "ensemble"
    assert set(estimator.members_) == set(trained.selection.ensemble_members)
    assert all(m.last_timestamp_ == SERIES.index[-1] for m in estimator.members_.values())
    card = Registry(tmp_path).save(estimator, card_fields(trained, SERIES, workload="w", signal="requests"))
    assert card.model == "ensemble"
    assert set(card.params["members"]) == {"plus", "minus"}
    assert set(card.selection.model_dump()["ensemble_members"]) == {"plus", "minus"}
    assert card.backtest["models"]["ensemble"]["members"]
    loaded, _card = Registry(tmp_path).load("w", "requests")
    pd.testing.assert_frame_equal(loaded.predict(6), estimator.predict(6))


class CannotRefitShifted(Shifted):
    name = "shifted"

    def _fit(self, series):
        if series.index[-1] == self.truth.index[-1]:
            raise ValueError("cannot fit the full history")


def test_an_ensemble_whose_member_fails_the_final_fit_falls_back_to_the_next_candidate():
    trained = evaluate_and_fit(
        SERIES, models={"base": FlatBaseline, "plus": shifted(6.0),
                        "minus": functools.partial(CannotRefitShifted, SERIES, -6.0), "ensemble": QuantileAverage},
        config=QUICK,
    )
    record = trained.selection
    # Next in line is the better single model (over-forecasting costs less at 0.9): plus.
    assert record.selected == "plus" and trained.estimator.last_timestamp_ == SERIES.index[-1]
    assert ("but fitting ensemble on all history failed (ValueError: ensemble: member minus failed to fit: "
            "ValueError: cannot fit the full history), so plus is used") in record.reason


# ---- the process pool -----------------------------------------------------------------------------------


def test_a_pool_of_two_gives_the_same_scores_as_one_process():
    models = {"base": functools.partial(FlatBaseline, 3, 8.0), "plus": shifted(6.0), "minus": shifted(-2.0),
              "flat": functools.partial(Flat, 6, 5.0), "short": functools.partial(NeedsDays, 30.0),
              "broken": Broken, "ensemble": QuantileAverage}
    calls = []
    serial = backtest(SERIES, models, QUICK)
    pooled = backtest(SERIES, models, QUICK, workers=2, progress=lambda *a: calls.append(a))
    assert list(pooled.runs) == list(models)  # the caller's order, whatever order they finished in
    for name in models:
        assert (pooled.runs[name].status, pooled.runs[name].reason) == (serial.runs[name].status,
                                                                         serial.runs[name].reason), name
        assert pooled.runs[name].scores == serial.runs[name].scores, name
        assert pooled.runs[name].members == serial.runs[name].members
    assert pooled.runs["short"].status == "skipped" and pooled.runs["broken"].reason == "RuntimeError: singular matrix"
    # Progress moves a refit group at a time, and every model ends complete.
    assert {c[0] for c in calls} == set(models)
    last = {name: (done, total) for name, done, total in calls}
    assert all(done == total == QUICK.refits for done, total in last.values())


class DiesInAWorker:
    """A factory whose copy in a worker process kills that process as it arrives (as an OOM kill
    or a script without the __main__ guard would), while this process's own copy works."""

    def __init__(self):
        self.pid = os.getpid()

    def __call__(self):
        return Flat(4)

    def __setstate__(self, state):
        if state["pid"] != os.getpid():
            os._exit(3)
        self.__dict__.update(state)


def test_a_broken_pool_runs_the_models_it_left_in_this_process(caplog):
    models = {"flat": DiesInAWorker(), "plus": shifted(6.0)}
    serial = backtest(SERIES, models, QUICK)
    with caplog.at_level("WARNING", logger="forecaster.backtest"):
        pooled = backtest(SERIES, models, QUICK, workers=2)
    assert "the worker pool broke" in caplog.text
    for name in models:
        assert pooled.runs[name].status == "ok"
        assert pooled.runs[name].scores == serial.runs[name].scores


def test_unpicklable_factories_run_in_this_process():
    counting = Counting(Flat)  # counts in this process: a worker's fits would not show here
    result = backtest(SERIES, {"flat": counting, "other": lambda: Flat(3)}, QUICK, workers=2)
    assert result.runs["flat"].status == "ok" and counting.fits == QUICK.refits


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        pytest.param(["last_value", "seasonal_naive_daily", "seasonal_naive_weekly"], 1, id="baselines-only"),
        pytest.param(["last_value", "gbm"], 1, id="one-costly-model"),
        pytest.param(["holt_winters", "gbm", "ensemble"], 2, id="two-costly-models"),
        pytest.param(["flat", "oracle"], 1, id="unknown-names"),
    ],
)
def test_auto_workers(models, expected, monkeypatch):
    monkeypatch.setattr("forecaster.backtest_pool._usable_cpus", lambda: 2)
    assert auto_workers(models) == expected


def test_auto_workers_never_exceeds_the_cores(monkeypatch):
    monkeypatch.setattr("forecaster.backtest_pool._usable_cpus", lambda: 1)
    assert auto_workers(["gbm", "mstl", "prophet"]) == 1


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_workers_must_be_a_positive_integer(workers):
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        backtest(SERIES, {"flat": Flat}, QUICK, workers=workers)


def test_objective_of_the_config_is_checked():
    with pytest.raises(ValueError, match="objective pinball@0.8 needs quantile 0.8"):
        BacktestConfig(objective="pinball@0.8")
    with pytest.raises(ValueError, match="is not one of mase"):
        BacktestConfig(objective="rmse")
    assert BacktestConfig(controller_quantile=0.95).ranking_objective == "pinball@0.95"


def test_estimator_for_rebuilds_the_backtested_members_from_the_catalogue():
    from dataclasses import replace

    from forecaster.backtest import ModelRun
    from forecaster.training import estimator_for

    result = backtest(SERIES, {"flat": Flat}, QUICK)
    result = replace(result, runs={
        **result.runs,
        "ensemble": ModelRun("ensemble", False, "ok", members=("holt_winters", "seasonal_naive_daily")),
    })
    estimator = estimator_for("ensemble", result)
    assert isinstance(estimator, QuantileAverage)
    assert estimator.get_params()["members"] == ["holt_winters", "seasonal_naive_daily"]
    fitted = estimator.fit(SERIES)
    assert [m.name for m in fitted.members_.values()] == ["holt_winters", "seasonal_naive_daily"]
    assert type(estimator_for("flat", result, {"flat": Flat})) is Flat
