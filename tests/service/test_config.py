"""The service config: each mistake is refused with the field path and the values."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from forecaster.service.config import ConfigError, load_config, parse_config
from tests.service.conftest import ROOT, config_dict


def _with(tmp: Path, path: str, value) -> dict:
    data = copy.deepcopy(config_dict(tmp))
    node = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[keys[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        pytest.param("workloads.0.capacity.max_replicas", 0,
                     "workloads.0.capacity.max_replicas: Input should be greater than or equal to 1",
                     id="max-replicas-zero"),
        pytest.param("workloads.0.capacity.min_replicas", 30, "max_replicas (20) must be >= min_replicas (30)",
                     id="bounds-crossed"),
        pytest.param("workloads.0.capacity.per_replica", {"prompt_tokens": 100.0},
                     "names ['prompt_tokens'] which are not in signals", id="capacity-signal-unconfigured"),
        pytest.param("workloads.0.capacity.per_replica", {"requests": 0}, "per_replica rates must be > 0",
                     id="capacity-zero"),
        pytest.param("workloads.0.capacity.target_utilization", 1.5, "target_utilization", id="utilization"),
        pytest.param("workloads.0.name", "M_Small", "must be a DNS-1123 label", id="name"),
        pytest.param("workloads.0.model", "arima", "neither 'auto' nor one of", id="model"),
        pytest.param("workloads.0.candidates", ["prophet", "nope"], "unknown model 'nope'", id="candidates"),
        pytest.param("workloads.0.quantile", 1.0, "strictly between 0 and 1", id="quantile"),
        pytest.param("workloads.0.bin", "7m", "is not supported; use one of", id="bin"),
        pytest.param("workloads.0.lead_time", "soon", "is not like 90s, 15m", id="lead-time"),
        pytest.param("workloads.0.retrain_interval", "30s", "retrain_interval (0:00:30) must be >= interval (0:01:00)",
                     id="retrain-interval"),
        pytest.param("workloads.0.max_horizon", "2m", "must cover lead_time + interval", id="horizon"),
        pytest.param("workloads.0.signals", {"latency": {"query": "x"}}, "workloads.0.signals.latency",
                     id="signal-name"),
        pytest.param("workloads.0.signals", {"requests": {"query": "  "}}, "query must not be empty", id="empty-query"),
        pytest.param("workloads.0.labels", {"workload": "x"}, "set by the service", id="reserved-label"),
        pytest.param("workloads.0.labels", {"team": "a b"}, "not a valid Kubernetes label value", id="label-value"),
        pytest.param("workloads.0.extra", 1, "workloads.0.extra: Extra inputs are not permitted", id="unknown-field"),
        pytest.param("history", {"source": "trace"}, "source 'trace' needs trace.path", id="trace-path"),
        pytest.param("history", {"source": "prometheus"}, "no prometheus section", id="prometheus-missing"),
        pytest.param("bind", {"port": 8080, "grpc_port": 8080}, "grpc_port (8080) must differ from port (8080)",
                     id="ports"),
        pytest.param("workloads", [], "at least one workload", id="no-workloads"),
        pytest.param("retention", {"keep_versions": 0},
                     "retention.keep_versions: Input should be greater than or equal to 1", id="keep-zero"),
        pytest.param("retention", {"decisions_max_bytes": 100},
                     "retention.decisions_max_bytes: Input should be greater than or equal to 4096",
                     id="log-too-small"),
        pytest.param("retention", {"keep": 3}, "retention.keep: Extra inputs are not permitted",
                     id="retention-unknown"),
    ],
)
def test_invalid_configs_name_the_field(tmp_path, path, value, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(_with(tmp_path, path, value), "cfg.yaml")
    text = str(caught.value)
    assert text.startswith("cfg.yaml: invalid service config")
    assert message in text


def test_duplicate_workloads(tmp_path):
    data = config_dict(tmp_path)
    data["workloads"].append(copy.deepcopy(data["workloads"][0]))
    with pytest.raises(ConfigError, match=r"repeated: \['m-small'\]"):
        parse_config(data)


def test_yaml_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("workloads:\n  - name: a\n   bad: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml, line \d+: not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path)


def test_the_example_config_is_valid_and_paths_resolve():
    # The example reads its workloads from the PredictiveAutoscalers; m-small's entry is an override
    # (tests/service/test_discovery.py checks it with the example PredictiveAutoscaler gives the
    # workload the hand-listed entry described).
    config = load_config(ROOT / "configs" / "forecaster" / "forecaster.yaml")
    assert config.discovery.enabled
    (override,) = config.workloads
    assert override.name == "m-small" and override.labels == {"team": "inference"}
    assert override.quantiles == [0.5, 0.9, 0.95]
    assert config.tls is not None and config.tls.cert_file.is_absolute()


def test_relative_paths_are_relative_to_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "svc.yaml"
    path.write_text(
        "history: {source: trace, trace: {path: ../trace.csv}}\nregistry_dir: models\n"
        "workloads:\n  - name: a\n    model_name: a\n    signals: {requests: {query: x}}\n"
        "    capacity: {per_replica: {requests: 1}}\n")
    config = load_config(path)
    assert config.history.trace.path == tmp_path / "sub" / ".." / "trace.csv"
    assert config.registry_dir == tmp_path / "sub" / "models"


def test_cli_check_and_errors(tmp_path):
    from forecaster.service.cli import register

    app = typer.Typer()
    other = typer.Typer()
    app.add_typer(other, name="forecaster")

    @other.command("train")
    def train() -> None:  # stands in for forecaster.cli's commands
        """train"""

    register(app)
    runner = CliRunner()
    example = str(ROOT / "configs" / "forecaster" / "forecaster.yaml")
    ok = runner.invoke(app, ["forecaster", "serve", "--config", example, "--check"])
    assert ok.exit_code == 0, ok.output
    assert "valid (workloads from the PredictiveAutoscalers in all namespaces" in ok.output
    assert "1 override(s): m-small" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("workloads: []\n")
    result = runner.invoke(app, ["forecaster", "serve", "--config", str(bad)])
    assert result.exit_code == 2
    assert "at least one workload" in result.output
    assert len([g for g in app.registered_groups if g.name == "forecaster"]) == 1
