"""KEDA external scaler over gRPC (externalscaler.proto), answering from the same cache as REST.

ScaledObject trigger metadata (scalerMetadata):
  workload        the service's workload name (required)
  metric          "prescaler-desired-replicas" (default) or "prescaler-forecast-<signal>"
  targetSize      the per-replica target for a forecast metric; default: the workload's capacity
                  (per_replica rate x target_utilization); always 1 for desired replicas
  activationValue IsActive is true when the metric exceeds this (default 0)

KEDA builds an HPA whose target is AverageValue = targetSize, so the HPA computes
ceil(metricValue / targetSize) replicas. KEDA reads the float fields when set (KEDA >= 2.11:
metricValueFloat, targetSizeFloat) and the int64 ones otherwise; we fill both, rounding the
integers up so an older KEDA never provisions below the forecast.
"""

from __future__ import annotations

import hmac
import math
import threading
from concurrent import futures
from typing import Any

import grpc

from forecaster.proto import externalscaler_pb2 as pb
from forecaster.proto import externalscaler_pb2_grpc as pb_grpc
from forecaster.service.external_metrics import DESIRED_REPLICAS
from forecaster.service.state import NotReady, ServiceState, UnknownMetric, UnknownWorkload, signal_of


class ScalerMetadataError(ValueError):
    pass


def _float(metadata: dict[str, str], key: str, default: float | None) -> float | None:
    raw = metadata.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ScalerMetadataError(f"scalerMetadata.{key} {raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ScalerMetadataError(f"scalerMetadata.{key} {raw!r} must be a finite number >= 0")
    return value


def _ceil_int(value: float) -> int:
    return int(math.ceil(value - 1e-9))


class ExternalScaler(pb_grpc.ExternalScalerServicer):
    def __init__(self, state: ServiceState, *, stream_period_seconds: float | None = None,
                 stop: threading.Event | None = None):
        self.state = state
        self.stream_period_seconds = stream_period_seconds
        self.stop = stop or threading.Event()

    # --- metadata ---------------------------------------------------------------------------
    def _resolve(self, ref: Any) -> tuple[str, str, dict[str, str]]:
        metadata = dict(ref.scalerMetadata)
        workload = metadata.get("workload", "")
        if not workload:
            raise ScalerMetadataError("scalerMetadata.workload is required")
        metric = metadata.get("metric") or DESIRED_REPLICAS
        # One reading of the workload: the set may change (discovery) while this thread answers.
        settings = self.state.workload(workload)
        signal = signal_of(metric)
        known = self.state.metric_names
        if metric not in known:
            raise UnknownMetric(f"scalerMetadata.metric {metric!r} is unknown; known: {', '.join(known)}")
        if signal is not None and signal not in settings.signals:
            raise UnknownMetric(f"workload {workload!r} has no signal {signal!r}")
        return workload, metric, metadata

    def _target(self, workload: str, metric: str, metadata: dict[str, str]) -> float:
        signal = signal_of(metric)
        if signal is None:
            return 1.0  # desired replicas: each replica takes one
        w = self.state.workload(workload)
        default = None
        if signal in w.capacity.per_replica:
            default = w.capacity.per_replica[signal] * w.capacity.target_utilization
        target = _float(metadata, "targetSize", default)
        if target is None or target <= 0:
            raise ScalerMetadataError(
                f"scalerMetadata.targetSize is required and > 0 for {metric}: workload {workload!r} "
                f"has no capacity.per_replica for {signal!r}")
        return target

    def _metric_name(self, ref: Any, metric: str) -> str:
        # KEDA prefixes the trigger index ("s0-..."); the name only has to be stable per ScaledObject.
        return f"{metric}-{ref.namespace or 'default'}-{ref.name}"

    def _abort(self, context: grpc.ServicerContext, error: Exception) -> None:
        if isinstance(error, (UnknownWorkload, UnknownMetric)):
            context.abort(grpc.StatusCode.NOT_FOUND, str(error))
        if isinstance(error, NotReady):
            context.abort(grpc.StatusCode.UNAVAILABLE, str(error))
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))

    def _active(self, ref: Any) -> bool:
        workload, metric, metadata = self._resolve(ref)
        threshold = _float(metadata, "activationValue", 0.0) or 0.0
        return self.state.read_metric(workload, metric).value > threshold

    # --- RPCs -------------------------------------------------------------------------------
    def IsActive(self, request, context):  # noqa: N802 - gRPC method names
        try:
            return pb.IsActiveResponse(result=self._active(request))
        except (ScalerMetadataError, UnknownWorkload, UnknownMetric, NotReady) as error:
            self._abort(context, error)

    def StreamIsActive(self, request, context):  # noqa: N802
        """Push IsActive every interval (or stream_period_seconds), and at once when it changes."""
        try:
            workload, _, _ = self._resolve(request)
        except (ScalerMetadataError, UnknownWorkload, UnknownMetric) as error:
            self._abort(context, error)
        period = self.stream_period_seconds or self.state.workload(workload).interval.total_seconds()
        last = None
        while context.is_active() and not self.stop.is_set():
            try:
                active = self._active(request)
            except NotReady:
                active = None  # nothing to say yet; KEDA keeps its last state
            if active is not None and active != last:
                yield pb.IsActiveResponse(result=active)
                last = active
            self.stop.wait(period)

    def GetMetricSpec(self, request, context):  # noqa: N802
        try:
            workload, metric, metadata = self._resolve(request)
            target = self._target(workload, metric, metadata)
        except (ScalerMetadataError, UnknownWorkload, UnknownMetric) as error:
            self._abort(context, error)
        return pb.GetMetricSpecResponse(metricSpecs=[pb.MetricSpec(
            metricName=self._metric_name(request, metric),
            targetSize=max(1, _ceil_int(target)), targetSizeFloat=target,
        )])

    def GetMetrics(self, request, context):  # noqa: N802
        ref = request.scaledObjectRef
        try:
            workload, metric, _ = self._resolve(ref)
            value = self.state.read_metric(workload, metric).value
        except (ScalerMetadataError, UnknownWorkload, UnknownMetric, NotReady) as error:
            self._abort(context, error)
        name = request.metricName or self._metric_name(ref, metric)
        return pb.GetMetricsResponse(metricValues=[pb.MetricValue(
            metricName=name, metricValue=_ceil_int(value), metricValueFloat=value,
        )])


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Refuse a call without `authorization: Bearer <token>` metadata (UNAUTHENTICATED), as the HTTP
    API refuses a request without the header (auth.bearer_token_file).

    KEDA's external scaler client sends no call metadata: it authenticates with TLS client
    certificates only (its trigger's caCert, tlsClientCert, tlsClientKey). So where the gRPC port
    verifies client certificates (tls.grpc_client_ca_file, else tls.client_ca_file), a certificate
    verified in the handshake is the credential and this check is not installed; without one, only
    clients that send the token (not KEDA) can use the scaler.
    """

    def __init__(self, token: str):
        self._token = token.encode()

    def _refusal(self, handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
        def deny(_request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                deny, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        return grpc.unary_unary_rpc_method_handler(
            deny, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)

    def intercept_service(self, continuation, handler_call_details):  # noqa: ANN001 - grpc's signature
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        sent = dict(handler_call_details.invocation_metadata or ()).get("authorization", "")
        scheme, _, credentials = sent.partition(" ")
        if scheme.lower() != "bearer" or not credentials:
            return self._refusal(handler, "missing bearer token (authorization metadata)")
        if not hmac.compare_digest(credentials.strip().encode(), self._token):
            return self._refusal(handler, "invalid bearer token")
        return handler


def start_grpc_server(state: ServiceState, *, host: str, port: int, tls: Any = None,
                      stream_period_seconds: float | None = None,
                      max_workers: int = 8, token: str | None = None) -> tuple[grpc.Server, int, ExternalScaler]:
    """Start the scaler on host:port (0: a free port); returns (server, bound port, servicer).

    `token` (auth.bearer_token_file's): required of every call unless TLS verifies client
    certificates (BearerTokenInterceptor says why)."""
    client_ca = tls.grpc_client_ca if tls is not None else None
    mutual_tls = client_ca is not None
    interceptors = [BearerTokenInterceptor(token)] if token and not mutual_tls else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="keda"),
                         interceptors=interceptors)
    servicer = ExternalScaler(state, stream_period_seconds=stream_period_seconds)
    pb_grpc.add_ExternalScalerServicer_to_server(servicer, server)
    address = f"{host}:{port}"
    if tls is not None:
        credentials = grpc.ssl_server_credentials(
            [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
            root_certificates=client_ca.read_bytes() if client_ca is not None else None,
            require_client_auth=mutual_tls,
        )
        bound = server.add_secure_port(address, credentials)
    else:
        bound = server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"cannot bind the gRPC scaler to {address}")
    server.start()
    return server, bound, servicer


def stop_grpc_server(server: grpc.Server, servicer: ExternalScaler, grace: float = 1.0) -> None:
    servicer.stop.set()  # ends StreamIsActive loops so the grace period is enough
    server.stop(grace).wait()
