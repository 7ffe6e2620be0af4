"""The service on a real Prometheus (tests/promfixture.py: the shipped trace backfilled as vLLM
counters for model_name "m-small"): history, training and the external metric end to end."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from forecaster.service.config import parse_config
from forecaster.service.history import PrometheusSource
from forecaster.service.server import build_service
from tests.promfixture import prometheus_server  # noqa: F401 - the session fixture
from tests.service.conftest import FakeClock, config_dict


@pytest.fixture()
def prom_config(prometheus_server, tmp_path):  # noqa: F811
    data = config_dict(tmp_path)
    data["history"] = {"source": "prometheus", "window": "7d"}
    data["prometheus"] = {"url": prometheus_server.url, "retries": 0}
    return parse_config(data, "test")


def test_history_comes_from_prometheus(prom_config, prometheus_server):  # noqa: F811
    workload = prom_config.workload("m-small")
    clock = FakeClock()
    end = clock().replace(minute=0)
    source = PrometheusSource(prom_config)
    frame = source(workload, end - prom_config.history.window, end)
    assert list(frame.columns) == ["requests", "output_tokens"]
    assert len(frame) == 7 * 144
    truth = prometheus_server.frames["m-small"]["requests"]
    # Counts per 10-minute bin from Prometheus against the trace's own sum over the bin (1 %).
    day = frame["requests"].dropna().index[-10]
    expected = truth.loc[day: day + (frame.index[1] - frame.index[0])].iloc[:10].sum()  # 10 minutes
    assert frame.loc[day, "requests"] == pytest.approx(expected, rel=0.01)


def test_service_trains_and_serves_from_prometheus(prom_config):
    clock = FakeClock()
    service = build_service(prom_config, clock=clock, executor=ThreadPoolExecutor(2), run_scheduler=False)

    async def first():
        await service.state.scheduler.tick()
        await service.state.scheduler.wait_idle()
        await service.state.scheduler.tick()

    asyncio.run(first())
    assert service.state.ready(), service.state.scheduler.workloads["m-small"].last_error
    reading = service.state.read_metric("m-small", "prescaler-desired-replicas")
    assert 1 <= reading.value <= 20
