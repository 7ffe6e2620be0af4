"""The PredictiveAutoscaler spec (`prescaler.dev/v1alpha1`), as pydantic v2 models.

Field names are the CRD's camelCase (aliases) with snake_case Python names; `populate_by_name=True`
accepts both, `extra="forbid"` rejects unknown fields (a typo in a manifest is an error, not a silent
default). `metrics` and `behavior` are exactly the HPA autoscaling/v2 schema (MetricSpec,
HorizontalPodAutoscalerBehavior) with the same validation rules and defaults as
pkg/apis/autoscaling/validation and pkg/apis/autoscaling/v2/defaults.go, so a manifest written for an
HPA can be pasted in.

Units after parsing:
- Kubernetes quantities ("500m", "2", "1Gi", "1e3") are floats (0.5, 2.0, 1073741824.0, 1000.0);
- durations ("5m", "300s", "1h30m", "14d": Go's time.ParseDuration syntax plus d and w, the one
  grammar of forecaster.contract.durations) are float seconds, in fields whose Python name ends in
  `_seconds` (the CRD name has no suffix: `syncPeriod`); `lead_time` is seconds or the string "auto".
In JSON mode (`model_dump(mode="json", by_alias=True)`) both are written back as Kubernetes strings,
so a dump validates again and matches the CRD schema that `model_json_schema(by_alias=True)` emits.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonValue

from forecaster.contract import Signal
from forecaster.contract.durations import DURATION_PATTERN, format_go, parse_seconds

API_GROUP = "prescaler.dev"
API_VERSION = "prescaler.dev/v1alpha1"
KIND = "PredictiveAutoscaler"

# ---------------------------------------------------------------------------------------------------
# Kubernetes quantities
# ---------------------------------------------------------------------------------------------------

# The pattern controller-gen writes for resource.Quantity (k8s.io/apimachinery/pkg/api/resource):
# a signed decimal, then a binary suffix (Ki..Ei), a decimal SI suffix (n u m k M G T P E) or a
# decimal exponent (e3, E-2).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY_RE = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)
_QUANTITY_SUFFIX = {
    None: 1.0, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
    "E": 1e18, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}


def parse_quantity(value: object) -> float:
    """A Kubernetes quantity ("500m", "2", "1.5", "1Gi", "1e3") or a plain number -> float."""
    if isinstance(value, bool):
        raise ValueError(f"expected a Kubernetes quantity such as \"500m\", \"2\" or \"1Gi\", got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        match = _QUANTITY_RE.fullmatch(value)
        if match is None:
            raise ValueError(
                f"{value!r} is not a Kubernetes quantity: expected a number with an optional suffix "
                "(m, k, M, G, Ki, Mi, Gi, ... or an exponent e3), e.g. \"500m\", \"2\", \"1Gi\""
            )
        suffix = match.group("suffix")
        if suffix is not None and suffix[0] in "eE" and suffix not in _QUANTITY_SUFFIX:
            number = float(match.group("number") + suffix)
        else:
            number = float(match.group("number")) * _QUANTITY_SUFFIX[suffix]
    else:
        raise ValueError(
            f"expected a Kubernetes quantity (string or number), got {type(value).__name__} {value!r}"
        )
    if not math.isfinite(number):
        raise ValueError(f"quantity {value!r} is not finite")
    return number


def format_quantity(value: float) -> int | str:
    """A float back to what a manifest holds: an integer when exact, else the shortest decimal string."""
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return repr(value)  # "0.5", "1e-05": both match QUANTITY_PATTERN


Quantity = Annotated[
    float,
    BeforeValidator(parse_quantity),
    PlainSerializer(format_quantity, when_used="json"),
    WithJsonSchema(
        {"anyOf": [{"type": "integer"}, {"type": "string"}], "pattern": QUANTITY_PATTERN,
         "x-kubernetes-int-or-string": True}
    ),
]

# ---------------------------------------------------------------------------------------------------
# Durations: the one grammar of forecaster.contract.durations (Go's time.ParseDuration syntax, as
# Kubernetes users write it, plus d and w), shared with the service config and the CLI.
# ---------------------------------------------------------------------------------------------------


# The CRD caps duration strings at this length, and so does the model (they must agree): the API
# server prices a CEL rule by the longest string it may walk, and an unbounded one is priced at the
# whole request size, past its per-rule budget (the horizon rule reads three durations).
DURATION_MAX_LENGTH = 64


def parse_duration_seconds(value: object) -> float:
    """A duration ("15s", "5m", "1h30m", "14d", "0") or a number of seconds -> float seconds (>= 0)."""
    if isinstance(value, str) and len(value) > DURATION_MAX_LENGTH:
        raise ValueError(f"duration {value[:16]!r}... is {len(value)} characters long, at most "
                         f"{DURATION_MAX_LENGTH} are accepted")
    return parse_seconds(value)


def format_duration_seconds(seconds: float) -> str:
    """Seconds back to the shortest exact Go duration: 300.0 -> "5m", 5400 -> "1h30m", 0.5 -> "500ms"."""
    return format_go(seconds)


Duration = Annotated[
    float,
    BeforeValidator(parse_duration_seconds),
    PlainSerializer(format_duration_seconds, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "maxLength": DURATION_MAX_LENGTH}),
]


def _parse_lead_time(value: object) -> float | str:
    if value == "auto":
        return "auto"
    try:
        return parse_duration_seconds(value)
    except ValueError as err:
        raise ValueError(f"{err}; or \"auto\" to learn it from pod readiness") from None


def _format_lead_time(value: float | str) -> str:
    return value if isinstance(value, str) else format_duration_seconds(value)


LeadTime = Annotated[
    float | Literal["auto"],
    BeforeValidator(_parse_lead_time),
    PlainSerializer(_format_lead_time, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^(auto|" + DURATION_PATTERN[2:-2] + r")$",
                    "maxLength": DURATION_MAX_LENGTH}),
]


class _Model(BaseModel):
    """Base of every spec model: camelCase aliases, both spellings accepted, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


# ---------------------------------------------------------------------------------------------------
# CEL rules: the cross-field checks of the validators below, written into the CRD
# (`x-kubernetes-validations`) so the API server refuses a bad object at `kubectl apply`, not only
# the controller at its next sync. Kubernetes's CEL dialect: `self` is the object the rule sits on,
# `has()` tests a field. Each rule guards every optional field it reads (a rule that reads an
# absent field fails with an evaluation error). The model stays the reference: a rule may check less
# than its validator (the horizon rule, see there), never more. tests/controller/test_crd_cel.py
# has the fake API server evaluate them against the model.
# ---------------------------------------------------------------------------------------------------


def _cel(rule: str, message: str, *, message_expression: str | None = None, field_path: str | None = None,
         reason: str | None = None) -> dict[str, str]:
    """One x-kubernetes-validations entry; messageExpression, when given, says the values (as the
    validators do), and `message` is what the API server shows if that expression fails."""
    out = {"rule": rule, "message": message}
    if message_expression is not None:
        out["messageExpression"] = message_expression
    if field_path is not None:
        out["fieldPath"] = field_path
    if reason is not None:
        out["reason"] = reason
    return out


def _validations(*rules: dict[str, str]) -> ConfigDict:
    """A model_config adding CEL rules to the model's schema (merged with _Model's config)."""
    entries: list[JsonValue] = [dict(r) for r in rules]
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": entries})


# Durations that CEL's duration() and the model read as the same number (see the horizon rule).
_CEL_EXACT_DURATION = "^(0|([0-9]{1,5}[hms]){1,3})$"
MAX_METRICS = 16


# ---------------------------------------------------------------------------------------------------
# scaleTargetRef and label selectors (meta/v1)
# ---------------------------------------------------------------------------------------------------


class CrossVersionObjectReference(_Model):
    """What to scale (autoscaling/v2 CrossVersionObjectReference): usually apps/v1 Deployment."""

    api_version: str | None = Field(None, description="e.g. apps/v1")
    kind: str = Field(min_length=1, description="e.g. Deployment")
    name: str = Field(min_length=1)


class LabelSelectorRequirement(_Model):
    key: str = Field(min_length=1)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = None

    @model_validator(mode="after")
    def _values_match_operator(self) -> "LabelSelectorRequirement":
        # meta/v1 validation: In/NotIn need values, Exists/DoesNotExist must have none.
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs a non-empty values list (key {self.key!r})")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values (key {self.key!r}, got {self.values})")
        return self


class LabelSelector(_Model):
    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


# ---------------------------------------------------------------------------------------------------
# metrics: autoscaling/v2 MetricSpec, exactly
# ---------------------------------------------------------------------------------------------------


class MetricIdentifier(_Model):
    name: str = Field(min_length=1, description="e.g. vllm:num_requests_running")
    selector: LabelSelector | None = None


class MetricTarget(_Model):
    """autoscaling/v2 MetricTarget. The field that `type` names must be set (validation.go)."""

    model_config = _validations(_cel(
        "self.type == 'Utilization' ? has(self.averageUtilization) : "
        "self.type == 'Value' ? has(self.value) : has(self.averageValue)",
        "a target needs the field its type names (Utilization: averageUtilization, Value: value, "
        "AverageValue: averageValue)",
        message_expression="'target type ' + self.type + ' needs target.' + {'Utilization': "
                           "'averageUtilization', 'Value': 'value', 'AverageValue': 'averageValue'}[self.type]",
        reason="FieldValueRequired",
    ))

    type: Literal["Utilization", "Value", "AverageValue"]
    value: Quantity | None = None
    average_value: Quantity | None = None
    average_utilization: int | None = Field(None, ge=1, le=2**31 - 1, description="percent of request")

    @model_validator(mode="after")
    def _target_set(self) -> "MetricTarget":
        # pkg/apis/autoscaling/validation validateMetricTarget: the named field is required and positive.
        needed = {"Utilization": "averageUtilization", "Value": "value", "AverageValue": "averageValue"}[self.type]
        current = {"averageUtilization": self.average_utilization, "value": self.value,
                   "averageValue": self.average_value}
        if current[needed] is None:
            raise ValueError(f"target type {self.type} needs target.{needed}")
        for name in ("value", "averageValue"):
            value = current[name]
            if value is not None and value <= 0:
                raise ValueError(f"target.{name} must be positive, got {value}")
        return self


class ResourceMetricSource(_Model):
    name: str = Field(min_length=1, description="resource name, e.g. cpu, memory")
    target: MetricTarget


class ContainerResourceMetricSource(_Model):
    name: str = Field(min_length=1)
    container: str = Field(min_length=1)
    target: MetricTarget


class PodsMetricSource(_Model):
    metric: MetricIdentifier
    target: MetricTarget


class ObjectMetricSource(_Model):
    described_object: CrossVersionObjectReference
    metric: MetricIdentifier
    target: MetricTarget


class ExternalMetricSource(_Model):
    metric: MetricIdentifier
    target: MetricTarget


MetricSourceType = Literal["Resource", "Pods", "Object", "External", "ContainerResource"]
_SOURCE_FIELD = {"Resource": "resource", "Pods": "pods", "Object": "object", "External": "external",
                 "ContainerResource": "container_resource"}
_SOURCE_ALIAS = {"resource": "resource", "pods": "pods", "object": "object", "external": "external",
                 "container_resource": "containerResource"}
# Target types each source accepts (validation.go validateResourceSource / validatePodsSource / ...).
_ALLOWED_TARGETS = {
    "Resource": ("Utilization", "AverageValue"),
    "ContainerResource": ("Utilization", "AverageValue"),
    "Pods": ("AverageValue",),
    "Object": ("Value", "AverageValue"),
    "External": ("Value", "AverageValue"),
}
# The same tables as CEL literals, for MetricSpec's rules.
_CEL_SOURCE_FIELD = "{" + ", ".join(f"'{t}': '{_SOURCE_ALIAS[f]}'" for t, f in _SOURCE_FIELD.items()) + "}"
_CEL_HAS_SOURCE = {t: f"has(self.{_SOURCE_ALIAS[f]})" for t, f in _SOURCE_FIELD.items()}


def _cel_target_type(kind: str) -> dict[str, str]:
    source, allowed = _SOURCE_ALIAS[_SOURCE_FIELD[kind]], _ALLOWED_TARGETS[kind]
    listed = ", ".join(f"'{a}'" for a in allowed)
    return _cel(f"!has(self.{source}) || self.{source}.target.type in [{listed}]",
                f"a {kind} metric takes target type {' or '.join(allowed)}",
                message_expression=f"'a {kind} metric takes target type {' or '.join(allowed)}, not ' + "
                                   f"self.{source}.target.type",
                field_path=f".{source}.target.type")


class MetricSpec(_Model):
    """One reactive target, autoscaling/v2 MetricSpec: `type` and the one matching source."""

    model_config = _validations(
        _cel(" : ".join(f"self.type == '{t}' ? {has}" for t, has in list(_CEL_HAS_SOURCE.items())[:-1])
             + " : " + list(_CEL_HAS_SOURCE.values())[-1],
             "a metric needs the source field its type names (Pods: pods, External: external, ...)",
             message_expression=f"'metric type ' + self.type + ' needs the field ' + {_CEL_SOURCE_FIELD}[self.type]",
             reason="FieldValueRequired"),
        _cel(" + ".join(f"({has} ? 1 : 0)" for has in _CEL_HAS_SOURCE.values()) + " <= 1",
             "a metric sets only the source field its type names",
             message_expression=f"'metric type ' + self.type + ' must set only ' + {_CEL_SOURCE_FIELD}[self.type]",
             reason="FieldValueForbidden"),
        *(_cel_target_type(kind) for kind in _ALLOWED_TARGETS),
    )

    type: MetricSourceType
    resource: ResourceMetricSource | None = None
    pods: PodsMetricSource | None = None
    object: ObjectMetricSource | None = None
    external: ExternalMetricSource | None = None
    container_resource: ContainerResourceMetricSource | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "MetricSpec":
        wanted = _SOURCE_FIELD[self.type]
        if getattr(self, wanted) is None:
            raise ValueError(f"metric type {self.type} needs the field {_SOURCE_ALIAS[wanted]}")
        extra = [_SOURCE_ALIAS[f] for f in _SOURCE_ALIAS if f != wanted and getattr(self, f) is not None]
        if extra:
            raise ValueError(f"metric type {self.type} must not set {', '.join(extra)}")
        target_type = getattr(self, wanted).target.type
        if target_type not in _ALLOWED_TARGETS[self.type]:
            allowed = " or ".join(_ALLOWED_TARGETS[self.type])
            raise ValueError(f"a {self.type} metric takes target type {allowed}, not {target_type}")
        return self

    # Plain properties over the fields: pydantic's private attributes are read through a slow
    # __getattr__ fallback, which cost a fifth of a decide() call when these were cached there.
    @property
    def source(self) -> Any:
        """The source object `type` names (resource, pods, object, external or containerResource)."""
        return getattr(self, _SOURCE_FIELD[self.type])

    @property
    def target(self) -> MetricTarget:
        return getattr(self, _SOURCE_FIELD[self.type]).target

    @property
    def display_name(self) -> str:
        """How the HPA names the metric in its messages: `pods metric vllm:num_requests_running`."""
        src = self.source
        if self.type == "Resource":
            return f"resource {src.name}"
        if self.type == "ContainerResource":
            return f"containerresource {src.name} of container {src.container}"
        return f"{self.type.lower()} metric {src.metric.name}"


# ---------------------------------------------------------------------------------------------------
# behavior: autoscaling/v2 HorizontalPodAutoscalerBehavior, exactly, with Kubernetes's defaults
# ---------------------------------------------------------------------------------------------------


class HPAScalingPolicy(_Model):
    type: Literal["Pods", "Percent"]
    value: int = Field(gt=0, le=2**31 - 1, description="pods, or percent of the replicas at the period start")
    period_seconds: int = Field(gt=0, le=1800, description="the window the change is counted over")


class HPAScalingRules(_Model):
    """One direction's rules. Absent fields take Kubernetes's defaults for that direction."""

    model_config = _validations(_cel(
        "!has(self.policies) || size(self.policies) > 0",
        "policies must list at least one policy (omit the field for the defaults)",
        field_path=".policies", reason="FieldValueRequired"))

    stabilization_window_seconds: int | None = Field(None, ge=0, le=3600)
    select_policy: Literal["Max", "Min", "Disabled"] | None = None
    policies: list[HPAScalingPolicy] | None = None
    tolerance: Quantity | None = Field(
        None, description="per-direction tolerance (Kubernetes 1.33); the global 0.1 when absent"
    )

    @model_validator(mode="after")
    def _checks(self) -> "HPAScalingRules":
        # defaults.go fills policies only when the field is absent (nil); an explicit empty list
        # then fails validation.go's "must specify at least one Policy".
        if self.policies is not None and len(self.policies) == 0:
            raise ValueError("policies must list at least one policy (omit the field for the defaults)")
        if self.tolerance is not None and self.tolerance < 0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance}")
        return self

    @property
    def window_seconds(self) -> int:
        """The stabilization window; 0 when absent (a defaulted rule always has one)."""
        return self.stabilization_window_seconds or 0


# pkg/apis/autoscaling/v2/defaults.go: scale up 0 s window, max of (4 pods, 100 %) per 15 s; scale down
# 100 % per 15 s with the controller's --horizontal-pod-autoscaler-downscale-stabilization (5 min).
DEFAULT_SCALE_UP = HPAScalingRules(
    stabilization_window_seconds=0,
    select_policy="Max",
    policies=[HPAScalingPolicy(type="Pods", value=4, period_seconds=15),
              HPAScalingPolicy(type="Percent", value=100, period_seconds=15)],
)
DEFAULT_SCALE_DOWN = HPAScalingRules(
    stabilization_window_seconds=300,
    select_policy="Max",
    policies=[HPAScalingPolicy(type="Percent", value=100, period_seconds=15)],
)
DEFAULT_TOLERANCE = 0.1  # kube-controller-manager --horizontal-pod-autoscaler-tolerance
DEFAULT_DOWNSCALE_STABILIZATION_SECONDS = 300


def _with_defaults(rules: HPAScalingRules | None, defaults: HPAScalingRules) -> HPAScalingRules:
    """GenerateHPAScaleUpRules / GenerateHPAScaleDownRules: fill each absent field from the default."""
    if rules is None:
        return defaults
    return HPAScalingRules(
        stabilization_window_seconds=(defaults.stabilization_window_seconds
                                      if rules.stabilization_window_seconds is None
                                      else rules.stabilization_window_seconds),
        select_policy=rules.select_policy or defaults.select_policy,
        policies=defaults.policies if rules.policies is None else rules.policies,
        tolerance=rules.tolerance,
    )


class HorizontalPodAutoscalerBehavior(_Model):
    """When given (even empty), every absent field is filled with Kubernetes's default after validation.

    When the whole `behavior` is absent the HPA takes a different, older path (a 5-minute scale-down
    stabilization and a scale-up cap of max(2 x current, 4), no rate-limit policies); the policy keeps
    that distinction (see controller/policy/behavior.py).
    """

    scale_up: HPAScalingRules | None = None
    scale_down: HPAScalingRules | None = None

    def model_post_init(self, __context: Any) -> None:
        object.__setattr__(self, "scale_up", _with_defaults(self.scale_up, DEFAULT_SCALE_UP))
        object.__setattr__(self, "scale_down", _with_defaults(self.scale_down, DEFAULT_SCALE_DOWN))

    # The defaulted rules, typed as present (model_post_init fills both).
    @property
    def up(self) -> HPAScalingRules:
        return self.scale_up if self.scale_up is not None else DEFAULT_SCALE_UP

    @property
    def down(self) -> HPAScalingRules:
        return self.scale_down if self.scale_down is not None else DEFAULT_SCALE_DOWN


# ---------------------------------------------------------------------------------------------------
# forecast, capacity
# ---------------------------------------------------------------------------------------------------


class ForecastSignal(_Model):
    name: Signal = Field(description="requests | prompt_tokens | output_tokens (per second)")
    query: str | None = Field(
        None, min_length=1, description="PromQL for the rate; absent: the forecaster builds the vLLM query"
    )


class ForecastSpec(_Model):
    signals: list[ForecastSignal] = Field(min_length=1)
    model: str = Field("auto", min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$",
                       description='"auto" (the backtest selects) or an estimator name')
    quantile: float = Field(0.9, gt=0, lt=1, description="the quantile the predictive stage provisions for")
    horizon_seconds: Duration = Field("30m", alias="horizon", gt=0, validate_default=True,
                                      description="how far ahead to forecast")
    retrain_interval_seconds: Duration = Field("24h", alias="retrainInterval", gt=0, validate_default=True)
    max_age_seconds: Duration = Field("10m", alias="maxAge", gt=0, validate_default=True,
                                      description="a forecast generated longer ago is stale")
    max_live_error: float = Field(0.5, gt=0, description="median relative error that makes the forecast unhealthy")
    live_error_samples: int = Field(12, ge=1, le=256, description="matured forecasts the median is over")
    live_error_min_samples: int = Field(4, ge=1, le=256, description="matured forecasts needed to judge")
    interval_seconds: Duration = Field("1m", alias="interval", ge=0, validate_default=True,
                                       description="the window after the lead time the maximum is taken over")
    # The forecaster's history queries select vLLM's `model_name` label (its --served-model-name),
    # which need not be the workload's name. A label value, as the forecaster's external metrics
    # carry it as one.
    model_name: str | None = Field(
        None, min_length=1, max_length=63, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
        description="vLLM's model_name label of the served model; absent: the workload name",
    )

    @model_validator(mode="after")
    def _checks(self) -> "ForecastSpec":
        names = [s.name for s in self.signals]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"forecast.signals lists {', '.join(dupes)} more than once")
        if self.live_error_min_samples > self.live_error_samples:
            raise ValueError(
                f"liveErrorMinSamples ({self.live_error_min_samples}) must be <= liveErrorSamples "
                f"({self.live_error_samples})"
            )
        return self


_RATE_FIELD = {"requests": "requests_per_second", "prompt_tokens": "prompt_tokens_per_second",
               "output_tokens": "output_tokens_per_second"}


class PerReplicaCapacity(_Model):
    """What one replica sustains within the SLO, per signal (see configs/capacity.md)."""

    model_config = _validations(_cel(
        "has(self.requestsPerSecond) || has(self.promptTokensPerSecond) || has(self.outputTokensPerSecond)",
        "perReplica needs at least one of requestsPerSecond, promptTokensPerSecond, outputTokensPerSecond",
        reason="FieldValueRequired"))

    requests_per_second: float | None = Field(None, gt=0)
    prompt_tokens_per_second: float | None = Field(None, gt=0)
    output_tokens_per_second: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _at_least_one(self) -> "PerReplicaCapacity":
        if self.requests_per_second is None and self.prompt_tokens_per_second is None \
                and self.output_tokens_per_second is None:
            raise ValueError(
                "perReplica needs at least one of requestsPerSecond, promptTokensPerSecond, outputTokensPerSecond"
            )
        return self

    def rate(self, signal: str) -> float | None:
        """The per-replica rate for a signal name (requests, prompt_tokens, output_tokens), or None."""
        field = _RATE_FIELD.get(signal)
        return getattr(self, field) if field is not None else None


SIGNAL_CAPACITY_FIELD = {"requests": "requestsPerSecond", "prompt_tokens": "promptTokensPerSecond",
                         "output_tokens": "outputTokensPerSecond"}


class CapacitySpec(_Model):
    per_replica: PerReplicaCapacity
    target_utilization: float = Field(0.8, gt=0, le=1, description="share of per-replica capacity to plan for")
    combine: Literal["Max", "Sum"] = Field(
        "Max", description="how the signals' loads combine: Max (rates measured together, at the SLO, "
        "with the workload's mix) or Sum (each rate measured alone); see configs/capacity.md"
    )


# ---------------------------------------------------------------------------------------------------
# the spec
# ---------------------------------------------------------------------------------------------------

Mode = Literal["Auto", "Advisory", "Off"]


class PredictiveAutoscalerSpec(_Model):
    """spec of a PredictiveAutoscaler. Cross-field checks name the values that disagree."""

    model_config = _validations(
        _cel("!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",
             "maxReplicas must be >= minReplicas",
             message_expression="'maxReplicas (' + string(self.maxReplicas) + ') must be >= minReplicas (' + "
                                "string(self.minReplicas) + ')'",
             field_path=".maxReplicas"),
        _cel("!has(self.forecast) || has(self.capacity)",
             "forecast needs capacity (perReplica rates) to turn rates into replicas",
             field_path=".capacity", reason="FieldValueRequired"),
        # Only where CEL's duration() reads the three durations exactly as the model does: whole h, m
        # and s, at most three parts of at most five digits (30m, 1h30m, 90s), so Go's integer
        # nanoseconds and the model's float seconds are the same numbers and no sum overflows Go's
        # 290 years. CEL has no d or w (14d), and fractions (1.5h, 500ms) round differently in Go
        # and in floats; those spellings are left to the controller's check (SpecValid=False).
        _cel("!has(self.forecast) || !has(self.leadTime) || self.leadTime == 'auto' || "
             "!has(self.forecast.horizon) || !has(self.forecast.interval) || "
             "![self.leadTime, self.forecast.horizon, self.forecast.interval]"
             f".all(d, d.matches('{_CEL_EXACT_DURATION}')) || "
             "duration(self.forecast.horizon) >= duration(self.leadTime) + duration(self.forecast.interval)",
             "forecast.horizon must be >= leadTime + forecast.interval",
             message_expression="'forecast.horizon (' + self.forecast.horizon + ') must be >= leadTime (' + "
                                "self.leadTime + ') + forecast.interval (' + self.forecast.interval + ')'",
             field_path=".forecast.horizon"),
        _cel("!has(self.forecast) || !has(self.forecast.liveErrorMinSamples) || "
             "!has(self.forecast.liveErrorSamples) || "
             "self.forecast.liveErrorMinSamples <= self.forecast.liveErrorSamples",
             "forecast.liveErrorMinSamples must be <= forecast.liveErrorSamples",
             message_expression="'liveErrorMinSamples (' + string(self.forecast.liveErrorMinSamples) + ') must be "
                                "<= liveErrorSamples (' + string(self.forecast.liveErrorSamples) + ')'",
             field_path=".forecast.liveErrorMinSamples"),
    )

    scale_target_ref: CrossVersionObjectReference
    min_replicas: int = Field(1, ge=1, le=2**31 - 1)
    max_replicas: int = Field(ge=1, le=2**31 - 1)
    # maxItems: the API server prices each per-metric CEL rule times the most metrics a list may
    # hold; unbounded, that is what fits in a request, past its budget. No HPA has anywhere near 16.
    metrics: list[MetricSpec] = Field(
        min_length=1, max_length=MAX_METRICS,
        description="reactive targets (HPA v2 MetricSpec); at least one, never scale blind",
    )
    behavior: HorizontalPodAutoscalerBehavior | None = None
    forecast: ForecastSpec | None = Field(None, description="absent: the predictive stage is off (a plain HPA)")
    capacity: CapacitySpec | None = None
    lead_time: LeadTime = Field("5m", validate_default=True,
                                description='cold start ("5m"), or "auto" to learn it from pod readiness')
    sync_period_seconds: Duration = Field("15s", alias="syncPeriod", gt=0, validate_default=True)
    mode: Mode = "Auto"

    @model_validator(mode="after")
    def _cross_checks(self) -> "PredictiveAutoscalerSpec":
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"maxReplicas ({self.max_replicas}) must be >= minReplicas ({self.min_replicas})")
        if self.forecast is not None:
            if self.capacity is None:
                raise ValueError("forecast needs capacity (perReplica rates) to turn rates into replicas")
            for i, signal in enumerate(self.forecast.signals):
                if self.capacity.per_replica.rate(signal.name) is None:
                    raise ValueError(
                        f"forecast.signals[{i}] ({signal.name}) has no "
                        f"capacity.perReplica.{SIGNAL_CAPACITY_FIELD[signal.name]}"
                    )
            if self.lead_time != "auto":
                needed = self.lead_time + self.forecast.interval_seconds
                if self.forecast.horizon_seconds < needed:
                    raise ValueError(
                        f"forecast.horizon ({format_duration_seconds(self.forecast.horizon_seconds)}) must be "
                        f">= leadTime ({format_duration_seconds(self.lead_time)}) + forecast.interval "
                        f"({format_duration_seconds(self.forecast.interval_seconds)})"
                    )
        return self

    @property
    def forecast_signals(self) -> tuple[str, ...]:
        """The configured signal names in order."""
        return tuple(s.name for s in self.forecast.signals) if self.forecast else ()
