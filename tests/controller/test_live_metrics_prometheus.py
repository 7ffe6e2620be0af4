"""Live per-pod metrics from a real Prometheus scraping a vLLM-like exporter (tests/promfixture.py)."""

from __future__ import annotations

import time

import pytest

from controller.live_metrics import PrometheusLiveMetrics, default_signal_query
from tests.promfixture import SCRAPED_PODS

pytestmark = pytest.mark.prometheus


def _eventually(read, expected, seconds=15.0):
    deadline = time.monotonic() + seconds
    value = None
    while time.monotonic() < deadline:
        value = read()
        if value == expected:
            return value
        time.sleep(0.25)  # Prometheus scrapes every second; nothing to inject here
    return value


def test_pod_values_from_a_real_prometheus(vllm_exporter, prometheus_scraping) -> None:
    first, second = SCRAPED_PODS
    vllm_exporter.set(first, num_requests_running=3.0, kv_cache_usage_perc=0.25)
    vllm_exporter.set(second, num_requests_running=5.0, kv_cache_usage_perc=0.75)
    live = PrometheusLiveMetrics(prometheus_scraping.url, namespace_label=None, timeout=5.0)
    got = _eventually(lambda: live.pod_values("vllm:num_requests_running", "ignored"), {first: 3.0, second: 5.0})
    assert got == {first: 3.0, second: 5.0}
    selected = live.pod_values("vllm:kv_cache_usage_perc", "ignored", {"matchLabels": {"model_name": "m-small"}})
    assert selected == {first: 0.25, second: 0.75}
    assert live.pod_values("vllm:kv_cache_usage_perc", "x", {"matchLabels": {"model_name": "other"}}) == {}
    total = live.external_value("vllm:num_requests_running", "ignored")
    assert total == 8.0


def test_deployment_pod_names_reach_prometheus_as_valid_regexes(vllm_exporter, prometheus_scraping) -> None:
    """Pod names carry hyphens; an `In` selector and the live-error query put them in regexes. Python's
    re.escape wrote `\\-`, which Prometheus answers with HTTP 400, and the live-error check never ran."""
    first, second = SCRAPED_PODS
    vllm_exporter.set(first, num_requests_running=2.0)
    vllm_exporter.set(second, num_requests_running=7.0)
    live = PrometheusLiveMetrics(prometheus_scraping.url, namespace_label="namespace", timeout=5.0)
    only_first = {"matchExpressions": [{"key": "pod", "operator": "In", "values": [first, "a.b(c)"]}]}
    assert _eventually(lambda: live.pod_values("vllm:num_requests_running", "llm", only_first), {first: 2.0}) \
        == {first: 2.0}
    not_first = {"matchExpressions": [{"key": "pod", "operator": "NotIn", "values": [first]}]}
    # eventually too: the scrape that showed the first pod's new value may predate the second's
    assert _eventually(lambda: live.pod_values("vllm:num_requests_running", "llm", not_first), {second: 7.0}) \
        == {second: 7.0}
    query = default_signal_query("requests", "llm", [second, first], 60)
    assert live.rate(query) is not None, "the series of both pods are found: the regex is valid and matches"
    assert live.rate(default_signal_query("requests", "llm", [first + "-gone"], 60)) is None
