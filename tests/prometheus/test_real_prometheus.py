"""The loader against a real Prometheus holding the backfilled traces (tests/promfixture.py)."""

from __future__ import annotations

import logging
import socket
import time
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from forecaster.prometheus.client import PrometheusClient
from forecaster.prometheus.config import PrometheusConfig
from forecaster.prometheus.errors import (
    PrometheusAuthError,
    PrometheusEmptyResult,
    PrometheusQueryError,
    PrometheusUnreachable,
)
from forecaster.prometheus.loader import frame_from_prometheus, load_history
from forecaster.series import to_rate
from tests.promfixture import BASIC_AUTH_PASSWORD, BASIC_AUTH_USER, SCRAPED_PODS, free_port

SIGNALS = ["requests", "prompt_tokens", "output_tokens"]


def after_gap(trace: pd.Series) -> np.ndarray:
    """Bins present in the trace right after a gap inside it: a counter cannot place their increase."""
    present = trace.notna().to_numpy()
    previous = np.concatenate([[True], present[:-1]])
    seen_before = np.concatenate([[False], np.cumsum(present)[:-1] > 0])
    return present & ~previous & seen_before


def assert_matches_trace(got: pd.DataFrame, trace: pd.DataFrame) -> None:
    assert got.index.equals(trace.index)
    for signal in SIGNALS:
        expected = trace[signal].to_numpy().copy()
        expected[after_gap(trace[signal])] = np.nan  # a gap of g bins reads back as g + 1
        np.testing.assert_allclose(got[signal].to_numpy(), expected, rtol=1e-9, equal_nan=True)


@pytest.fixture(scope="module")
def cfg(prometheus_server):
    return PrometheusConfig(url=prometheus_server.url, retries=0)


@pytest.mark.parametrize("raw", [pytest.param(False, id="rate"), pytest.param(True, id="raw-counter")])
def test_fourteen_days_at_one_minute_read_back_equal_to_the_trace(prometheus_server, cfg, raw):
    trace = prometheus_server.frames["m-small"]
    start, end = prometheus_server.start_end("m-small")
    got = load_history(cfg, model_name="m-small", start=start, end=end, raw_counters=raw)
    # 20,160 points per signal: two query_range chunks under the 11,000 limit, joined exactly.
    assert len(got) == 20_160 and got.index.is_unique and got.index.freq == pd.Timedelta("60s")
    assert_matches_trace(got, trace)
    assert trace["requests"].isna().sum() > 0  # the trace has gaps, and they stayed gaps


def test_to_rate_gives_back_the_rate_at_ten_minutes(prometheus_server, cfg):
    trace = prometheus_server.frames["m-small"]
    start, end = prometheus_server.start_end("m-small")
    got = load_history(cfg, model_name="m-small", start=start, end=end, step="10m")
    assert got.index.freq == pd.Timedelta("600s") and len(got) == 2016
    for signal in SIGNALS:
        ours = to_rate(got, signal)
        theirs = to_rate(trace, signal, "10m")
        # Compare the 10-minute windows the trace holds completely (rate over a window with a hole
        # is the increase over the samples present; the trace's resample is the mean of them).
        complete = trace[signal].notna().astype(int).resample("600s", origin="epoch").min() == 1
        np.testing.assert_allclose(ours[complete], theirs[complete], rtol=1e-9)
        assert complete.sum() > 1900


def test_m_large_reads_back_too(prometheus_server, cfg):
    if "m-large" not in prometheus_server.frames:
        pytest.skip("../shared/traces/llm_servegen_m-large_1min.csv not present")
    start, end = prometheus_server.start_end("m-large")
    got = load_history(cfg, model_name="m-large", start=start, end=end)
    assert_matches_trace(got, prometheus_server.frames["m-large"])


def test_tiny_chunks_neither_duplicate_nor_drop(prometheus_server):
    start, _ = prometheus_server.start_end("m-small")
    cfg = PrometheusConfig(url=prometheus_server.url, max_points_per_query=7)
    end = start + pd.Timedelta(minutes=100)
    got = load_history(cfg, model_name="m-small", start=start, end=end, signals=["requests"])
    whole = load_history(PrometheusConfig(url=prometheus_server.url), model_name="m-small",
                         start=start, end=end, signals=["requests"])
    assert len(got) == 100 and got.index.is_unique
    pd.testing.assert_frame_equal(got, whole)


def test_raw_counter_with_tiny_windows_matches(prometheus_server):
    start, _ = prometheus_server.start_end("m-small")
    end = start + pd.Timedelta(hours=6)
    tiny = PrometheusConfig(url=prometheus_server.url, max_points_per_query=13)
    got = load_history(tiny, model_name="m-small", start=start, end=end, raw_counters=True)
    trace = prometheus_server.frames["m-small"].loc[start : end - pd.Timedelta("1min")]
    assert_matches_trace(got, trace)


def test_the_clients_own_chunking_duplicates_samples_at_chunk_edges(prometheus_server):
    """prometheus-api-client's get_metric_range_data asks `x[chunk]` at each chunk end; Prometheus
    2.x includes both ends of a range, so a sample on a chunk edge comes back twice. This is why
    the loader chunks query_range itself and filters raw windows to (lo, hi]."""
    from prometheus_api_client import PrometheusConnect

    start, _ = prometheus_server.start_end("m-small")
    end = start + pd.Timedelta(hours=3)
    prom = PrometheusConnect(url=prometheus_server.url)
    chunks = prom.get_metric_range_data(
        "vllm:request_success_total", label_config={"model_name": "m-small"},
        start_time=start.to_pydatetime(), end_time=end.to_pydatetime(), chunk_size=timedelta(hours=1),
    )
    stamps = [float(t) for chunk in chunks for t, _ in chunk["values"]]
    assert len(stamps) > len(set(stamps))  # duplicated at the chunk edges


def test_the_vllm_underscore_spelling_is_found(prometheus_server, cfg):
    start, end = prometheus_server.start_end("m-underscore")
    got = load_history(cfg, model_name="m-underscore", start=start, end=end)
    assert all("vllm_" in q and "vllm:" not in q for q in got.attrs["queries"].values())
    assert_matches_trace(got, prometheus_server.frames["m-underscore"])


def test_custom_queries_with_placeholders(prometheus_server, cfg):
    start, _ = prometheus_server.start_end("m-small")
    end = start + pd.Timedelta(hours=2)
    query = 'sum(increase(vllm:request_success_total{model_name="$model_name"}[$step])) / 60'
    got = load_history(cfg, model_name="m-small", start=start, end=end, signals=["requests"],
                       queries={"requests": query})
    assert got.attrs["queries"]["requests"].startswith(
        'sum(increase(vllm:request_success_total{model_name="m-small"}[60s]')
    np.testing.assert_allclose(got["requests"], prometheus_server.frames["m-small"]["requests"].loc[got.index],
                               rtol=1e-9)


def test_model_trained_from_prometheus_equals_one_trained_from_the_csv(prometheus_server, cfg):
    from forecaster.estimators import make_estimator

    trace = prometheus_server.frames["m-small"]
    _, end = prometheus_server.start_end("m-small")
    got = frame_from_prometheus(prometheus_server.url, "m-small", days=14, end=end)
    for signal in SIGNALS:
        ours, theirs = to_rate(got, signal, "10m"), to_rate(trace, signal, "10m")
        # The 10-minute series are the same: the bin lost after each gap sits in a window whose
        # other minutes repeat the same ServeGen value, so each window's mean is unchanged.
        pd.testing.assert_series_equal(ours, theirs, rtol=1e-9)
        # Baselines (gbm gives the same answer on the same data but takes minutes on 2 shared cores).
        for name in ("seasonal_naive_daily", "seasonal_naive_weekly"):
            a = make_estimator(name).fit(ours).predict(36, quantiles=[0.5, 0.9])
            b = make_estimator(name).fit(theirs).predict(36, quantiles=[0.5, 0.9])
            pd.testing.assert_frame_equal(a, b, rtol=1e-9)


# -- errors --------------------------------------------------------------------------------------


def test_stopped_server_is_unreachable_after_retries():
    sleeps: list[float] = []
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = PrometheusConfig(url=f"http://127.0.0.1:{port}", retries=2, backoff_initial_s=0.5, timeout_s=2)
    client = PrometheusClient(cfg, sleep=sleeps.append)
    with pytest.raises(PrometheusUnreachable, match=f"cannot reach Prometheus at http://127.0.0.1:{port}"):
        load_history(cfg, model_name="m-small", start="2025-01-05T16:00Z", end="2025-01-05T17:00Z", client=client)
    assert sleeps == [0.5, 1.0]


def test_bad_promql_carries_prometheus_text(prometheus_server, cfg):
    with pytest.raises(PrometheusQueryError, match="parse error") as info:
        load_history(cfg, model_name="m-small", start="2025-01-05T16:00Z", end="2025-01-05T17:00Z",
                     signals=["requests"], queries={"requests": "sum(rate(vllm:request_success_total[1m]"})
    assert "bad_data" in info.value.prometheus_error and "sum(rate(" in str(info.value)


def test_unaggregated_query_is_refused_with_the_series(prometheus_server, cfg):
    with pytest.raises(PrometheusQueryError, match="aggregate it to one"):
        load_history(cfg, model_name="m-small", start="2025-01-05T16:00Z", end="2025-01-05T17:00Z",
                     signals=["requests"], queries={"requests": TWO_SERIES})


# Two series from the shipped trace alone (a user's clone has no second model to match).
TWO_SERIES = (
    'label_replace(rate(vllm:request_success_total{model_name="m-small"}[1m]), "copy", "a", "", "")'
    ' or label_replace(rate(vllm:request_success_total{model_name="m-small"}[1m]), "copy", "b", "", "")'
)


@pytest.mark.parametrize(
    "model, queries, message",
    [
        pytest.param("m-small", {"requests": 'sum(rate(vllm:request_success_total{model_name="nope"}[1m]))'},
                     'model_name="nope"', id="empty-selector"),
        pytest.param("no-such-model", None, "no vllm:request_success_total or vllm_request_success_total series "
                     "for model_name='no-such-model'", id="unknown-model"),
    ],
)
def test_empty_result_names_the_query(prometheus_server, cfg, model, queries, message):
    with pytest.raises(PrometheusEmptyResult, match=message):
        load_history(cfg, model_name=model, start="2025-01-05T16:00Z", end="2025-01-05T17:00Z",
                     signals=["requests"], queries=queries)


def test_empty_range_outside_the_history(prometheus_server, cfg):
    with pytest.raises(PrometheusEmptyResult):
        load_history(cfg, model_name="m-small", start="2024-01-01T00:00Z", end="2024-01-01T01:00Z",
                     signals=["requests"])


def test_basic_auth_wrong_and_right_password(prometheus_basic_auth, tmp_path, monkeypatch, caplog):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    bad = PrometheusConfig(url=prometheus_basic_auth.url, username=BASIC_AUTH_USER, password_file=wrong)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(PrometheusAuthError, match="HTTP 401") as info:
            PrometheusClient(bad).query("vector(1)", 0)
        monkeypatch.setenv("PROM_PW", BASIC_AUTH_PASSWORD)
        good = PrometheusConfig(url=prometheus_basic_auth.url, username=BASIC_AUTH_USER, password_env="PROM_PW")
        result = PrometheusClient(good).query("vector(1)", 1_736_092_800)
    assert result and float(result[0]["value"][1]) == 1.0
    for secret in ("not-the-password", BASIC_AUTH_PASSWORD):
        assert secret not in caplog.text and secret not in str(info.value)
        assert secret not in repr(bad) and secret not in repr(good)


def test_basic_auth_missing_credentials_is_an_auth_error(prometheus_basic_auth):
    with pytest.raises(PrometheusAuthError):
        load_history(PrometheusConfig(url=prometheus_basic_auth.url), model_name="m", start="2025-01-05T16:00Z",
                     end="2025-01-05T17:00Z")


# -- the live exporter fixture -------------------------------------------------------------------


def test_live_exporter_is_scraped(vllm_exporter, prometheus_scraping):
    first, second = SCRAPED_PODS
    vllm_exporter.set(first, num_requests_running=3, num_requests_waiting=1)
    vllm_exporter.set(second, num_requests_running=5)
    client = PrometheusClient(PrometheusConfig(url=prometheus_scraping.url))
    deadline = time.monotonic() + 15
    value = None
    while time.monotonic() < deadline:
        result = client.query('sum(vllm:num_requests_running{model_name="m-small"})', time.time())
        value = float(result[0]["value"][1]) if result else None
        if value == 8.0:
            break
        time.sleep(0.25)
    assert value == 8.0


def test_bearer_token_and_retries_never_reach_the_logs(prometheus_server, monkeypatch, caplog):
    token = "tok-" + "x9" * 12
    monkeypatch.setenv("PROM_TOKEN", token)
    cfg = PrometheusConfig(url=prometheus_server.url, bearer_token_env="PROM_TOKEN")
    start, _ = prometheus_server.start_end("m-small")
    with caplog.at_level(logging.DEBUG):
        # Prometheus without auth ignores the header; the request still carries it.
        got = load_history(cfg, model_name="m-small", start=start, end=start + pd.Timedelta("1h"))
        down = PrometheusConfig(url=f"http://127.0.0.1:{free_port()}", bearer_token_env="PROM_TOKEN",
                                retries=1, backoff_initial_s=0)
        with pytest.raises(PrometheusUnreachable) as info:
            PrometheusClient(down, sleep=lambda s: None).query("up", 0)
    assert len(got) == 60
    assert "retry 1 of 1" in caplog.text  # the retry was logged ...
    assert token not in caplog.text and token not in str(info.value) and token not in repr(cfg)  # ... not the token
