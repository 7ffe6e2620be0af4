"""Single-binary mode: the forecaster's scheduler and cache in the controller's process."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import yaml

from controller.errors import ForecastUnavailable
from forecaster.service.inprocess import InProcessForecaster, InProcessUnavailable
from prescaler.inprocess import InProcessForecasts
from tests.service.conftest import FakeClock, config_dict, make_config


def _wait_ready(forecaster: InProcessForecaster, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while not forecaster.state.ready():
        assert time.monotonic() < deadline, "no model within the time limit"
        time.sleep(0.05)


def test_serves_the_cached_forecast_from_now_once_trained(tmp_path) -> None:
    clock = FakeClock()
    forecaster = InProcessForecaster(make_config(tmp_path), clock=clock, executor=ThreadPoolExecutor(2),
                                     poll_seconds=0.05)
    with pytest.raises(InProcessUnavailable, match="m-small"):
        forecaster.get("m-small", horizon_seconds=3600, quantiles=[0.9])
    forecaster.start()
    try:
        _wait_ready(forecaster)
        got = forecaster.get("m-small", horizon_seconds=3600, quantiles=[0.5, 0.9])
        assert set(got.forecasts) == {"requests", "output_tokens"}
        for forecast in got.forecasts.values():
            first = forecast.points[0].timestamp
            # The bin holding `now` comes first, and the hour ahead is covered.
            assert first <= clock.now < first + timedelta(seconds=forecast.step_seconds)
            assert forecast.points[-1].timestamp >= clock.now + timedelta(minutes=50)
            assert all(set(p.quantiles) == {"0.5", "0.9"} for p in forecast.points)
        with pytest.raises(InProcessUnavailable, match="not served"):
            forecaster.get("m-small", horizon_seconds=3600, quantiles=[0.42])
        with pytest.raises(InProcessUnavailable, match="nope"):
            forecaster.get("nope", horizon_seconds=3600, quantiles=[0.9])
    finally:
        forecaster.close()


def test_controller_adapter_maps_errors_to_forecast_unavailable(tmp_path) -> None:
    path = tmp_path / "forecaster.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path)))
    provider = InProcessForecasts(str(path), executor=ThreadPoolExecutor(1), poll_seconds=0.05)
    try:
        with pytest.raises(ForecastUnavailable, match="unknown-workload"):
            provider.get("unknown-workload", horizon_seconds=600, quantiles=[0.9])
    finally:
        provider.close()


def test_single_binary_discovers_workloads_through_the_controllers_client(tmp_path) -> None:
    """`controller run --forecaster-config` with discovery on: the in-process forecaster lists the
    PredictiveAutoscalers through the controller's own client (not a kubeconfig of its own)."""
    from tests.service.autoscalers import autoscaler, create, kube_client, start_kube

    kclock = FakeClock()
    server = start_kube(kclock)
    try:
        create(server, autoscaler("chat", workload="m-small", forecast={"model": "seasonal_naive_daily"}))
        data = config_dict(tmp_path)
        data["workloads"] = []
        # No kubeconfig: without the controller's client this would look for a service account.
        data["discovery"] = {"enabled": True, "namespaces": ["llm"]}
        path = tmp_path / "forecaster.yaml"
        path.write_text(yaml.safe_dump(data))
        provider = InProcessForecasts(str(path), kube=kube_client(server), executor=ThreadPoolExecutor(1),
                                      poll_seconds=0.05)
        try:
            state = provider._forecaster.state
            assert [w.name for w in state.workloads()] == ["m-small"]
            with pytest.raises(ForecastUnavailable, match="unknown-workload"):
                provider.get("unknown-workload", horizon_seconds=600, quantiles=[0.9])
        finally:
            provider.close()
    finally:
        server.stop()
