"""The forecaster service's configuration: a YAML file read into pydantic models.

Every field is validated here, so a bad config fails at start-up with the file, the field path and
what is wrong (`workloads.0.capacity.max_replicas: 2 must be >= min_replicas (3)`), never later
inside a request handler.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from forecaster.contract import DEFAULT_QUANTILES, SIGNALS, Signal, quantile_key
from forecaster.contract.capacity import Combine
from forecaster.contract.durations import parse_timedelta
from forecaster.errors import ForecasterError
from forecaster.prometheus.config import PrometheusConfig
from forecaster.series import SUPPORTED_BIN_SECONDS, bin_seconds


class ConfigError(ForecasterError, ValueError):
    """The service config is unreadable or invalid. The message names the file and each bad field."""


# The CRD's grammar (forecaster.contract.durations), positive: a zero bin or window means nothing.
Duration = Annotated[timedelta, BeforeValidator(parse_timedelta)]

# Kubernetes label values and DNS-1123 labels: workload names appear in metric labels and URLs.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TraceSourceSettings(_Strict):
    """Replay a trace file as if it were live history (demos, tests, air-gapped trials)."""

    path: Path


class HistorySettings(_Strict):
    source: Literal["prometheus", "trace"] = "prometheus"
    window: Duration = Field(default=timedelta(days=14), description="history each retrain reads")
    trace: TraceSourceSettings | None = None

    @model_validator(mode="after")
    def _trace_needs_path(self) -> "HistorySettings":
        if self.source == "trace" and self.trace is None:
            raise ValueError("source 'trace' needs trace.path")
        if self.window < timedelta(days=1):
            raise ValueError(f"window ({self.window}) must be at least 1 day to fit daily seasonality")
        return self


class SignalSettings(_Strict):
    query: str | None = Field(
        default=None,
        description="PromQL of the signal's rate per second over one step ($model_name and $step are "
                    "replaced, see forecaster.prometheus.load_history); default: vLLM's counter",
    )

    @field_validator("query")
    @classmethod
    def _non_empty(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("query must not be empty (omit it to use vLLM's counter)")
        return value


class CapacitySettings(_Strict):
    """The capacity model, the controller's (forecaster.contract.capacity, configs/capacity.md):
    replicas = ceil(max over signals of rate / per_replica / target_utilization), or the sum with
    `combine: Sum`, within [min_replicas, max_replicas]."""

    per_replica: dict[Signal, float] = Field(description="sustainable rate per replica, per second")
    target_utilization: float = Field(default=0.8, gt=0.0, le=1.0)
    combine: Combine = Field(
        default="Max", description="how the signals' loads combine: Max (rates measured together, at the SLO, "
        "with the workload's mix) or Sum (each rate measured alone); see configs/capacity.md",
    )
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=10, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _old_spelling(cls, data: object) -> object:
        # One spelling across the project (the CRD's targetUtilization): say so, not "extra input".
        if isinstance(data, dict) and "target_utilisation" in data:
            raise ValueError(
                f"target_utilisation ({data['target_utilisation']!r}) is spelt target_utilization; rename the key"
            )
        return data

    @field_validator("per_replica")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("per_replica needs at least one signal")
        bad = {k: v for k, v in value.items() if not v > 0}
        if bad:
            raise ValueError(f"per_replica rates must be > 0, got {bad}")
        return value

    @model_validator(mode="after")
    def _bounds(self) -> "CapacitySettings":
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})"
            )
        return self


class WorkloadSettings(_Strict):
    name: str
    model_name: str = Field(description="vLLM's model_name label of this workload")
    namespace: str | None = Field(default=None, description="only answer external metrics here")
    labels: dict[str, str] = Field(default_factory=dict, description="extra labels for labelSelector")
    signals: dict[Signal, SignalSettings]
    model: str = Field(default="auto", description="'auto' (select by backtest) or an estimator name")
    candidates: list[str] = Field(
        default_factory=lambda: ["seasonal_naive_daily", "seasonal_naive_weekly", "holt_winters", "gbm"],
        description="models 'auto' chooses among (baselines are always included)",
    )
    quantile: float = 0.9
    quantiles: list[float] = Field(default_factory=lambda: list(DEFAULT_QUANTILES))
    bin: Duration = timedelta(minutes=10)
    lead_time: Duration = timedelta(minutes=5)
    interval: Duration = timedelta(minutes=1)
    retrain_interval: Duration = timedelta(hours=6)
    max_horizon: Duration = timedelta(hours=24)
    backtest_window: Duration = timedelta(days=2)
    capacity: CapacitySettings

    @field_validator("name", "namespace")
    @classmethod
    def _dns(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 63 or not _DNS_LABEL.match(value)):
            raise ValueError(f"{value!r} must be a DNS-1123 label (lower case, digits, '-', <= 63)")
        return value

    @field_validator("model_name")
    @classmethod
    def _label_value(cls, value: str) -> str:
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            raise ValueError(f"model_name {value!r} must be a valid Kubernetes label value")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, val in value.items():
            if not _LABEL_KEY.match(key):
                raise ValueError(f"label key {key!r} is not a valid Kubernetes label key")
            if len(val) > 63 or not _LABEL_VALUE.match(val):
                raise ValueError(f"label {key}={val!r}: value is not a valid Kubernetes label value")
            if key in ("workload", "model_name", "namespace"):
                raise ValueError(f"label {key!r} is set by the service; do not configure it")
        return value

    @field_validator("signals")
    @classmethod
    def _some_signal(cls, value: dict[str, SignalSettings]) -> dict[str, SignalSettings]:
        if not value:
            raise ValueError(f"signals needs at least one of {', '.join(SIGNALS)}")
        return value

    @field_validator("quantile")
    @classmethod
    def _quantile(cls, value: float) -> float:
        quantile_key(value)
        return value

    @field_validator("quantiles")
    @classmethod
    def _quantiles(cls, value: list[float]) -> list[float]:
        for q in value:
            quantile_key(q)
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        from forecaster.estimators import ESTIMATORS

        if value != "auto" and value not in ESTIMATORS:
            raise ValueError(f"model {value!r} is neither 'auto' nor one of {', '.join(ESTIMATORS)}")
        return value

    @field_validator("candidates")
    @classmethod
    def _candidates(cls, value: list[str]) -> list[str]:
        from forecaster.estimators import available

        try:
            return available(value)
        except KeyError as error:  # pydantic reports only ValueError/AssertionError as field errors
            raise ValueError(error.args[0]) from None

    @field_validator("bin")
    @classmethod
    def _bin(cls, value: timedelta) -> timedelta:
        bin_seconds(value)  # raises naming the supported bins
        return value

    @model_validator(mode="after")
    def _cross(self) -> "WorkloadSettings":
        missing = sorted(set(self.capacity.per_replica) - set(self.signals))
        if missing:
            raise ValueError(
                f"capacity.per_replica names {missing} which are not in signals ({sorted(self.signals)})"
            )
        if self.retrain_interval < self.interval:
            raise ValueError(
                f"retrain_interval ({self.retrain_interval}) must be >= interval ({self.interval})"
            )
        if self.max_horizon < self.lead_time + self.interval:
            raise ValueError(
                f"max_horizon ({self.max_horizon}) must cover lead_time + interval "
                f"({self.lead_time + self.interval})"
            )
        if self.backtest_window < self.bin * 2:
            raise ValueError(f"backtest_window ({self.backtest_window}) must span at least two bins")
        return self

    @property
    def bin_seconds(self) -> int:
        return int(self.bin.total_seconds())

    @property
    def served_quantiles(self) -> tuple[float, ...]:
        """The quantiles the cache computes: the configured ones and the one scaling uses."""
        return tuple(sorted({round(q, 6) for q in [*self.quantiles, self.quantile]}))

    @property
    def horizon_bins(self) -> int:
        return max(1, -(-int(self.max_horizon.total_seconds()) // self.bin_seconds))

    def metric_labels(self) -> dict[str, str]:
        """The labels an external metric item carries and a labelSelector matches."""
        labels = {"workload": self.name, "model_name": self.model_name, **self.labels}
        if self.namespace is not None:
            labels["namespace"] = self.namespace
        return labels


class AuthSettings(_Strict):
    bearer_token_file: Path | None = Field(
        default=None, description="file holding the token clients send as 'Authorization: Bearer'",
    )


class TLSSettings(_Strict):
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = Field(
        default=None,
        description="require client certificates signed by this CA (the API aggregator's front proxy)",
    )


class BindSettings(_Strict):
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    grpc_port: int | None = Field(default=9090, ge=0, le=65535, description="KEDA scaler; null: off")

    @model_validator(mode="after")
    def _distinct(self) -> "BindSettings":
        if self.grpc_port is not None and self.grpc_port == self.port and self.port != 0:
            raise ValueError(f"grpc_port ({self.grpc_port}) must differ from port ({self.port})")
        return self


class RetentionSettings(_Strict):
    """How much the service keeps on disk: it saves a version per accepted retrain (4 a day per signal
    at a 6 h interval) and a decisions line per retrain, so both are bounded."""

    keep_versions: int = Field(
        default=20, ge=1, le=10_000,
        description="registry versions kept per workload and signal; the newest that verifies is never removed",
    )
    decisions_max_lines: int = Field(
        default=10_000, ge=1, description="decisions.jsonl rotates to decisions.jsonl.1 past this many lines",
    )
    decisions_max_bytes: int = Field(
        default=4 * 1024 * 1024, ge=4096, description="... or past this many bytes",
    )


class ServiceConfig(_Strict):
    # forecaster.prometheus's own settings model (URL, bearer token or basic auth, TLS, retries).
    prometheus: PrometheusConfig | None = None
    history: HistorySettings = HistorySettings()
    registry_dir: Path = Path("models")
    retention: RetentionSettings = RetentionSettings()
    workloads: list[WorkloadSettings]
    auth: AuthSettings = AuthSettings()
    tls: TLSSettings | None = None
    bind: BindSettings = BindSettings()
    workers: int = Field(default=1, ge=1, le=64, description="training worker processes")

    @model_validator(mode="after")
    def _cross(self) -> "ServiceConfig":
        if not self.workloads:
            raise ValueError("workloads must list at least one workload")
        names = [w.name for w in self.workloads]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"workload names must be unique; repeated: {dupes}")
        if self.history.source == "prometheus" and self.prometheus is None:
            raise ValueError("history.source is 'prometheus' but no prometheus section is given")
        for w in self.workloads:
            if w.bin_seconds not in SUPPORTED_BIN_SECONDS:  # pragma: no cover - checked per field
                raise ValueError(f"workload {w.name}: bin {w.bin} unsupported")
        return self

    def workload(self, name: str) -> WorkloadSettings:
        for w in self.workloads:
            if w.name == name:
                return w
        raise KeyError(name)


def format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid service config ({error.error_count()} error(s))"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def parse_config(data: object, source: str = "<config>") -> ServiceConfig:
    """Validate an already-parsed mapping; errors name `source` and each field path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return ServiceConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from error


def load_config(path: str | Path) -> ServiceConfig:
    """Read and validate a YAML service config; relative paths in it are relative to the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config: {error.strerror}") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML: {error}") from error
    config = parse_config(data, str(path))
    return _resolve_paths(config, path.parent)


def _resolve_paths(config: ServiceConfig, base: Path) -> ServiceConfig:
    def fix(p: Path | None) -> Path | None:
        if p is None or p.is_absolute():
            return p
        return base / p

    updates: dict[str, object] = {"registry_dir": fix(config.registry_dir)}
    if config.history.trace is not None:
        trace = config.history.trace.model_copy(update={"path": fix(config.history.trace.path)})
        updates["history"] = config.history.model_copy(update={"trace": trace})
    if config.prometheus is not None:
        fixed = {k: fix(getattr(config.prometheus, k)) for k in ("bearer_token_file", "password_file", "ca_bundle")}
        updates["prometheus"] = config.prometheus.model_copy(update=fixed)
    if config.auth.bearer_token_file is not None:
        updates["auth"] = config.auth.model_copy(
            update={"bearer_token_file": fix(config.auth.bearer_token_file)}
        )
    if config.tls is not None:
        updates["tls"] = config.tls.model_copy(update={
            "cert_file": fix(config.tls.cert_file), "key_file": fix(config.tls.key_file),
            "client_ca_file": fix(config.tls.client_ca_file),
        })
    return config.model_copy(update=updates)
