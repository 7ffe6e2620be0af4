"""Live per-pod vLLM metrics from Prometheus's HTTP API (`/api/v1/query`), for the reactive stage.

What each `spec.metrics` entry reads (the HPA's metric types, served here by Prometheus instead of the
custom/external metrics APIs, since vLLM's metrics live in Prometheus):
- Pods: `max by (pod) ({__name__=~"<name>", namespace="<ns>", <selector>})`, one value per pod; the
  metric name matches both `vllm:x` and `vllm_x` (some exporters and remote-write paths rename the
  colon, prometheus_client >= 0.23 among them; docs/architecture.md "Names").
- External: `sum({__name__=~"<name>", <selector>})`: the HPA sums the series an External selector matches.
- Resource, ContainerResource, Object: not read (they come from metrics.k8s.io or an object); the
  observation is marked unavailable with the reason, so the policy never scales down on it.
Empty results are data, not errors: a Pods query with no series gives every pod as missing (the HPA's
rule then applies); an External query with no series is unavailable (KEDA makes each query say what
empty means; we say: unknown).
"""

from __future__ import annotations

import json
import math
import ssl
import time
from typing import Any, Callable, Mapping, Sequence

import httpx

from controller.errors import MetricsUnavailable

# RE2's metacharacters: the only characters a regex literal escapes. The regex then goes inside a
# PromQL double-quoted string, where Go's escapes apply and a regex backslash must be written twice.
# Writing re.escape's output into the string unescaped turned every Deployment pod name
# (`vllm-7d9c5b6f4-x2x7q` -> `vllm\-7d9c...`) into an unknown string escape: HTTP 400 from Prometheus.
_RE2_META = frozenset("\\.+*?()|[]{}^$")


def regex_literal(value: str) -> str:
    """`value` as an RE2 regex that matches exactly it (Prometheus label regexes are fully anchored)."""
    return "".join("\\" + c if c in _RE2_META else c for c in value)


def name_matcher(name: str) -> str:
    """A `__name__` regex matching both spellings of a vLLM metric: `vllm:x` and `vllm_x`."""
    return regex_literal(name).replace(":", "[:_]")


def _label_value(value: str) -> str:
    """`value` inside a PromQL double-quoted string (Go escapes: a backslash is written twice)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _regex_matcher(label: str, op: str, regex: str) -> str:
    return f'{label}{op}"{_label_value(regex)}"'


def selector_matchers(selector: Any) -> list[str]:
    """A LabelSelector (spec model or dict) -> PromQL label matchers."""
    if selector is None:
        return []
    if hasattr(selector, "match_labels"):
        labels = selector.match_labels or {}
        expressions = [(e.key, e.operator, e.values or []) for e in (selector.match_expressions or [])]
    else:
        labels = selector.get("matchLabels") or {}
        expressions = [(e["key"], e["operator"], e.get("values") or [])
                       for e in selector.get("matchExpressions") or []]
    out = [f'{k}="{_label_value(v)}"' for k, v in sorted(labels.items())]
    for key, operator, values in expressions:
        alternatives = "|".join(regex_literal(v) for v in values)
        out.append({"In": _regex_matcher(key, "=~", alternatives), "NotIn": _regex_matcher(key, "!~", alternatives),
                    "Exists": f'{key}!=""', "DoesNotExist": f'{key}=""'}[operator])
    return out


class PrometheusLiveMetrics:
    """Instant queries against one Prometheus. `transport` lets tests substitute an in-process server."""

    def __init__(self, url: str, *, timeout: float = 2.0, pod_label: str = "pod",
                 namespace_label: str | None = "namespace", transport: httpx.BaseTransport | None = None,
                 headers: Mapping[str, str] | None = None, deadline: float | None = None,
                 monotonic: Callable[[], float] = time.monotonic, verify: str | bool = True):
        """namespace_label: the label holding the pod's namespace (kubernetes_sd relabelling writes
        `namespace`); None where the scrape has no such label (one namespace per Prometheus).
        deadline: seconds one query may take in all (default 2 x timeout): httpx's timeout bounds
        each read, and a server trickling its answer would otherwise stall the sync loop."""
        # verify: True (system CAs), False, or a CA bundle path for an https Prometheus.
        tls: ssl.SSLContext | bool = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, transport=transport,
                                  headers=dict(headers or {}), verify=tls)
        self.pod_label, self.namespace_label = pod_label, namespace_label
        self.url = url.rstrip("/")
        self._deadline = deadline if deadline is not None else 2 * timeout
        self._monotonic = monotonic

    def close(self) -> None:
        self._http.close()

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """(labels, value) per series of an instant vector; NaN and Inf samples are left out."""
        end = self._monotonic() + self._deadline
        try:
            with self._http.stream("GET", "/api/v1/query", params={"query": promql}) as response:
                chunks = []
                for chunk in response.iter_bytes():  # about one socket read each: the deadline is checked
                    chunks.append(chunk)
                    if self._monotonic() > end:
                        raise MetricsUnavailable(
                            f"Prometheus at {self.url}: no complete answer to {promql!r} within the "
                            f"{self._deadline:g} s deadline")
                body = b"".join(chunks)
        except httpx.HTTPError as exc:
            raise MetricsUnavailable(f"Prometheus query {promql!r}: {type(exc).__name__}: {exc}") from exc
        try:
            payload = json.loads(body)
        except ValueError:
            raise MetricsUnavailable(
                f"Prometheus query {promql!r}: HTTP {response.status_code}, body is not JSON") from None
        if response.status_code != 200 or payload.get("status") != "success":
            raise MetricsUnavailable(f"Prometheus query {promql!r}: HTTP {response.status_code}: "
                                     f"{payload.get('errorType', '')} {payload.get('error', '')}".strip())
        data = payload.get("data") or {}
        if data.get("resultType") == "scalar":
            value = float(data["result"][1])
            return [({}, value)] if math.isfinite(value) else []
        if data.get("resultType") != "vector":
            raise MetricsUnavailable(f"Prometheus query {promql!r}: expected a vector, got {data.get('resultType')}")
        out = []
        for series in data.get("result", []):
            value = float(series["value"][1])
            if math.isfinite(value):
                out.append((series.get("metric", {}), value))
        return out

    def pod_values(self, metric_name: str, namespace: str, selector: Any = None) -> dict[str, float]:
        matchers = [_regex_matcher("__name__", "=~", name_matcher(metric_name))]
        if self.namespace_label:
            matchers.append(f'{self.namespace_label}="{_label_value(namespace)}"')
        matchers += selector_matchers(selector)
        promql = f"max by ({self.pod_label}) ({{{', '.join(matchers)}}})"
        return {labels[self.pod_label]: value for labels, value in self.query(promql) if self.pod_label in labels}

    def external_value(self, metric_name: str, namespace: str, selector: Any = None) -> float | None:
        matchers = [_regex_matcher("__name__", "=~", name_matcher(metric_name))] + selector_matchers(selector)
        result = self.query(f"sum({{{', '.join(matchers)}}})")
        return result[0][1] if result else None

    def rate(self, promql: str) -> float | None:
        """The value of a scalar-like query (a forecast signal's rate); None when it has no series."""
        result = self.query(promql)
        return sum(v for _, v in result) if result else None


# The rate a forecast signal is observed at when spec.forecast.signals[].query is absent: the same
# vLLM counters the forecaster trains on (forecaster/prometheus builds the same names).
SIGNAL_COUNTERS = {
    "requests": "vllm:request_success_total",
    "prompt_tokens": "vllm:prompt_tokens_total",
    "output_tokens": "vllm:generation_tokens_total",
}


def default_signal_query(signal: str, namespace: str, pods: Sequence[str], window_seconds: int) -> str:
    counter = _regex_matcher("__name__", "=~", name_matcher(SIGNAL_COUNTERS[signal]))
    pod_regex = "|".join(regex_literal(p) for p in sorted(pods)) or "^$"
    window = max(int(window_seconds), 60)
    return (f'sum(rate({{{counter}, namespace="{_label_value(namespace)}", '
            f'{_regex_matcher("pod", "=~", pod_regex)}}}[{window}s]))')
