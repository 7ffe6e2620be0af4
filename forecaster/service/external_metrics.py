"""The Kubernetes external metrics API (external.metrics.k8s.io/v1beta1), served from the cache.

The HPA asks `GET /apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}?labelSelector=...`
and *sums* the items it gets back (k8s.io/kubernetes pkg/controller/podautoscaler/metrics:
GetExternalMetric adds every item's value), so we return exactly one item per matching workload.
Values are Kubernetes quantity strings in milli-units ("1500m"), as metrics-server and
prometheus-adapter write them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

GROUP = "external.metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
DESIRED_REPLICAS = "prescaler-desired-replicas"
FORECAST_PREFIX = "prescaler-forecast-"


class SelectorError(ValueError):
    """A labelSelector that does not parse."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value in self.values
        if self.op == "!=":
            return not present or value not in self.values
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present  # "!"


_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_SET = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*({_VALUE})\s*$")
_EXISTS = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


def _split(selector: str) -> list[str]:
    """Split on commas outside parentheses ("a in (x,y),b=c" is two requirements)."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"labelSelector {selector!r}: unbalanced ')'")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise SelectorError(f"labelSelector {selector!r}: unbalanced '('")
    parts.append("".join(current))
    return parts


def parse_selector(selector: str | None) -> list[Requirement]:
    """Kubernetes label selector syntax (k8s.io/apimachinery/pkg/labels.Parse): =, ==, !=, in,
    notin, `key` (exists) and `!key`. An empty selector matches everything."""
    if selector is None or not selector.strip():
        return []
    requirements = []
    for part in _split(selector):
        if not part.strip():
            raise SelectorError(f"labelSelector {selector!r}: empty requirement")
        if m := _SET.match(part):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            if not values:
                raise SelectorError(f"labelSelector {selector!r}: {m.group(2)} needs at least one value")
            requirements.append(Requirement(m.group(1), m.group(2), values))
        elif m := _EQ.match(part):
            op = "=" if m.group(2) in ("=", "==") else "!="
            requirements.append(Requirement(m.group(1), op, frozenset({m.group(3)})))
        elif m := _EXISTS.match(part):
            requirements.append(Requirement(m.group(2), "!" if m.group(1) else "exists"))
        else:
            raise SelectorError(f"labelSelector {selector!r}: cannot parse {part.strip()!r}")
    return requirements


def selector_matches(requirements: list[Requirement], labels: dict[str, str]) -> bool:
    return all(r.matches(labels) for r in requirements)


def quantity(value: float) -> str:
    """A Kubernetes quantity in milli-units, rounded up so a scaler never sees less than forecast:
    1.5 -> "1500m", 2 -> "2", 0.0004 -> "1m"."""
    if not math.isfinite(value):
        raise ValueError(f"quantity of a non-finite value {value!r}")
    milli = int(Decimal(repr(value)).scaleb(3).to_integral_value(rounding=ROUND_CEILING))
    if milli % 1000 == 0:
        return str(milli // 1000)
    return f"{milli}m"


def api_group_list() -> dict:
    return {
        "kind": "APIGroupList", "apiVersion": "v1",
        "groups": [{
            "name": GROUP,
            "versions": [{"groupVersion": GROUP_VERSION, "version": VERSION}],
            "preferredVersion": {"groupVersion": GROUP_VERSION, "version": VERSION},
        }],
    }


def api_group() -> dict:
    return {
        "kind": "APIGroup", "apiVersion": "v1", "name": GROUP,
        "versions": [{"groupVersion": GROUP_VERSION, "version": VERSION}],
        "preferredVersion": {"groupVersion": GROUP_VERSION, "version": VERSION},
    }


def api_resource_list(metric_names: list[str]) -> dict:
    # prometheus-adapter lists each external metric as a namespaced resource with verb get.
    return {
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION,
        "resources": [
            {"name": name, "singularName": "", "namespaced": True,
             "kind": "ExternalMetricValueList", "verbs": ["get"]}
            for name in metric_names
        ],
    }


def metric_value_list(items: list[tuple[str, dict[str, str], datetime, float]]) -> dict:
    return {
        "kind": "ExternalMetricValueList", "apiVersion": GROUP_VERSION, "metadata": {},
        "items": [
            {"metricName": name, "metricLabels": labels,
             "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "value": quantity(value)}
            for name, labels, at, value in items
        ],
    }


def signal_of_metric(metric: str) -> str | None:
    """'prescaler-forecast-prompt-tokens' -> 'prompt_tokens'; None for desired replicas."""
    if metric == DESIRED_REPLICAS:
        return None
    if metric.startswith(FORECAST_PREFIX):
        return metric[len(FORECAST_PREFIX):].replace("-", "_")
    raise KeyError(f"unknown metric {metric!r}")


def status_error(code: int, reason: str, message: str) -> dict:
    """A metav1.Status, the body the API aggregator expects on an error."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
