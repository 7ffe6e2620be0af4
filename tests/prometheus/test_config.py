"""Connection settings: cross-field checks, secrets from files and variables, never shown."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from forecaster.prometheus.client import PrometheusClient
from forecaster.prometheus.config import PrometheusConfig

SECRET = "hunter2-very-secret"


@pytest.mark.parametrize(
    "fields, message",
    [
        pytest.param({"url": "prometheus:9090"}, "must be http", id="no-scheme"),
        pytest.param({"url": "ftp://x"}, "must be http", id="wrong-scheme"),
        pytest.param({"url": f"http://u:{SECRET}@p:9090"}, "must not carry credentials", id="creds-in-url"),
        pytest.param({"username": "u"}, "needs password_file or password_env", id="user-without-password"),
        pytest.param({"password_env": "P"}, "needs a username", id="password-without-user"),
        pytest.param({"bearer_token_env": "T", "username": "u", "password_env": "P"}, "not both",
                     id="bearer-and-basic"),
        pytest.param({"bearer_token_env": "T", "bearer_token_file": "/t"}, "one bearer token source",
                     id="two-token-sources"),
        pytest.param({"ca_bundle": "/ca.pem", "verify_tls": False}, r"ca_bundle \(/ca.pem\).*verify_tls",
                     id="ca-without-verify"),
        pytest.param({"backoff_initial_s": 5, "backoff_max_s": 1}, r"backoff_max_s \(1.0\).*\(5.0\)",
                     id="backoff-order"),
        pytest.param({"max_points_per_query": 20_000}, "less than or equal to 11000", id="over-11000"),
        pytest.param({"timeout_s": 0}, "greater than 0", id="timeout"),
        pytest.param({"tls": True}, "Extra inputs", id="unknown-field"),
    ],
)
def test_invalid_config_names_the_problem(fields, message):
    with pytest.raises(ValidationError, match=message) as info:
        PrometheusConfig(**{"url": "http://p:9090", **fields})
    assert SECRET not in str(info.value)


def test_secret_from_file_and_env(tmp_path, monkeypatch):
    token = tmp_path / "token"
    token.write_text(SECRET + "\n")
    assert PrometheusConfig(url="http://p", bearer_token_file=token).resolve_bearer_token() == SECRET
    monkeypatch.setenv("PROM_PASSWORD", SECRET)
    cfg = PrometheusConfig(url="http://p", username="u", password_env="PROM_PASSWORD")
    assert cfg.resolve_password() == SECRET


@pytest.mark.parametrize(
    "fields, message",
    [
        pytest.param({"bearer_token_file": "missing"}, "cannot read the bearer token file", id="missing-file"),
        pytest.param({"bearer_token_env": "PRESCALER_NO_SUCH_VAR"}, "PRESCALER_NO_SUCH_VAR", id="unset-env"),
    ],
)
def test_unreadable_secret_names_its_source(tmp_path, fields, message):
    if "bearer_token_file" in fields:
        fields = {"bearer_token_file": tmp_path / fields["bearer_token_file"]}
    cfg = PrometheusConfig(url="http://p", **fields)
    with pytest.raises(ValueError, match=message):
        cfg.resolve_bearer_token()


def test_empty_secret_file_is_refused(tmp_path):
    (tmp_path / "t").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        PrometheusConfig(url="http://p", bearer_token_file=tmp_path / "t").resolve_bearer_token()


def test_secrets_never_in_repr_dump_or_logs(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("PROM_TOKEN", SECRET)
    direct = PrometheusConfig(url="http://p", username="u", password=SECRET)
    from_env = PrometheusConfig(url="http://p", bearer_token_env="PROM_TOKEN")
    with caplog.at_level(logging.DEBUG):
        client = PrometheusClient(from_env)
        texts = [repr(direct), str(direct), str(direct.model_dump()), direct.model_dump_json(),
                 repr(from_env), repr(client), repr(PrometheusClient(direct))]
    assert all(SECRET not in text for text in texts), texts
    assert SECRET not in caplog.text
    assert "**********" in repr(direct)
