"""Every Prometheus call ends by its total deadline, however the server misbehaves (issue 18, item 3).

The servers are real sockets on loopback (tests/misbehaving.py). Times are real (this is what
the deadline is about); the margins are several times the deadline's size, so a loaded machine
does not make them flaky, and the old behaviour (4 tries x the socket timeout, or forever) is far
outside them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from forecaster.prometheus.client import PrometheusClient
from forecaster.prometheus.config import PrometheusConfig
from forecaster.prometheus.errors import PrometheusDeadlineExceeded, PrometheusUnreachable
from tests.misbehaving import MisbehavingServer, fail_twice, hang, trickle


@pytest.fixture
def server(request) -> Iterator[MisbehavingServer]:
    s = MisbehavingServer(request.param)
    try:
        yield s
    finally:
        s.close()


DEADLINE = 1.5


@pytest.mark.parametrize("server", [pytest.param(hang, id="never-answers"),
                                    pytest.param(trickle, id="one-byte-at-a-time")], indirect=True)
def test_a_misbehaving_server_costs_at_most_the_deadline(server: MisbehavingServer) -> None:
    config = PrometheusConfig(url=server.url, timeout_s=10, deadline_s=DEADLINE, retries=3, backoff_initial_s=0)
    client = PrometheusClient(config)
    start = time.monotonic()
    with pytest.raises(PrometheusDeadlineExceeded) as info:
        client.query('sum(rate(vllm:request_success_total[5m]))', 0)
    elapsed = time.monotonic() - start
    # Before: 4 tries x 10 s of socket timeout (never-answers), or about 40 s of trickle per try.
    assert elapsed < DEADLINE + 2.5, f"took {elapsed:.1f} s against a {DEADLINE} s deadline"
    message = str(info.value)
    assert server.url in message and "vllm:request_success_total" in message and "1.5 s deadline" in message
    assert isinstance(info.value, PrometheusUnreachable), "callers that fall back on unreachable still do"
    assert server.attempts == 1, "the deadline is the call's: it is not retried past"


@pytest.mark.parametrize("server", [pytest.param(fail_twice, id="503-twice-then-ok")], indirect=True)
def test_retries_still_happen_inside_the_deadline(server: MisbehavingServer) -> None:
    config = PrometheusConfig(url=server.url, timeout_s=5, deadline_s=10, retries=3, backoff_initial_s=0)
    result = PrometheusClient(config).query("up", 0)
    assert result == [{"metric": {"__name__": "up"}, "value": [0, "1"]}]
    assert server.attempts == 3


def test_backoff_never_sleeps_past_the_deadline() -> None:
    """With a fake clock: the retry's backoff is cut to the time left, then the next try fails at once."""
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    def refuse(*args, **kwargs):
        now[0] += 1.0  # each try takes a second of the fake clock
        raise requests.ConnectionError("refused")

    config = PrometheusConfig(url="http://127.0.0.1:9", deadline_s=5, retries=10, backoff_initial_s=2,
                              backoff_max_s=8)
    client = PrometheusClient(config, sleep=sleep, monotonic=lambda: now[0])
    client._prom.custom_query = refuse  # the request itself is what fails; the retry policy is ours
    with pytest.raises(PrometheusUnreachable):
        client.query("up", 0)
    assert now[0] <= 5.0 + 1.0, f"the call ran {now[0]} s of a 5 s deadline"
    assert all(s >= 0 for s in slept) and sum(slept) <= 5.0


@pytest.mark.parametrize(("field", "value"), [("deadline_s", 0), ("deadline_s", -1), ("deadline_s", 7200)])
def test_the_deadline_is_validated(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        PrometheusConfig(url="http://prom:9090", **{field: value})
