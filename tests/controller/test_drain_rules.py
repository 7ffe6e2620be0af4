"""configs/drain: the drain metric's recording rules compute what controller/sim/backlog.py computes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from controller.sim.backlog import replicas_needed

DRAIN = Path(__file__).resolve().parents[2] / "configs" / "drain"


def _groups() -> list[dict]:
    doc = yaml.safe_load((DRAIN / "prometheusrule.yaml").read_text())
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    return doc["spec"]["groups"]


@pytest.mark.parametrize("arrivals, waiting, asked, expected", [
    (12.0, 600.0, 4, 21.0),  # the unit test's first case
    (5.0, 100.0, 10, 2.5),  # its second
])
def test_the_unit_tests_expect_what_the_simulator_computes(arrivals, waiting, asked, expected) -> None:
    assert replicas_needed(arrivals, waiting, 2.0, asked, 300.0, 60.0) == pytest.approx(expected)
    cases = yaml.safe_load((DRAIN / "tests" / "drain-rules.test.yaml").read_text())["tests"]
    values = {s["value"] for c in cases for t in c["promql_expr_test"]
              if t["expr"] == "prescaler_vllm_replicas_needed" for s in t["exp_samples"]}
    assert expected in values


@pytest.mark.prometheus
def test_the_drain_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed: apt-get install prometheus (make prometheus)")
    (tmp_path / "drain-rules.yaml").write_text(yaml.safe_dump({"groups": _groups()}, sort_keys=False))
    shutil.copy(DRAIN / "tests" / "drain-rules.test.yaml", tmp_path)
    for args in (["check", "rules", "drain-rules.yaml"], ["test", "rules", "drain-rules.test.yaml"]):
        done = subprocess.run([promtool, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
