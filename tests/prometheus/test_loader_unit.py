"""Loader pieces that need no server: chunk planning, query building, argument checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forecaster.prometheus.config import PrometheusConfig
from forecaster.prometheus.loader import chunk_ranges, default_query, load_history


@given(count=st.integers(0, 50_000), step=st.sampled_from([15, 60, 600]), max_points=st.integers(2, 11_000))
def test_chunks_cover_every_point_once(count, step, max_points):
    first = 1_736_092_860
    chunks = chunk_ranges(first, count, step, max_points)
    points = [t for lo, hi in chunks for t in range(int(lo), int(hi) + 1, step)]
    assert points == [first + i * step for i in range(count)]
    assert all((hi - lo) // step + 1 <= max_points for lo, hi in chunks)


@pytest.mark.parametrize(
    "model, raw, expected",
    [
        pytest.param("m-small", False, 'sum(rate(vllm:request_success_total{model_name="m-small"}[60s]))', id="rate"),
        pytest.param("m-small", True, 'vllm:request_success_total{model_name="m-small"}', id="raw"),
        pytest.param('a"b\\c', True, 'vllm:request_success_total{model_name="a\\"b\\\\c"}', id="escaped"),
    ],
)
def test_default_query(model, raw, expected):
    assert default_query("vllm:request_success_total", model, 60, raw=raw) == expected


CFG = PrometheusConfig(url="http://127.0.0.1:1")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        pytest.param({"start": "2025-01-05T16:00"}, "start '2025-01-05T16:00' must carry a timezone", id="naive"),
        pytest.param({"end": "yesterday"}, "end 'yesterday' is not a timestamp", id="garbage"),
        pytest.param({"end": "2025-01-05T16:00Z"}, "must be at least one step", id="empty-range"),
        pytest.param({"signals": ["latency"]}, "signals", id="unknown-signal"),
        pytest.param({"queries": {"output_tokens": "x"}, "signals": ["requests"]}, "not among signals",
                     id="query-for-unasked-signal"),
        pytest.param({"model_name": " "}, "model_name must not be empty", id="empty-model"),
        pytest.param({"step": "90.5s"}, "whole number of seconds", id="fractional-step"),
    ],
)
def test_arguments_are_checked_before_any_request(kwargs, message):
    args = {"model_name": "m", "start": "2025-01-05T16:00Z", "end": "2025-01-06T16:00Z", **kwargs}
    with pytest.raises(ValueError, match=message):
        load_history(CFG, **args)
