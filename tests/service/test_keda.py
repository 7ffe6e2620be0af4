"""The KEDA external scaler with a real gRPC client on loopback, for every RPC."""

from __future__ import annotations

import math

import grpc
import pytest

from forecaster.proto import externalscaler_pb2 as pb
from forecaster.proto import externalscaler_pb2_grpc as pb_grpc
from forecaster.service.cache import forecast_value
from forecaster.service.keda import start_grpc_server, stop_grpc_server


@pytest.fixture(scope="module")
def stub(service):
    server, port, servicer = start_grpc_server(service.state, host="127.0.0.1", port=0,
                                               stream_period_seconds=0.05)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield pb_grpc.ExternalScalerStub(channel)
    channel.close()
    stop_grpc_server(server, servicer)


def ref(**metadata) -> pb.ScaledObjectRef:
    return pb.ScaledObjectRef(name="m-small", namespace="llm", scalerMetadata=metadata)


def test_is_active(stub):
    assert stub.IsActive(ref(workload="m-small")).result is True
    # Above every plausible replica count: inactive.
    assert stub.IsActive(ref(workload="m-small", activationValue="1000")).result is False


def test_stream_is_active_pushes_the_state(stub):
    stream = stub.StreamIsActive(ref(workload="m-small"), timeout=5)
    first = next(stream)
    assert first.result is True
    stream.cancel()


def test_metric_spec_desired_replicas_targets_one(stub):
    (spec,) = stub.GetMetricSpec(ref(workload="m-small")).metricSpecs
    assert spec.targetSize == 1 and spec.targetSizeFloat == 1.0
    assert spec.metricName == "prescaler-desired-replicas-llm-m-small"


def test_metric_spec_forecast_targets_capacity(stub):
    (spec,) = stub.GetMetricSpec(ref(workload="m-small", metric="prescaler-forecast-requests")).metricSpecs
    assert spec.targetSizeFloat == pytest.approx(400.0 * 0.8)
    assert spec.targetSize == 320
    (spec,) = stub.GetMetricSpec(ref(workload="m-small", metric="prescaler-forecast-output-tokens",
                                     targetSize="2.5")).metricSpecs
    assert spec.targetSizeFloat == 2.5 and spec.targetSize == 3  # int rounded up


def test_get_metrics_fills_int_and_float(stub, service, clock):
    entry = service.state.cache.get("m-small")
    workload = service.state.workload("m-small")
    response = stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(workload="m-small"), metricName="s0-x"))
    (value,) = response.metricValues
    # As the external metrics API answers it (test_external_metrics): q0.9 2283.053 req/s / 400 / 0.8
    # = 7.13 -> 8 replicas.
    assert value.metricName == "s0-x"
    assert value.metricValue == 8 and value.metricValueFloat == 8.0
    response = stub.GetMetrics(pb.GetMetricsRequest(
        scaledObjectRef=ref(workload="m-small", metric="prescaler-forecast-requests")))
    (value,) = response.metricValues
    rate = forecast_value(entry, workload, "requests", clock())
    assert value.metricValueFloat == pytest.approx(rate)
    assert value.metricValue == math.ceil(rate)


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        pytest.param({}, grpc.StatusCode.INVALID_ARGUMENT, id="no-workload"),
        pytest.param({"workload": "nope"}, grpc.StatusCode.NOT_FOUND, id="unknown-workload"),
        pytest.param({"workload": "m-small", "metric": "cpu"}, grpc.StatusCode.NOT_FOUND, id="unknown-metric"),
        pytest.param({"workload": "m-small", "metric": "prescaler-forecast-prompt-tokens"},
                     grpc.StatusCode.NOT_FOUND, id="unconfigured-signal"),
        pytest.param({"workload": "m-small", "activationValue": "lots"},
                     grpc.StatusCode.INVALID_ARGUMENT, id="bad-activation"),
    ],
)
def test_errors_are_status_codes(stub, metadata, code):
    with pytest.raises(grpc.RpcError) as caught:
        stub.IsActive(ref(**metadata))
    assert caught.value.code() == code


def test_metric_spec_without_capacity_needs_target_size(stub):
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetMetricSpec(ref(workload="m-small", metric="prescaler-forecast-output-tokens"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "targetSize" in caught.value.details()


@pytest.mark.parametrize("raw", [
    pytest.param("0", id="zero"),
    pytest.param("-2", id="negative"),
    pytest.param("1e308", id="overflows-int64"),
    pytest.param("1e10", id="over-1e9"),
    pytest.param("inf", id="inf"),
    pytest.param("nan", id="nan"),
    pytest.param("lots", id="not-a-number"),
])
def test_a_bad_target_size_is_invalid_argument_naming_it(stub, raw):
    """1e308 was UNKNOWN "Exception calling application" (int64 overflow); 0 blamed the capacity."""
    with pytest.raises(grpc.RpcError) as caught:
        # requests has a capacity: an explicit targetSize is still checked, never replaced by it.
        stub.GetMetricSpec(ref(workload="m-small", metric="prescaler-forecast-requests", targetSize=raw))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details()
    assert f"scalerMetadata.targetSize {raw!r}" in details and "capacity" not in details


@pytest.mark.parametrize(("raw", "expected"), [
    pytest.param("1e9", 1e9, id="the-largest"),
    pytest.param("0.25", 0.25, id="fraction"),
    pytest.param("", 320.0, id="empty-is-the-capacity"),
])
def test_a_good_target_size_is_kept(stub, raw, expected):
    (spec,) = stub.GetMetricSpec(ref(workload="m-small", metric="prescaler-forecast-requests",
                                     targetSize=raw)).metricSpecs
    assert spec.targetSizeFloat == pytest.approx(expected)
    assert spec.targetSize == max(1, math.ceil(expected))


def test_unready_is_unavailable(untrained):
    service, _ = untrained
    server, port, servicer = start_grpc_server(service.state, host="127.0.0.1", port=0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.RpcError) as caught:
                pb_grpc.ExternalScalerStub(channel).GetMetrics(
                    pb.GetMetricsRequest(scaledObjectRef=ref(workload="m-small")))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        stop_grpc_server(server, servicer)


@pytest.mark.parametrize(("metadata", "code"), [
    pytest.param(None, grpc.StatusCode.UNAUTHENTICATED, id="no-token"),
    pytest.param((("authorization", "Bearer wrong"),), grpc.StatusCode.UNAUTHENTICATED, id="wrong-token"),
    pytest.param((("authorization", "Basic c2VjcmV0"),), grpc.StatusCode.UNAUTHENTICATED, id="other-scheme"),
    pytest.param((("authorization", "Bearer s3cret"),), None, id="the-token"),
])
def test_a_configured_token_is_required_of_every_call(service, metadata, code) -> None:
    """auth.bearer_token_file held for the HTTP API only: a client with no token got metrics over gRPC."""
    server, port, servicer = start_grpc_server(service.state, host="127.0.0.1", port=0, token="s3cret",
                                               stream_period_seconds=0.05)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            calls = [
                lambda: stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref(workload="m-small")),
                                        metadata=metadata),
                lambda: stub.IsActive(ref(workload="m-small"), metadata=metadata),
                lambda: next(stub.StreamIsActive(ref(workload="m-small"), metadata=metadata, timeout=5)),
            ]
            for call in calls:
                if code is None:
                    call()  # answers
                    continue
                with pytest.raises(grpc.RpcError) as caught:
                    call()
                assert caught.value.code() == code and "bearer token" in caught.value.details()
    finally:
        stop_grpc_server(server, servicer)


def _openssl(*args: str, cwd) -> None:
    import subprocess

    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""
    import shutil
    from types import SimpleNamespace

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "1", "-subj", "/CN=test-ca", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "1", "-extfile", f"{name}.ext", cwd=d)
    from forecaster.service.config import TLSSettings

    # The gRPC port alone verifies clients (the HTTPS port's probes carry no certificate).
    return SimpleNamespace(dir=d, tls=TLSSettings(cert_file=d / "server.crt", key_file=d / "server.key",
                                                  grpc_client_ca_file=d / "ca.crt"))


def test_with_client_certificates_keda_needs_no_token(service, pki) -> None:
    """KEDA's external scaler sends no call metadata, only a client certificate: with tls.client_ca_file
    the verified certificate is the credential; a client without one fails the handshake."""
    server, port, servicer = start_grpc_server(service.state, host="127.0.0.1", port=0, tls=pki.tls,
                                               token="s3cret")
    d = pki.dir
    try:
        with_cert = grpc.ssl_channel_credentials((d / "ca.crt").read_bytes(), (d / "client.key").read_bytes(),
                                                 (d / "client.crt").read_bytes())
        with grpc.secure_channel(f"127.0.0.1:{port}", with_cert) as channel:
            assert pb_grpc.ExternalScalerStub(channel).IsActive(ref(workload="m-small"), timeout=5).result is True
        without = grpc.ssl_channel_credentials((d / "ca.crt").read_bytes())
        with grpc.secure_channel(f"127.0.0.1:{port}", without) as channel:
            with pytest.raises(grpc.RpcError) as caught:
                pb_grpc.ExternalScalerStub(channel).IsActive(ref(workload="m-small"), timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        stop_grpc_server(server, servicer)
