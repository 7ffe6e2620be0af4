"""Selection: the best model only when it beats the best baseline, on the chosen objective."""

from __future__ import annotations

import math

import pytest

from forecaster.objective import objective_scores, parse_objective
from forecaster.selection import NoModelScored, select, select_from_scores

BASELINES = frozenset({"last_value", "seasonal_naive_daily"})


def score(mase: float, p90: float, p50: float = 1.0) -> dict:
    return {"mase": mase, "smape": 10 * mase, "pinball": {"0.5": p50, "0.9": p90, "mean": (p50 + p90) / 2}}


def table(**models: tuple[dict, dict]) -> dict:
    """{model: (score at 15m, score at 60m)} -> {horizon: {model: score}}."""
    return {
        "15m": {m: s[0] for m, s in models.items()},
        "60m": {m: s[1] for m, s in models.items()},
    }


@pytest.mark.parametrize(
    ("scores", "objective", "selected", "best_baseline", "best_model"),
    [
        pytest.param(
            # gbm pinball@0.9 mean (4 + 6) / 2 = 5 < last_value (6 + 8) / 2 = 7
            table(last_value=(score(1, 6), score(1, 8)), gbm=(score(0.9, 4), score(0.9, 6))),
            "pinball@0.9", "gbm", "last_value", "gbm", id="model-beats-baseline",
        ),
        pytest.param(
            # gbm 8 > last_value 7: the baseline stays
            table(last_value=(score(1, 6), score(1, 8)), gbm=(score(0.5, 7), score(0.5, 9))),
            "pinball@0.9", "last_value", "last_value", "gbm", id="baseline-kept",
        ),
        pytest.param(
            # the same table on MASE: gbm 0.5 < 1
            table(last_value=(score(1, 6), score(1, 8)), gbm=(score(0.5, 7), score(0.5, 9))),
            "mase", "gbm", "last_value", "gbm", id="objective-mase",
        ),
        pytest.param(
            # a tie is not a win: the baseline stays
            table(last_value=(score(1, 5), score(1, 5)), gbm=(score(1, 5), score(1, 5))),
            "pinball@0.9", "last_value", "last_value", "gbm", id="tie-keeps-baseline",
        ),
        pytest.param(
            # the best of two baselines is the bar: seasonal 3 < last 7, gbm 5 does not beat 3
            table(last_value=(score(1, 6), score(1, 8)), seasonal_naive_daily=(score(1, 3), score(1, 3)),
                  gbm=(score(1, 4), score(1, 6))),
            "pinball@0.9", "seasonal_naive_daily", "seasonal_naive_daily", "gbm", id="best-baseline-is-bar",
        ),
        pytest.param(
            # pinball averaged over quantiles: gbm (1+4)/2=2.5 and (1+6)/2=3.5 -> 3; last (1+6)/2, (1+8)/2 -> 4
            table(last_value=(score(1, 6), score(1, 8)), gbm=(score(1, 4), score(1, 6))),
            "pinball", "gbm", "last_value", "gbm", id="pinball-mean",
        ),
        pytest.param(
            table(last_value=(score(1, 6), score(1, 8))),
            "pinball@0.9", "last_value", "last_value", None, id="only-baselines",
        ),
        pytest.param(
            table(gbm=(score(1, 6), score(1, 8))),
            "pinball@0.9", "gbm", None, "gbm", id="no-baseline",
        ),
        pytest.param(
            # gbm is NaN at 60m: never selected even though its 15m is best
            table(last_value=(score(1, 6), score(1, 8)), gbm=(score(1, 1), score(1, math.nan))),
            "pinball@0.9", "last_value", "last_value", None, id="nan-model-excluded",
        ),
    ],
)
def test_select(scores, objective, selected, best_baseline, best_model):
    record = select_from_scores(scores, BASELINES, objective)
    assert (record.selected, record.best_baseline, record.best_model) == (selected, best_baseline, best_model)
    assert record.objective == objective
    assert record.reason


def test_record_has_averaged_scores_and_reason_with_gain():
    record = select_from_scores(
        table(last_value=(score(1, 6), score(1, 8)), gbm=(score(0.9, 4), score(0.9, 6))), BASELINES
    )
    assert record.scores == {"last_value": 7.0, "gbm": 5.0}
    # (7 - 5) / 7 = 28.6%
    assert "28.6% lower" in record.reason and "last_value" in record.reason
    assert record.to_dict()["selected"] == "gbm"


def test_min_improvement_demands_a_margin():
    scores = table(last_value=(score(1, 10), score(1, 10)), gbm=(score(1, 9.5), score(1, 9.5)))  # 5% lower
    assert select_from_scores(scores, BASELINES, min_improvement=0.0).selected == "gbm"
    record = select_from_scores(scores, BASELINES, min_improvement=0.1)
    assert record.selected == "last_value" and "by more than 10%" in record.reason


def test_nothing_scored_raises_with_reasons():
    with pytest.raises(NoModelScored, match="gbm: needs 2 days"):
        select_from_scores({"15m": {}}, BASELINES, unscored={"gbm": "needs 2 days"})


def test_objective_needs_the_quantile_scored():
    with pytest.raises(ValueError, match="pinball at quantile 0.8"):
        objective_scores(table(gbm=(score(1, 1), score(1, 1))), "pinball@0.8")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        pytest.param("mase", ("mase", None), id="mase"),
        pytest.param("SMAPE", ("smape", None), id="smape-case"),
        pytest.param("pinball", ("pinball", "mean"), id="pinball"),
        pytest.param("pinball@0.9", ("pinball", "0.9"), id="pinball-q"),
        pytest.param("pinball@.95", ("pinball", "0.95"), id="pinball-q-no-zero"),
    ],
)
def test_parse_objective(text, parsed):
    assert parse_objective(text) == parsed


@pytest.mark.parametrize("text", ["rmse", "pinball@1.5", "pinball@", "coverage90"])
def test_parse_objective_refuses(text):
    with pytest.raises(ValueError, match="is not one of mase, smape, pinball"):
        parse_objective(text)


def test_select_from_a_backtest_uses_is_baseline():
    from forecaster.backtest import BacktestConfig, backtest
    from tests.forecaster._backtest_fakes import Flat, FlatBaseline, NeedsDays, Oracle, daily_series

    series = daily_series(6)
    result = backtest(series, {
        "flat_baseline": lambda: FlatBaseline(), "oracle": lambda: Oracle(series, spread=0.1),
        "needs_days": lambda: NeedsDays(30), "flat": lambda: Flat(window=50),
    }, BacktestConfig(eval_days=1.5, origin_every="2h"))
    record = select(result)
    assert record.selected == "oracle" and record.best_baseline == "flat_baseline"
    assert "needs_days" not in record.scores
