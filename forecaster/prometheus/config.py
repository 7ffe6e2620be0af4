"""Connection settings for a Prometheus server: URL, credentials, TLS, timeout, retries.

Secrets are read from a file or an environment variable when a client is built (so rotating a
mounted Secret takes effect on the next client) and are never stored in a field that repr, logs or
model_dump show: the config holds only *where* the secret is, or a pydantic SecretStr.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

# Prometheus refuses a range query whose result would exceed 11,000 points per series
# (web/api/v1/api.go: "exceeded maximum resolution of 11,000 points per timeseries").
PROMETHEUS_MAX_POINTS = 11_000


class PrometheusConfig(BaseModel):
    """How to reach one Prometheus. At most one of bearer token and basic auth."""

    # hide_input_in_errors: a rejected URL or password must not be echoed into logs by the error.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    url: str = Field(description="base URL, e.g. http://prometheus:9090 (no credentials in it)")
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    bearer_token_env: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    password_env: str | None = None
    ca_bundle: Path | None = Field(None, description="PEM file of CAs to trust for https")
    verify_tls: bool = True
    timeout_s: float = Field(30.0, gt=0, description="socket timeout: connecting, and each read")
    deadline_s: float = Field(
        120.0, gt=0, le=3600,
        description="total time one call may take, retries and a slow body included: a socket timeout "
                    "alone never ends a server that sends one byte a second")
    retries: int = Field(3, ge=0, le=20, description="retries after the first try, for unreachable/5xx")
    backoff_initial_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(10.0, ge=0)
    max_points_per_query: int = Field(PROMETHEUS_MAX_POINTS, ge=2, le=PROMETHEUS_MAX_POINTS)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url {value!r} must be http(s)://host[:port][/path]")
        if parts.username or parts.password:
            # A URL gets logged and shown in errors; credentials in it would leak.
            raise ValueError("url must not carry credentials; use username with password_file or password_env")
        return value.strip().rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> "PrometheusConfig":
        bearer = [n for n in ("bearer_token", "bearer_token_file", "bearer_token_env") if getattr(self, n)]
        password = [n for n in ("password", "password_file", "password_env") if getattr(self, n)]
        if len(bearer) > 1:
            raise ValueError(f"give one bearer token source, not {', '.join(bearer)}")
        if len(password) > 1:
            raise ValueError(f"give one password source, not {', '.join(password)}")
        if bearer and (self.username or password):
            raise ValueError(f"give a bearer token ({bearer[0]}) or basic auth (username), not both")
        if self.username and not password:
            raise ValueError(f"username {self.username!r} needs password_file or password_env")
        if password and not self.username:
            raise ValueError(f"{password[0]} needs a username")
        if self.ca_bundle is not None and not self.verify_tls:
            raise ValueError(f"ca_bundle ({self.ca_bundle}) is set but verify_tls is false; drop one")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"backoff_max_s ({self.backoff_max_s}) must be >= backoff_initial_s ({self.backoff_initial_s})"
            )
        return self

    def resolve_bearer_token(self) -> str | None:
        """The bearer token from its source, or None when none is configured."""
        return _read_secret(self.bearer_token, self.bearer_token_file, self.bearer_token_env, "bearer token")

    def resolve_password(self) -> str | None:
        """The basic-auth password from its source, or None when none is configured."""
        return _read_secret(self.password, self.password_file, self.password_env, "password")

    def tls_verify(self) -> bool | str:
        """The `verify` argument requests takes: a CA bundle path, or the switch."""
        if self.ca_bundle is not None:
            if not self.ca_bundle.is_file():
                raise ValueError(f"ca_bundle {self.ca_bundle} is not a file")
            return str(self.ca_bundle)
        return self.verify_tls


def _read_secret(value: SecretStr | None, path: Path | None, env: str | None, what: str) -> str | None:
    # Error messages name the file or variable, never the value.
    if value is not None:
        secret = value.get_secret_value()
    elif path is not None:
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ValueError(f"cannot read the {what} file {path}: {error.strerror}") from None
        if not secret:
            raise ValueError(f"the {what} file {path} is empty")
    elif env is not None:
        secret = os.environ.get(env, "").strip()
        if not secret:
            raise ValueError(f"environment variable {env} (the {what}) is unset or empty")
    else:
        return None
    return secret
