"""Live per-pod metrics from a real Prometheus scraping a vLLM-like exporter (tests/promfixture.py)."""

from __future__ import annotations

import time

import pytest

from controller.live_metrics import PrometheusLiveMetrics

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
    vllm_exporter.set("pod-0", num_requests_running=3.0, kv_cache_usage_perc=0.25)
    vllm_exporter.set("pod-1", num_requests_running=5.0, kv_cache_usage_perc=0.75)
    live = PrometheusLiveMetrics(prometheus_scraping.url, namespace_label=None, timeout=5.0)
    got = _eventually(lambda: live.pod_values("vllm:num_requests_running", "ignored"),
                      {"pod-0": 3.0, "pod-1": 5.0})
    assert got == {"pod-0": 3.0, "pod-1": 5.0}
    selected = live.pod_values("vllm:kv_cache_usage_perc", "ignored", {"matchLabels": {"model_name": "m-small"}})
    assert selected == {"pod-0": 0.25, "pod-1": 0.75}
    assert live.pod_values("vllm:kv_cache_usage_perc", "x", {"matchLabels": {"model_name": "other"}}) == {}
    total = live.external_value("vllm:num_requests_running", "ignored")
    assert total == 8.0
