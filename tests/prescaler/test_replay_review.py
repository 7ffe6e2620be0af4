"""prescaler.replay_review: the replay tables, the lead/quantile sweep and its figures."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from controller.sim.replay import ReplaySettings, replay
from prescaler.replay_review import (
    SWEEP_COLUMNS,
    outcomes_figure,
    outcomes_frame,
    replicas_figure,
    replicas_frame,
    sweep,
    sweep_figure,
)
from tests.sim.conftest import daily_frame


@pytest.fixture(scope="module")
def small_report():
    settings = ReplaySettings(policies=("oracle", "static"), replay_days=0.1, peak_replicas=6)
    return replay(daily_frame(2), settings, trace_name="daily")


def test_replicas_frame_lines_up_with_the_report(small_report) -> None:
    table = replicas_frame(small_report)
    minutes = len(small_report.load_per_minute)
    assert len(table) == minutes and str(table.index.tz) == "UTC"
    assert table.index[0] == small_report.window_start
    np.testing.assert_allclose(table["load"] * 60, small_report.load_per_minute)
    assert table["oracle_requested"].tolist() == small_report.series["oracle"].requested[:minutes]
    assert {"static_ready", "static_slo_misses", "needed"} <= set(table.columns)


def test_outcomes_frame_one_row_per_policy(small_report) -> None:
    table = outcomes_frame(small_report).set_index("policy")
    assert list(table.index) == ["oracle", "static"]
    assert table.loc["oracle", "gpu_hours_vs_oracle"] == pytest.approx(1.0)
    assert table.loc["static", "gpu_hours"] == small_report.outcome("static").gpu_hours


def _fake_replay(calls):
    """Records each replay's settings and answers with outcomes that depend on lead and quantile."""

    def run(frame, settings, *, trace_name):
        calls.append(settings)
        outcomes = [
            SimpleNamespace(policy=p, slo_attainment=1 - settings.lead_seconds / 1e4 + settings.quantile / 100,
                            slo_misses=settings.lead_seconds, gpu_hours=10 * settings.quantile + (p == "hpa"),
                            gpu_hours_vs_oracle=1.0, scale_events=3)
            for p in settings.policies
        ]
        return SimpleNamespace(outcomes=outcomes)

    return run


def test_sweep_runs_each_lead_and_quantile_and_hpa_once_per_lead() -> None:
    calls = []
    base = ReplaySettings(policies=("hpa", "prescaler", "oracle"), replay_days=0.25, seed=3)
    table = sweep(None, base, leads=[60, 600], quantiles=[0.5, 0.9, 0.99], replay=_fake_replay(calls))
    assert tuple(table.columns) == SWEEP_COLUMNS
    assert len(calls) == 6
    assert all(c.seed == 3 and c.replay_days == 0.25 for c in calls)  # only lead and quantile vary
    assert sum("hpa" in c.policies for c in calls) == 2 and all("oracle" in c.policies for c in calls)
    counts = table.groupby("policy").size().to_dict()
    assert counts == {"hpa": 2, "oracle": 2, "prescaler": 6}
    assert table.loc[table["policy"] != "prescaler", "quantile"].isna().all()
    pre = table[table["policy"] == "prescaler"]
    assert sorted(zip(pre["lead_seconds"], pre["quantile"])) == [
        (60.0, 0.5), (60.0, 0.9), (60.0, 0.99), (600.0, 0.5), (600.0, 0.9), (600.0, 0.99)]


@pytest.mark.parametrize(
    "leads, quantiles, match",
    [
        pytest.param([], [0.9], "at least one lead", id="no-leads"),
        pytest.param([60], [], "at least one lead and one quantile", id="no-quantiles"),
        pytest.param([60], [1.0], r"quantiles must be in \(0, 1\), got \[1.0\]", id="quantile-1"),
        pytest.param([-5], [0.9], "leads must be >= 0 seconds, got \\[-5\\]", id="negative-lead"),
    ],
)
def test_sweep_rejects(leads, quantiles, match) -> None:
    with pytest.raises(ValueError, match=match):
        sweep(None, ReplaySettings(), leads=leads, quantiles=quantiles, replay=_fake_replay([]))


def test_figures_draw(small_report) -> None:
    from forecaster.plots import png_bytes

    calls = []
    table = sweep(None, ReplaySettings(policies=("hpa", "prescaler", "oracle")), leads=[60, 300],
                  quantiles=[0.5, 0.9], replay=_fake_replay(calls))
    for fig in (replicas_figure(small_report), outcomes_figure(small_report), sweep_figure(table)):
        assert fig.axes
        assert png_bytes(fig).startswith(b"\x89PNG")
    legend = [t.get_text() for t in sweep_figure(table).axes[1].get_legend().get_texts()]
    assert legend == ["hpa", "oracle", "prescaler q0.5", "prescaler q0.9"]
    assert not math.isnan(table["gpu_hours"].sum())
