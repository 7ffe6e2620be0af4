"""The forecaster service's configuration: a YAML file read into pydantic models.

Every field is validated here, so a bad config fails at start-up with the file, the field path and
what is wrong (`workloads.0.capacity.max_replicas: 2 must be >= min_replicas (3)`), never later
inside a request handler.

The workloads come from the `workloads:` list, or, with `discovery.enabled`, from the
PredictiveAutoscalers in the cluster (prescaler.discovery), each entry of `workloads:` then being an
override of the discovered workload of its name (forecaster.service.workloads merges them). So an
entry is a `WorkloadOverride`, every field optional but checked as `WorkloadSettings` checks it; without
discovery every entry must also be a complete `WorkloadSettings`, and is refused at load otherwise.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from forecaster.contract import DEFAULT_QUANTILES, SIGNALS, Signal, quantile_key
from forecaster.contract.capacity import Combine
from forecaster.contract.durations import format_go, parse_timedelta
from forecaster.errors import ForecasterError
from forecaster.prometheus.config import PrometheusConfig
from forecaster.series import bin_seconds


class ConfigError(ForecasterError, ValueError):
    """The service config is unreadable or invalid. The message names the file and each bad field."""


# --- what the models can serve -------------------------------------------------------------------
# A horizon, its steps and the quantiles size the arrays each refresh computes and each answer
# carries. Unbounded, `max_horizon: 10000d` left the service computing a first forecast it never
# finished (1.6 GB and growing) and `forecast --horizon 1000d` wrote 33 MB. The same limits bind the
# config (here), `prescaler forecast --horizon` (forecaster.cli) and, through max_horizon and the
# served quantiles, every HTTP request (forecaster.service.app refuses a horizon past max_horizon).
#
# 14 days: the default history window. The seasonal models repeat the days and weeks they saw, so a
# horizon past the history is the same weeks again, not a forecast; the controller asks for lead
# time + interval (minutes), dashboards for a day or a week.
MAX_HORIZON = timedelta(days=14)
# 14 days at 5-minute bins (10-minute bins, the default, reach the horizon limit first). The cost is
# per step: the baselines' calibration keeps one in-sample error array per lead, so memory grows as
# steps x history bins. Peak memory of one last_value predict over 14 days of history, measured at
# 4032 steps: 0.24 GB at 5-minute bins (the interpreter's 0.15 included), 1.2 GB at 1-minute bins;
# 20160 steps (14 days at 1-minute bins, accepted before this limit) took 3.2 GB and 11 s.
MAX_HORIZON_STEPS = 4032
# A 5 % grid (0.05 .. 0.95, 19 quantiles) and one more: each quantile is a column of every point and
# of every lead's calibration, and no scaling rule reads more than a few.
MAX_QUANTILES = 20


def format_span(seconds: float) -> str:
    """'14d', '2d19h12m', '90s': whole days first, then Go's form of the rest."""
    days, rest = divmod(seconds, 86400)
    if days < 1 or rest != int(rest):
        return format_go(seconds)
    return f"{int(days)}d" + (format_go(rest) if rest else "")


def check_horizon_length(seconds: float, *, field: str) -> None:
    """ValueError naming `field` and the limit when a horizon is longer than MAX_HORIZON."""
    if seconds > MAX_HORIZON.total_seconds():
        limit = format_span(MAX_HORIZON.total_seconds())
        raise ValueError(f"{field} {format_span(seconds)} is over the limit of {limit} (the models repeat "
                         "the history they saw; a longer horizon is no forecast)")


def check_horizon(seconds: float, bin_seconds: int, *, field: str) -> int:
    """The number of `bin_seconds` steps covering a horizon of `seconds`; ValueError naming `field`
    and the limit when the horizon or its steps are past what the models serve."""
    check_horizon_length(seconds, field=field)
    steps = max(1, math.ceil(seconds / bin_seconds))
    if steps > MAX_HORIZON_STEPS:
        raise ValueError(
            f"{field} {format_span(seconds)} at bin {format_span(bin_seconds)} is {steps} steps, over the limit "
            f"of {MAX_HORIZON_STEPS} steps ({format_span(MAX_HORIZON_STEPS * bin_seconds)} at this bin); "
            f"shorten {field} or use a coarser bin"
        )
    return steps


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


# --- field checks shared by the complete models and their overrides ------------------------------
# One function per rule, attached to both WorkloadSettings and WorkloadOverride through Annotated
# types, so an override is refused for exactly what would make the complete workload invalid.


def _refuse_old_spelling(data: object) -> object:
    # One spelling across the project (the CRD's targetUtilization): say so, not "extra input".
    if isinstance(data, dict) and "target_utilisation" in data:
        raise ValueError(
            f"target_utilisation ({data['target_utilisation']!r}) is spelt target_utilization; rename the key"
        )
    return data


def _positive_rates(value: dict[Signal, float]) -> dict[Signal, float]:
    if not value:
        raise ValueError("per_replica needs at least one signal")
    bad = {k: v for k, v in value.items() if not v > 0}
    if bad:
        raise ValueError(f"per_replica rates must be > 0, got {bad}")
    return value


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(f"{value!r} must be a DNS-1123 label (lower case, digits, '-', <= 63)")
    return value


def _model_name(value: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise ValueError(f"model_name {value!r} must be a valid Kubernetes label value")
    return value


def _labels(value: dict[str, str]) -> dict[str, str]:
    for key, val in value.items():
        if not _LABEL_KEY.match(key):
            raise ValueError(f"label key {key!r} is not a valid Kubernetes label key")
        if len(val) > 63 or not _LABEL_VALUE.match(val):
            raise ValueError(f"label {key}={val!r}: value is not a valid Kubernetes label value")
        if key in ("workload", "model_name", "namespace"):
            raise ValueError(f"label {key!r} is set by the service; do not configure it")
    return value


def _some_signal(value: dict[Signal, SignalSettings]) -> dict[Signal, SignalSettings]:
    if not value:
        raise ValueError(f"signals needs at least one of {', '.join(SIGNALS)}")
    return value


def _quantile(value: float) -> float:
    quantile_key(value)
    return value


def _quantiles(value: list[float]) -> list[float]:
    for q in value:
        quantile_key(q)
    count = len({round(q, 6) for q in value})  # as served_quantiles counts them
    if count > MAX_QUANTILES:
        raise ValueError(f"quantiles lists {count} quantiles, over the limit of {MAX_QUANTILES}")
    return value


def _horizon(value: timedelta) -> timedelta:
    # The steps limit needs the bin: WorkloadSettings checks it with the other cross-field rules.
    check_horizon_length(value.total_seconds(), field="max_horizon")
    return value


def _model(value: str) -> str:
    from forecaster.estimators import ESTIMATORS

    if value != "auto" and value not in ESTIMATORS:
        raise ValueError(f"model {value!r} is neither 'auto' nor one of {', '.join(ESTIMATORS)}")
    return value


def _candidates(value: list[str]) -> list[str]:
    from forecaster.estimators import available

    try:
        return available(value)
    except KeyError as error:  # pydantic reports only ValueError/AssertionError as field errors
        raise ValueError(error.args[0]) from None


def _bin(value: timedelta) -> timedelta:
    bin_seconds(value)  # raises naming the supported bins
    return value


PerReplica = Annotated[dict[Signal, float], AfterValidator(_positive_rates)]
Utilization = Annotated[float, Field(gt=0.0, le=1.0)]
MinReplicas = Annotated[int, Field(ge=0)]
MaxReplicas = Annotated[int, Field(ge=1)]
DnsLabel = Annotated[str, AfterValidator(_dns_label)]
ModelName = Annotated[str, AfterValidator(_model_name)]
Labels = Annotated[dict[str, str], AfterValidator(_labels)]
Signals = Annotated[dict[Signal, SignalSettings], AfterValidator(_some_signal)]
Quantile = Annotated[float, AfterValidator(_quantile)]
Quantiles = Annotated[list[float], AfterValidator(_quantiles)]
Model = Annotated[str, AfterValidator(_model)]
Candidates = Annotated[list[str], AfterValidator(_candidates)]
Bin = Annotated[Duration, AfterValidator(_bin)]
Horizon = Annotated[Duration, AfterValidator(_horizon)]


class CapacitySettings(_Strict):
    """The capacity model, the controller's (forecaster.contract.capacity, configs/capacity.md):
    replicas = ceil(max over signals of rate / per_replica / target_utilization), or the sum with
    `combine: Sum`, within [min_replicas, max_replicas]."""

    per_replica: PerReplica = Field(description="sustainable rate per replica, per second")
    target_utilization: Utilization = 0.8
    combine: Combine = Field(
        default="Max", description="how the signals' loads combine: Max (rates measured together, at the SLO, "
        "with the workload's mix) or Sum (each rate measured alone); see configs/capacity.md",
    )
    min_replicas: MinReplicas = 1
    max_replicas: MaxReplicas = 10

    @model_validator(mode="before")
    @classmethod
    def _old_spelling(cls, data: object) -> object:
        return _refuse_old_spelling(data)

    @model_validator(mode="after")
    def _bounds(self) -> "CapacitySettings":
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})"
            )
        return self


class WorkloadSettings(_Strict):
    name: DnsLabel
    model_name: ModelName = Field(description="vLLM's model_name label of this workload")
    namespace: DnsLabel | None = Field(default=None, description="only answer external metrics here")
    labels: Labels = Field(default_factory=dict, description="extra labels for labelSelector")
    signals: Signals
    model: Model = Field(default="auto", description="'auto' (select by backtest) or an estimator name")
    candidates: Candidates = Field(
        default_factory=lambda: ["seasonal_naive_daily", "seasonal_naive_weekly", "holt_winters", "gbm"],
        description="models 'auto' chooses among (baselines are always included)",
    )
    quantile: Quantile = 0.9
    quantiles: Quantiles = Field(default_factory=lambda: list(DEFAULT_QUANTILES))
    bin: Bin = timedelta(minutes=10)
    lead_time: Duration = timedelta(minutes=5)
    interval: Duration = timedelta(minutes=1)
    retrain_interval: Duration = timedelta(hours=6)
    max_horizon: Horizon = timedelta(hours=24)
    backtest_window: Duration = timedelta(days=2)
    capacity: CapacitySettings

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
        check_horizon(self.max_horizon.total_seconds(), self.bin_seconds, field="max_horizon")
        served = self.served_quantiles
        if len(served) > MAX_QUANTILES:
            raise ValueError(
                f"quantiles ({len(served) - 1}) and quantile {self.quantile} make {len(served)} served "
                f"quantiles, over the limit of {MAX_QUANTILES}"
            )
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


class CapacityOverride(_Strict):
    """CapacitySettings with every field optional: the fields given replace the discovered ones."""

    per_replica: PerReplica | None = None
    target_utilization: Utilization | None = None
    combine: Combine | None = None
    min_replicas: MinReplicas | None = None
    max_replicas: MaxReplicas | None = None

    @model_validator(mode="before")
    @classmethod
    def _old_spelling(cls, data: object) -> object:
        return _refuse_old_spelling(data)


class WorkloadOverride(_Strict):
    """An entry of `workloads:`: WorkloadSettings with every field but `name` optional.

    Without discovery it must be complete (ServiceConfig checks it); with discovery, the fields it
    sets win over those of the PredictiveAutoscaler that names the same workload, field by field
    (mappings such as `capacity`, `signals` and `labels` key by key; see `merged`). An entry that
    no PredictiveAutoscaler names is served on its own when complete.
    """

    name: DnsLabel
    model_name: ModelName | None = None
    namespace: DnsLabel | None = None
    labels: Labels | None = None
    signals: Signals | None = None
    model: Model | None = None
    candidates: Candidates | None = None
    quantile: Quantile | None = None
    quantiles: Quantiles | None = None
    bin: Bin | None = None
    lead_time: Duration | None = None
    interval: Duration | None = None
    retrain_interval: Duration | None = None
    max_horizon: Horizon | None = None
    backtest_window: Duration | None = None
    capacity: CapacityOverride | None = None

    def fields(self) -> dict[str, Any]:
        """The fields this entry sets (an explicit null counts as not set: nothing to override with)."""
        return self.model_dump(exclude_none=True)

    def merged(self, base: dict[str, Any] | None = None) -> dict[str, Any]:
        """`base` (WorkloadSettings fields) with this entry's fields over it: mappings merge key by
        key, everything else is replaced."""
        return deep_merge(base or {}, self.fields())

    def settings(self, base: dict[str, Any] | None = None) -> WorkloadSettings:
        """The complete workload (ValidationError when `base` and this entry leave it incomplete)."""
        return WorkloadSettings.model_validate(self.merged(base))


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """A new dict: `over`'s keys win; where both hold a mapping, the mappings are merged the same way."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


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
    grpc_client_ca_file: Path | None = Field(
        default=None,
        description="the KEDA scaler's port only: require client certificates signed by this CA (KEDA "
                    "authenticates with a client certificate, never a token); default: client_ca_file",
    )

    @property
    def grpc_client_ca(self) -> Path | None:
        """The CA the gRPC port verifies clients with (None: it verifies none)."""
        return self.grpc_client_ca_file or self.client_ca_file


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


class DiscoverySettings(_Strict):
    """Serve the workloads the cluster's PredictiveAutoscalers describe (their `forecast` and
    `capacity` sections), listed again every `resync`; prescaler.discovery reads them."""

    enabled: bool = False
    namespaces: list[DnsLabel] = Field(
        default_factory=list, description="namespaces to read PredictiveAutoscalers from; empty: all",
    )
    resync: Duration = Field(
        default=timedelta(seconds=30),
        description="how often the PredictiveAutoscalers are listed again: an added, changed or deleted "
                    "one is served, updated or dropped by then",
    )
    kubeconfig: Path | None = Field(
        default=None,
        description="kubeconfig file of the API server; omit for the pod's service account in a pod "
                    "(KUBERNETES_SERVICE_HOST set), else ~/.kube/config",
    )
    request_timeout: Duration = Field(default=timedelta(seconds=10), description="each API request's limit")

    @field_validator("namespaces")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        dupes = sorted({n for n in value if value.count(n) > 1})
        if dupes:
            raise ValueError(f"namespaces lists {dupes} more than once")
        return value


class ServiceConfig(_Strict):
    # forecaster.prometheus's own settings model (URL, bearer token or basic auth, TLS, retries).
    prometheus: PrometheusConfig | None = None
    history: HistorySettings = HistorySettings()
    registry_dir: Path = Path("models")
    retention: RetentionSettings = RetentionSettings()
    # Before `workloads`: its validator reads whether discovery is on.
    discovery: DiscoverySettings = DiscoverySettings()
    workloads: list[WorkloadOverride] = Field(
        default_factory=list,
        description="the workloads (complete entries); with discovery, overrides of the discovered ones by name",
    )
    auth: AuthSettings = AuthSettings()
    tls: TLSSettings | None = None
    bind: BindSettings = BindSettings()
    workers: int = Field(default=1, ge=1, le=64, description="training worker processes")

    @field_validator("workloads")
    @classmethod
    def _complete_without_discovery(cls, value: list[WorkloadOverride],
                                    info: ValidationInfo) -> list[WorkloadOverride]:
        discovery = info.data.get("discovery")  # absent when it failed its own validation
        if discovery is not None and not discovery.enabled:
            # Raised as is, the errors keep their paths under `workloads` (workloads.0.capacity...).
            _COMPLETE.validate_python([w.fields() for w in value])
        return value

    @model_validator(mode="after")
    def _cross(self) -> "ServiceConfig":
        if not self.workloads and not self.discovery.enabled:
            raise ValueError("workloads must list at least one workload (or set discovery.enabled)")
        names = [w.name for w in self.workloads]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"workload names must be unique; repeated: {dupes}")
        if self.history.source == "prometheus" and self.prometheus is None:
            raise ValueError("history.source is 'prometheus' but no prometheus section is given")
        return self

    def workload(self, name: str) -> WorkloadSettings:
        """The complete workload `name` of the `workloads:` list (KeyError if it is not there;
        ValidationError if it is an override that needs its PredictiveAutoscaler)."""
        for w in self.workloads:
            if w.name == name:
                return w.settings()
        raise KeyError(name)


_COMPLETE = TypeAdapter(list[WorkloadSettings])


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
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config: {error.strerror}") from error
    try:
        # utf-8-sig: a byte order mark (some Windows editors write one) is not part of the text.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ConfigError(
            f"{path}: not UTF-8 text: byte 0x{raw[error.start]:02x} at offset {error.start} (line {line}) "
            "cannot be decoded; save the config as UTF-8"
        ) from error
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
    if config.discovery.kubeconfig is not None:
        updates["discovery"] = config.discovery.model_copy(update={"kubeconfig": fix(config.discovery.kubeconfig)})
    if config.tls is not None:
        updates["tls"] = config.tls.model_copy(update={
            "cert_file": fix(config.tls.cert_file), "key_file": fix(config.tls.key_file),
            "client_ca_file": fix(config.tls.client_ca_file),
            "grpc_client_ca_file": fix(config.tls.grpc_client_ca_file),
        })
    return config.model_copy(update=updates)
