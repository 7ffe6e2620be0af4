"""The demo's outputs: report.json, replay.png and summary.md, written atomically."""

from __future__ import annotations

import json
from pathlib import Path

from controller.sim.replay import ReplaySettings, replay
from controller.sim.report import markdown_table, summary_markdown
from prescaler.replay_outputs import write_outputs
from tests.sim.conftest import daily_frame


def test_write_outputs(tmp_path: Path) -> None:
    report = replay(daily_frame(2), ReplaySettings(policies=("oracle", "static"), replay_days=0.2,
                                                   peak_replicas=6), trace_name="synthetic")
    paths = write_outputs(report, tmp_path / "demo-output")
    data = json.loads(paths["json"].read_text())
    assert len(data["load_per_minute"]) == len(data["series"]["oracle"]["requested"]) == 288
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = paths["summary"].read_text()
    assert summary.startswith("# Replay of synthetic") and markdown_table(report) in summary
    assert sorted(p.name for p in (tmp_path / "demo-output").iterdir()) == ["replay.png", "report.json", "summary.md"]
    assert "peak needs 6 replicas" in summary_markdown(report)


def test_parallel_policies_give_the_same_outcome() -> None:
    settings = ReplaySettings(policies=("oracle", "static"), replay_days=0.1, peak_replicas=6)
    one = replay(daily_frame(2), settings, jobs=1)
    two = replay(daily_frame(2), settings, jobs=2)
    strip = lambda r: [o.model_dump(exclude={"wall_seconds"}) for o in r.outcomes]  # noqa: E731
    assert strip(one) == strip(two) and one.series == two.series
