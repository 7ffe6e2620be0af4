"""The fixture module's own behaviour where no Prometheus is needed."""

from __future__ import annotations

import pytest

import tests.promfixture as promfixture
from forecaster.prometheus.loader import frame_from_prometheus


def test_missing_binaries_skip_with_install_hint(monkeypatch):
    monkeypatch.setattr(promfixture.shutil, "which", lambda name: None)
    with pytest.raises(pytest.skip.Exception, match="apt-get install prometheus"):
        promfixture._require_binaries()


def test_exporter_serves_plain_text_with_colons():
    exporter = promfixture.VllmExporter(model_name="m-x")
    exporter.set("pod-0", num_requests_running=2, request_success_total=10)
    text = exporter.render("pod-0")
    assert 'vllm:num_requests_running{engine="0",model_name="m-x"} 2' in text
    assert "# TYPE vllm:request_success_total counter" in text and "# EOF" not in text
    assert exporter.render("pod-9") is None
    with pytest.raises(KeyError, match="unknown vLLM metrics"):
        exporter.set("pod-0", latency=1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        pytest.param({"days": 0}, r"days \(0\) must be positive", id="days"),
        pytest.param({"end": "2025-01-19T16:00"}, "must carry a timezone", id="naive-end"),
        pytest.param({"url": "localhost:9090"}, "must be http", id="url"),
    ],
)
def test_frame_from_prometheus_checks_arguments(kwargs, message):
    args = {"url": "http://127.0.0.1:1", "model_name": "m", **kwargs}
    with pytest.raises(ValueError, match=message):
        frame_from_prometheus(**args)
