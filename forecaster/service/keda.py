"""KEDA external scaler over gRPC (externalscaler.proto), answering from the same cache as REST.

ScaledObject trigger metadata (scalerMetadata):
  workload        the service's workload name (required)
  metric          "prescaler-desired-replicas" (default) or "prescaler-forecast-<signal>"
  targetSize      the per-replica target for a forecast metric, > 0 and <= 1e9; default: the
                  workload's capacity (per_replica rate x target_utilization); always 1 (and not
                  read) for desired replicas
  activationValue IsActive is true when the metric exceeds this (default 0)

KEDA builds an HPA whose target is AverageValue = targetSize, so the HPA computes
ceil(metricValue / targetSize) replicas. KEDA reads the float fields when set (KEDA >= 2.11:
metricValueFloat, targetSizeFloat) and the int64 ones otherwise; we fill both, rounding the
integers up so an older KEDA never provisions below the forecast.

Workers: grpc runs each call on a thread of one pool, and a StreamIsActive stream (KEDA's
external-push trigger, one per ScaledObject) holds its thread for as long as the stream is open. So
the streams are bounded (`max_streams`; the one over the limit is refused with RESOURCE_EXHAUSTED)
and the pool has `unary_workers` threads beyond them, which IsActive, GetMetricSpec and GetMetrics
always find free. A stream waits between pushes on an event its cancellation sets
(context.add_callback), so a client that goes away frees its thread at once, not a push period later.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from concurrent import futures
from typing import Any

import grpc

from forecaster.proto import externalscaler_pb2 as pb
from forecaster.proto import externalscaler_pb2_grpc as pb_grpc
from forecaster.service.external_metrics import DESIRED_REPLICAS
from forecaster.service.state import NotReady, ServiceState, UnknownMetric, UnknownWorkload, signal_of

# KEDA opens one stream per ScaledObject with an external-push trigger; past this many the scaler
# refuses new ones rather than letting them take the threads the unary calls need.
DEFAULT_MAX_STREAMS = 32
DEFAULT_UNARY_WORKERS = 8
# How often a waiting stream looks at context.is_active() in case its cancellation callback did not
# fire (add_callback is grpc's documented way, this is the belt to its braces).
DEFAULT_CANCEL_POLL_SECONDS = 1.0
# A per-replica target above this is a typo, not a capacity (1e9 requests or tokens per second per
# replica); it also keeps ceil(target) inside the int64 targetSize field (1e308 overflowed it).
MAX_TARGET_SIZE = 1e9


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


def _target_size(metadata: dict[str, str], default: float | None) -> float | None:
    """scalerMetadata.targetSize: absent or empty gives the default; else a number in (0, 1e9]."""
    raw = metadata.get("targetSize")
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ScalerMetadataError(f"scalerMetadata.targetSize {raw!r} is not a number") from None
    if not math.isfinite(value) or value <= 0 or value > MAX_TARGET_SIZE:
        raise ScalerMetadataError(
            f"scalerMetadata.targetSize {raw!r} must be a finite number > 0 and <= {MAX_TARGET_SIZE:g} "
            "(the per-replica target of the metric)")
    return value


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} ({value}) must be > 0")


def _ceil_int(value: float) -> int:
    return int(math.ceil(value - 1e-9))


class ExternalScaler(pb_grpc.ExternalScalerServicer):
    def __init__(self, state: ServiceState, *, stream_period_seconds: float | None = None,
                 stop: threading.Event | None = None, max_streams: int = DEFAULT_MAX_STREAMS,
                 cancel_poll_seconds: float = DEFAULT_CANCEL_POLL_SECONDS):
        _positive("max_streams", max_streams)
        _positive("cancel_poll_seconds", cancel_poll_seconds)
        self.state = state
        self.stream_period_seconds = stream_period_seconds
        self.stop = stop or threading.Event()
        self.max_streams = max_streams
        self.cancel_poll_seconds = cancel_poll_seconds
        # One wake-up event per open stream: set by its cancellation, or by shutdown() for all.
        self._streams: set[threading.Event] = set()
        self._streams_lock = threading.Lock()

    @property
    def active_streams(self) -> int:
        """The StreamIsActive streams holding a worker now."""
        with self._streams_lock:
            return len(self._streams)

    def shutdown(self) -> None:
        """End every stream's wait now (a stream otherwise sleeps up to its push period)."""
        self.stop.set()
        with self._streams_lock:
            for wake in self._streams:
                wake.set()

    def _open_stream(self, wake: threading.Event) -> bool:
        with self._streams_lock:
            if len(self._streams) >= self.max_streams:
                return False
            self._streams.add(wake)
            return True

    def _close_stream(self, wake: threading.Event) -> None:
        with self._streams_lock:
            self._streams.discard(wake)

    def _pause(self, wake: threading.Event, context: grpc.ServicerContext, period: float) -> None:
        """Wait `period` seconds, or less when the call ends or the server stops."""
        deadline = time.monotonic() + period
        while not wake.is_set() and not self.stop.is_set() and context.is_active():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            wake.wait(min(left, self.cancel_poll_seconds))

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
        target = _target_size(metadata, default)
        if target is None:
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
        """Check IsActive every interval (or stream_period_seconds) and push it when it changes."""
        wake = threading.Event()
        if not self._open_stream(wake):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"too many concurrent StreamIsActive streams: the limit is {self.max_streams}; "
                          "IsActive answers the same without a stream")
        # The slot is given back when the generator ends: returning, raising (abort), or being
        # closed by grpc once the client is gone.
        try:
            if not context.add_callback(wake.set):
                return  # the call has already ended
            try:
                workload, _, _ = self._resolve(request)
            except (ScalerMetadataError, UnknownWorkload, UnknownMetric) as error:
                self._abort(context, error)
            period = self.stream_period_seconds or self.state.workload(workload).interval.total_seconds()
            last = None
            while context.is_active() and not self.stop.is_set() and not wake.is_set():
                try:
                    active = self._active(request)
                except NotReady:
                    active = None  # nothing to say yet; KEDA keeps its last state
                if active is not None and active != last:
                    yield pb.IsActiveResponse(result=active)
                    last = active
                self._pause(wake, context, period)
        finally:
            self._close_stream(wake)

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
                      max_streams: int = DEFAULT_MAX_STREAMS, unary_workers: int = DEFAULT_UNARY_WORKERS,
                      cancel_poll_seconds: float = DEFAULT_CANCEL_POLL_SECONDS,
                      token: str | None = None) -> tuple[grpc.Server, int, ExternalScaler]:
    """Start the scaler on host:port (0: a free port); returns (server, bound port, servicer).

    The pool has max_streams + unary_workers threads: open streams take at most max_streams of them
    (the module docstring says why). `token` (auth.bearer_token_file's): required of every call
    unless TLS verifies client certificates (BearerTokenInterceptor says why)."""
    _positive("unary_workers", unary_workers)
    servicer = ExternalScaler(state, stream_period_seconds=stream_period_seconds, max_streams=max_streams,
                              cancel_poll_seconds=cancel_poll_seconds)
    client_ca = tls.grpc_client_ca if tls is not None else None
    mutual_tls = client_ca is not None
    interceptors = [BearerTokenInterceptor(token)] if token and not mutual_tls else []
    pool = futures.ThreadPoolExecutor(max_workers=max_streams + unary_workers, thread_name_prefix="keda")
    server = grpc.server(pool, interceptors=interceptors)
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
    servicer.shutdown()  # wakes the StreamIsActive loops so the grace period is enough
    server.stop(grace).wait()
