"""StreamIsActive streams against unary calls, on a real gRPC server on loopback (issue 18).

Eight open streams used to hold all eight workers of the scaler's pool, each asleep for the
workload's interval (a minute) even after its client had gone, so every IsActive, GetMetricSpec and
GetMetrics call queued behind them and ran out of its deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import grpc
import pytest

from forecaster.proto import externalscaler_pb2 as pb
from forecaster.proto import externalscaler_pb2_grpc as pb_grpc
from forecaster.service.keda import ExternalScaler, start_grpc_server, stop_grpc_server

# Short enough that a queued call fails the test, long enough for a shared 2-core machine.
UNARY_DEADLINE_S = 3.0


def ref(**metadata) -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(name="m-small", namespace="llm", scalerMetadata=metadata)


@contextmanager
def scaler(service, **kwargs) -> Iterator[tuple[pb_grpc.ExternalScalerStub, ExternalScaler, int]]:
    # No stream_period_seconds: the streams wait the workload's interval (1 min), as in production.
    server, port, servicer = start_grpc_server(service.state, host="127.0.0.1", port=0, **kwargs)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield pb_grpc.ExternalScalerStub(channel), servicer, port
    finally:
        channel.close()
        stop_grpc_server(server, servicer)


def open_streams(stub: pb_grpc.ExternalScalerStub, n: int) -> list:
    streams = [stub.StreamIsActive(ref(workload="m-small"), timeout=30) for _ in range(n)]
    for stream in streams:
        assert next(stream).result is True  # each one runs on a server worker now
    return streams


def eventually(condition: Callable[[], bool], within_s: float = 2.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def assert_unary_calls_answer(stub: pb_grpc.ExternalScalerStub) -> None:
    assert stub.IsActive(ref(workload="m-small"), timeout=UNARY_DEADLINE_S).result is True
    (spec,) = stub.GetMetricSpec(ref(workload="m-small"), timeout=UNARY_DEADLINE_S).metricSpecs
    assert spec.targetSize == 1
    (value,) = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(workload="m-small")),
                               timeout=UNARY_DEADLINE_S).metricValues
    assert value.metricValue >= 1


def test_eight_streams_leave_unary_calls_their_workers(service) -> None:
    """The issue's case, with the server's defaults."""
    with scaler(service) as (stub, servicer, _):
        streams = open_streams(stub, 8)
        assert_unary_calls_answer(stub)
        assert servicer.active_streams == 8
        for stream in streams:
            stream.cancel()


def test_at_the_stream_limit_unary_calls_still_answer(service) -> None:
    with scaler(service, max_streams=3, unary_workers=1) as (stub, servicer, _):
        streams = open_streams(stub, 3)
        assert servicer.active_streams == 3
        assert_unary_calls_answer(stub)
        for stream in streams:
            stream.cancel()


def test_the_stream_over_the_limit_is_resource_exhausted(service) -> None:
    with scaler(service, max_streams=2, unary_workers=1) as (stub, servicer, _):
        streams = open_streams(stub, 2)
        with pytest.raises(grpc.RpcError) as caught:
            next(stub.StreamIsActive(ref(workload="m-small"), timeout=5))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "StreamIsActive" in caught.value.details() and "2" in caught.value.details()
        assert servicer.active_streams == 2  # the refused one took no slot
        # A closed stream gives its slot back: the next one is accepted.
        streams[0].cancel()
        assert eventually(lambda: servicer.active_streams == 1)
        (replacement,) = open_streams(stub, 1)
        assert servicer.active_streams == 2
        replacement.cancel()
        streams[1].cancel()


def test_a_cancelled_stream_frees_its_worker_at_once(service) -> None:
    """The streams wait a minute between pushes; a cancel must end that wait, not outlast it."""
    with scaler(service, max_streams=4, unary_workers=1) as (stub, servicer, _):
        streams = open_streams(stub, 4)
        for stream in streams:
            stream.cancel()
        assert eventually(lambda: servicer.active_streams == 0), servicer.active_streams
        # The freed workers serve new streams and unary calls alike.
        again = open_streams(stub, 4)
        assert_unary_calls_answer(stub)
        for stream in again:
            stream.cancel()
        assert eventually(lambda: servicer.active_streams == 0), servicer.active_streams


def test_a_client_that_goes_away_frees_its_streams(service) -> None:
    """KEDA restarting closes its connection without cancelling each call."""
    with scaler(service, max_streams=4, unary_workers=1) as (stub, servicer, port):
        other = grpc.insecure_channel(f"127.0.0.1:{port}")
        open_streams(pb_grpc.ExternalScalerStub(other), 4)
        assert servicer.active_streams == 4
        other.close()
        assert eventually(lambda: servicer.active_streams == 0), servicer.active_streams
        assert_unary_calls_answer(stub)


def test_stop_ends_open_streams_promptly(service) -> None:
    server, port, servicer = start_grpc_server(service.state, host="127.0.0.1", port=0, max_streams=2)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        open_streams(pb_grpc.ExternalScalerStub(channel), 2)
        started = time.monotonic()
        stop_grpc_server(server, servicer, grace=5.0)
        # Within the grace period because the streams woke up, not because it ran out.
        assert time.monotonic() - started < 2.0
        assert servicer.active_streams == 0
    finally:
        channel.close()


@pytest.mark.parametrize("kwargs", [
    pytest.param({"max_streams": 0}, id="no-streams"),
    pytest.param({"unary_workers": 0}, id="no-unary-workers"),
    pytest.param({"cancel_poll_seconds": 0}, id="no-poll"),
])
def test_pool_settings_are_checked(service, kwargs) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        start_grpc_server(service.state, host="127.0.0.1", port=0, **kwargs)
