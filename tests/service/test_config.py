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
        # Bounded by what the models can serve (config.MAX_HORIZON, MAX_HORIZON_STEPS, MAX_QUANTILES):
        # `max_horizon: 10000d` was accepted and left the service computing a forecast it never finished.
        pytest.param("workloads.0.max_horizon", "10000d",
                     "workloads.0.max_horizon: max_horizon 10000d is over the limit of 14d", id="horizon-limit"),
        pytest.param("workloads.0.max_horizon", "15d", "max_horizon 15d is over the limit of 14d",
                     id="horizon-just-over"),
        pytest.param("workloads.0.quantiles", [round(0.04 * i, 2) for i in range(1, 25)],
                     "workloads.0.quantiles: quantiles lists 24 quantiles, over the limit of 20",
                     id="quantiles-limit"),
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
    from forecaster.service.cli import describe, register

    app = typer.Typer()
    other = typer.Typer()
    app.add_typer(other, name="forecaster")

    @other.command("train")
    def train() -> None:  # stands in for forecaster.cli's commands
        """train"""

    register(app)
    runner = CliRunner()
    example = ROOT / "configs" / "forecaster" / "forecaster.yaml"
    described = describe(load_config(example))
    assert described.startswith("workloads from the PredictiveAutoscalers in all namespaces")
    assert described.endswith("1 override(s): m-small")
    # The example's token and TLS files are a pod's mounted Secrets: outside one, --check says so.
    missing = runner.invoke(app, ["forecaster", "serve", "--config", str(example), "--check"])
    assert missing.exit_code == 2, missing.output
    assert f"{example}: cannot serve (" in missing.output
    for field in ("auth.bearer_token_file", "tls.cert_file", "tls.key_file", "tls.grpc_client_ca_file"):
        assert f"  {field}: /var/run/" in missing.output, field
    bad = tmp_path / "bad.yaml"
    bad.write_text("workloads: []\n")
    result = runner.invoke(app, ["forecaster", "serve", "--config", str(bad)])
    assert result.exit_code == 2
    assert "at least one workload" in result.output
    assert len([g for g in app.registered_groups if g.name == "forecaster"]) == 1


# --- limits: what the models can serve ------------------------------------------------------------


def test_the_horizon_limit_is_in_steps_of_the_bin_too(tmp_path):
    from forecaster.service.config import MAX_HORIZON_STEPS

    # 14 days is the horizon limit; at 5-minute bins it is exactly the steps limit too: served.
    data = _with(tmp_path, "workloads.0.max_horizon", "14d")
    assert parse_config(data).workload("m-small").horizon_bins == 2016  # the default 10-minute bin
    data["workloads"][0]["bin"] = "5m"
    assert parse_config(data).workload("m-small").horizon_bins == MAX_HORIZON_STEPS
    # 3 days at 1-minute bins is 4320 steps: refused, naming both fields and the limit.
    data = _with(tmp_path, "workloads.0.max_horizon", "3d")
    data["workloads"][0]["bin"] = "1m"
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "cfg.yaml")
    assert ("max_horizon 3d at bin 1m is 4320 steps, over the limit of 4032 steps (2d19h12m at this bin)"
            in str(caught.value))


def test_the_served_quantiles_count_the_scaling_quantile(tmp_path):
    # 20 configured quantiles are at the limit; the scaling quantile 0.97 is a 21st served one.
    twenty = [round(0.045 * i, 3) for i in range(1, 21)]
    data = _with(tmp_path, "workloads.0.quantiles", twenty)
    assert len(parse_config(data).workload("m-small").served_quantiles) == 20  # 0.9 is among them
    data["workloads"][0]["quantile"] = 0.97
    with pytest.raises(ConfigError, match=r"quantiles \(20\) and quantile 0.97 make 21 served quantiles, "
                                          r"over the limit of 20"):
        parse_config(data)


def test_an_override_is_bounded_too(tmp_path):
    """With discovery an entry is an override: its horizon is refused at load, and a bin that makes the
    discovered horizon too many steps is refused when the workload is merged, naming max_horizon."""
    from pydantic import ValidationError

    data = {"discovery": {"enabled": True}, "history": {"source": "trace", "trace": {"path": "t.csv"}},
            "workloads": [{"name": "m-small", "max_horizon": "10000d"}]}
    with pytest.raises(ConfigError, match=r"workloads.0.max_horizon: max_horizon 10000d is over the limit of 14d"):
        parse_config(data)
    data["workloads"] = [{"name": "m-small", "bin": "1m"}]
    override = parse_config(data).workloads[0]
    base = config_dict(tmp_path)["workloads"][0] | {"max_horizon": "7d"}
    with pytest.raises(ValidationError, match="max_horizon 7d at bin 1m is 10080 steps"):
        override.settings(base)


def test_a_config_that_is_not_utf8_names_the_byte(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"workloads:\n  - name: caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (f"{path}: not UTF-8 text: byte 0xe9 at offset 24 (line 2) cannot be "
                                 "decoded; save the config as UTF-8")
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(ConfigError, match=r"model.bin: not UTF-8 text: byte 0x89 at offset 0 \(line 1\)"):
        load_config(binary)
    # A UTF-8 byte order mark (Windows editors write one) is text, not an error.
    bom = tmp_path / "bom.yaml"
    bom.write_bytes("\ufeffworkloads: []\n".encode())
    with pytest.raises(ConfigError, match="at least one workload"):
        load_config(bom)


# --- `serve --check`: what serving needs ----------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    import subprocess

    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pem(tmp_path_factory) -> Path:
    """A self-signed certificate and its key (the certificate doubles as a CA), and a second key."""
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("pem")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.crt",
             "-days", "1", "-subj", "/CN=forecaster", cwd=d)
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "other.key", cwd=d)
    _openssl("pkey", "-in", "tls.key", "-aes256", "-passout", "pass:pw", "-out", "encrypted.key", cwd=d)
    return d


def _serving_config(tmp: Path, pem: Path, **changes) -> Path:
    """A config whose every file exists, written as YAML; `changes` replace top-level sections."""
    import yaml

    token = tmp / "token"
    token.write_text("s3cret\n")
    data = config_dict(tmp)
    data["registry_dir"] = str(tmp / "state" / "models")  # created by serving, not by --check
    data["auth"] = {"bearer_token_file": str(token)}
    data["tls"] = {"cert_file": str(pem / "tls.crt"), "key_file": str(pem / "tls.key"),
                   "client_ca_file": str(pem / "tls.crt")}
    data.update(changes)
    path = tmp / "svc.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _cli() -> typer.Typer:
    from forecaster.service.cli import register

    app = typer.Typer()
    register(app)
    return app


def test_check_passes_when_every_file_is_there_and_creates_nothing(tmp_path, pem):
    path = _serving_config(tmp_path, pem)
    result = CliRunner().invoke(_cli(), ["forecaster", "serve", "--config", str(path), "--check"])
    assert result.exit_code == 0, result.output
    assert f"{path}: valid (1 workload(s): m-small)" in result.output
    assert not (tmp_path / "state").exists()  # the registry's directory is checked, not made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["svc.yaml", "token"]  # no temp file left


def test_check_lists_every_missing_file_by_field(tmp_path, pem):
    (tmp_path / "a-file").write_text("x")
    path = _serving_config(
        tmp_path, pem,
        history={"source": "trace", "trace": {"path": str(tmp_path / "gone.csv")}},
        registry_dir=str(tmp_path / "a-file" / "models"),
        auth={"bearer_token_file": str(tmp_path / "no-token")},
        tls={"cert_file": str(tmp_path / "no.crt"), "key_file": str(pem / "tls.key"),
             "client_ca_file": str(tmp_path), "grpc_client_ca_file": str(tmp_path / "no-ca.crt")},
    )
    runner = CliRunner()
    for args in (["--check"], []):  # `serve` itself stops on the same list, before starting anything
        result = runner.invoke(_cli(), ["forecaster", "serve", "--config", str(path), *args])
        assert result.exit_code == 2, result.output
        assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
        lines = result.output.strip().splitlines()
        assert lines[0] == f"{path}: cannot serve (6 problem(s))"
        assert lines[1:] == [
            f"  history.trace.path: {tmp_path / 'gone.csv'} does not exist",
            f"  registry_dir: {tmp_path / 'a-file' / 'models'} cannot be created: "
            f"{tmp_path / 'a-file'} is not a directory",
            f"  auth.bearer_token_file: {tmp_path / 'no-token'} does not exist",
            f"  tls.cert_file: {tmp_path / 'no.crt'} does not exist",
            f"  tls.client_ca_file: {tmp_path} is a directory, not a file",
            f"  tls.grpc_client_ca_file: {tmp_path / 'no-ca.crt'} does not exist",
        ]


def test_check_reads_the_tls_files_and_the_token(tmp_path, pem):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    empty_token = tmp_path / "empty-token"
    empty_token.write_text("\n")
    path = _serving_config(
        tmp_path, pem, auth={"bearer_token_file": str(empty_token)},
        tls={"cert_file": str(pem / "tls.crt"), "key_file": str(pem / "other.key"), "client_ca_file": str(junk)},
    )
    result = CliRunner().invoke(_cli(), ["forecaster", "serve", "--config", str(path), "--check"])
    assert result.exit_code == 2, result.output
    assert f"  auth.bearer_token_file: {empty_token} is empty" in result.output
    assert (f"  tls.key_file: {pem / 'other.key'} does not match the certificate in tls.cert_file "
            f"({pem / 'tls.crt'})") in result.output
    assert f"  tls.client_ca_file: {junk} holds no PEM certificate" in result.output
    path = _serving_config(tmp_path, pem, tls={"cert_file": str(junk), "key_file": str(pem / "tls.key")})
    result = CliRunner().invoke(_cli(), ["forecaster", "serve", "--config", str(path), "--check"])
    assert result.exit_code == 2
    assert f"  tls.cert_file: {junk} holds no PEM certificate (-----BEGIN CERTIFICATE-----)" in result.output
    # An encrypted key: OpenSSL would prompt for its password on the terminal, and wait there.
    path = _serving_config(tmp_path, pem,
                           tls={"cert_file": str(pem / "tls.crt"), "key_file": str(pem / "encrypted.key")})
    result = CliRunner().invoke(_cli(), ["forecaster", "serve", "--config", str(path), "--check"])
    assert result.exit_code == 2
    assert (f"  tls.key_file: {pem / 'encrypted.key'} is encrypted and the service has no password for it"
            in result.output)


def test_check_finds_an_unwritable_registry(tmp_path):
    """The writability check creates and removes a file, so it sees what serving will see: a
    directory without the write bit, or (as root, whom permission bits do not stop) /proc, where no
    file can be created by anyone."""
    import os

    from forecaster.service.preflight import check_serving

    if os.geteuid() == 0:
        if not Path("/proc/self").is_dir():
            pytest.skip("root writes through permission bits, and there is no /proc")
        problems = check_serving(parse_config(_with(tmp_path, "registry_dir", "/proc/prescaler-models")))
        assert [str(p) for p in problems] == [
            "registry_dir: /proc/prescaler-models cannot be created: /proc is not writable "
            "(No such file or directory)"]
        return
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        problems = check_serving(parse_config(_with(tmp_path, "registry_dir", str(locked))))
        assert [str(p) for p in problems] == [f"registry_dir: {locked} is not writable (Permission denied)"]
    finally:
        locked.chmod(0o700)


def test_check_serving_returns_problems_naming_fields(tmp_path):
    from forecaster.service.preflight import check_serving

    (tmp_path / "models").write_text("a file where the registry should be")
    config = parse_config(_with(tmp_path, "registry_dir", str(tmp_path / "models")))
    assert [(p.field, p.message) for p in check_serving(config)] == [
        ("registry_dir", f"{tmp_path / 'models'} is not a directory"),
    ]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert check_serving(parse_config(config_dict(fresh))) == []  # fresh/models can be created
