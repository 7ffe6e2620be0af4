"""The forecaster service's HTTP API (FastAPI): /v1 REST, the external metrics API, health, metrics.

Handlers only read the cache and the scheduler's state; nothing here fits or predicts, so a request
costs a dictionary lookup and a slice whatever the models are doing in their worker processes.
"""

from __future__ import annotations

import hmac
import time
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel

from forecaster.contract import Forecast, WorkloadForecast, quantile_key
from forecaster.contract.durations import parse_timedelta
from forecaster.registry import ModelCard
from forecaster.service import external_metrics as em
from forecaster.service.cache import slice_forecast
from forecaster.service.retrain import RetrainDecision
from forecaster.service.state import NotReady, ServiceState, UnknownMetric, UnknownWorkload, not_ready_reason

# Module level: handlers' string annotations (from __future__) must resolve at import time.
_BEARER = HTTPBearer(auto_error=False, description="configured by auth.bearer_token_file")
WorkloadName = Annotated[str, Path(description="workload name (from the config or a PredictiveAutoscaler)",
                                    max_length=63)]


class WorkloadSummary(BaseModel):
    name: str
    origin: str | None = None  # "PredictiveAutoscaler llm/m-small", "config workloads[m-small]"
    model_name: str
    namespace: str | None
    labels: dict[str, str]
    signals: list[str]
    quantile: float
    served_quantiles: list[float]
    lead_time_seconds: float
    interval_seconds: float
    step_seconds: int
    max_horizon_seconds: float
    ready: bool
    retraining: bool
    serving: dict[str, str]
    forecast_generated_at: datetime | None
    last_retrain: datetime | None
    last_error: str | None  # the last retrain's and last refresh's failures, while they are current
    not_ready_reason: str | None = None  # why it has no forecast to answer from (the 503's text)


class WorkloadSourceStatus(BaseModel):
    """Where the workloads come from, its last listing, and what it skipped and why."""

    source: str
    resync_seconds: float | None
    synced_at: datetime | None
    error: str | None
    skipped: dict[str, str]


class RetrainAccepted(BaseModel):
    workload: str
    queued: bool
    message: str


class KedaMetric(BaseModel):
    """The metrics-api scaler's body: KEDA reads `value` (valueLocation: value)."""

    workload: str
    metric: str
    value: float
    timestamp: datetime


class Health(BaseModel):
    status: str
    detail: dict[str, Any] = {}


class Metrics:
    """The service's own Prometheus metrics, on an explicit registry (never the global one)."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.requests = Counter("prescaler_forecaster_http_requests_total", "HTTP requests",
                                ["route", "code"], registry=registry)
        self.latency = Histogram("prescaler_forecaster_http_request_seconds", "HTTP handling time",
                                 ["route"], registry=registry,
                                 buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1))
        self.decisions = Counter("prescaler_forecaster_retrain_decisions_total", "retrain outcomes",
                                 ["workload", "signal", "outcome"], registry=registry)
        self.forecast_age = Gauge("prescaler_forecaster_forecast_age_seconds",
                                  "age of the cached forecast", ["workload"], registry=registry)
        self.ready = Gauge("prescaler_forecaster_ready", "1 when every workload serves a model",
                           registry=registry)

    def on_decision(self, decision: RetrainDecision) -> None:
        self.decisions.labels(decision.workload, decision.signal, decision.outcome).inc()


class _Observe:
    """Counts and times requests per route template. A plain ASGI middleware: Starlette's
    BaseHTTPMiddleware runs each request through an extra task and stream, which costs latency."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", "unmatched")
            self.metrics.latency.labels(label).observe(time.perf_counter() - started)
            self.metrics.requests.labels(label, str(status["code"])).inc()


def _load_token(path) -> str | None:
    if path is None:
        return None
    try:
        token = path.read_text().strip()
    except OSError as error:
        raise ValueError(f"auth.bearer_token_file {path}: cannot read: {error.strerror}") from error
    if not token:
        raise ValueError(f"auth.bearer_token_file {path} is empty")
    return token


def _unprocessable(field: str, message: str, value: Any) -> RequestValidationError:
    return RequestValidationError([{
        "type": "value_error", "loc": ("query", field), "msg": message, "input": value,
    }])


def _parse_quantiles(raw: str | None, served: tuple[float, ...]) -> list[float] | None:
    if raw is None:
        return None
    try:
        qs = sorted({float(x) for x in raw.split(",") if x.strip()})
        if not qs:
            raise ValueError("empty")
        keys = [quantile_key(q) for q in qs]
    except ValueError:
        raise _unprocessable("quantiles", "quantiles must be a comma-separated list of numbers "
                             "strictly between 0 and 1, e.g. 0.5,0.9", raw) from None
    served_keys = {quantile_key(q) for q in served}
    missing = [k for k in keys if k not in served_keys]
    if missing:
        raise _unprocessable("quantiles", f"quantiles {missing} are not served; served: "
                             f"{sorted(served_keys, key=float)} (set workloads[].quantiles)", raw)
    return qs


def _parse_duration(field: str, raw: str | None, default: float, *, step: int, maximum: float) -> int:
    if raw is None:
        seconds = default
    else:
        try:
            # The CRD's grammar, positive: a zero horizon or step asks for nothing.
            seconds = parse_timedelta(raw).total_seconds()
        except ValueError as error:
            raise _unprocessable(field, str(error), raw) from None
    if seconds > maximum:
        raise _unprocessable(field, f"{field} {raw or seconds} exceeds the maximum of {int(maximum)} s", raw)
    if field == "step" and seconds % step:
        raise _unprocessable(field, f"step {raw} must be a multiple of the model's bin ({step} s)", raw)
    return int(seconds)


def create_app(state: ServiceState, *, token: str | None = None,
               metrics_registry: CollectorRegistry | None = None,
               lifespan: Any = None) -> FastAPI:
    metrics = Metrics(metrics_registry or CollectorRegistry())
    state.scheduler.on_decision = metrics.on_decision
    app = FastAPI(
        title="prescaler forecaster",
        version="0.1.0",
        description="Load forecasts for LLM inference workloads, as REST, as the Kubernetes external "
                    "metrics API and as a KEDA external scaler.",
        lifespan=lifespan,
        # One schema per model, from its fields: ModelCard orders its JSON with a wrap serializer typed
        # `-> dict[str, Any]`, whose serialization-mode schema would document /cards as an opaque object.
        separate_input_output_schemas=False,
    )
    app.state.service = state
    app.state.metrics = metrics

    async def authenticate(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> None:
        if token is None:
            return
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "missing bearer token",
                                headers={"WWW-Authenticate": 'Bearer realm="prescaler"'})
        if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(401, "invalid bearer token", headers={
                "WWW-Authenticate": 'Bearer realm="prescaler", error="invalid_token"'})

    app.add_middleware(_Observe, metrics=metrics)

    def _is_k8s(request: Request) -> bool:
        return request.url.path.startswith("/apis")

    @app.exception_handler(UnknownWorkload)
    @app.exception_handler(UnknownMetric)
    async def _not_found(request: Request, error: Exception) -> JSONResponse:
        if _is_k8s(request):
            return JSONResponse(em.status_error(404, "NotFound", str(error)), status_code=404)
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(NotReady)
    async def _not_ready(request: Request, error: NotReady) -> JSONResponse:
        retry = str(max(1, int(min((w.interval.total_seconds() for w in state.workloads()), default=5))))
        body = (em.status_error(503, "ServiceUnavailable", str(error)) if _is_k8s(request)
                else {"detail": str(error)})
        return JSONResponse(body, status_code=503, headers={"Retry-After": retry})

    # --- health and metrics ------------------------------------------------------------------
    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, tags=["health"],
             responses={503: {"model": Health, "description": "not every workload serves a model yet"}})
    async def readyz():
        reasons = state.not_ready_reasons()
        detail = {
            name: {"ready": s.ready, "forecast": state.cache.get(name) is not None,
                   "serving": {sig: v.card.model for sig, v in s.serving.items()},
                   "last_error": s.last_error, "reason": reasons.get(name)}
            for name, s in state.scheduler.workloads.items()
        }
        ok = state.ready()
        metrics.ready.set(1 if ok else 0)
        if ok:
            return Health(status="ready", detail=detail)
        return JSONResponse(Health(status="not ready", detail=detail).model_dump(mode="json"),
                            status_code=503, headers={"Retry-After": "5"})

    aged: set[str] = set()  # workloads with a forecast_age series

    @app.get("/metrics", response_class=PlainTextResponse, tags=["health"])
    async def prometheus_metrics() -> PlainTextResponse:
        now = state.clock()
        current = set()
        for name in state.scheduler.workloads:
            entry = state.cache.get(name)
            if entry is not None:
                metrics.forecast_age.labels(name).set((now - entry.generated_at).total_seconds())
                current.add(name)
        for name in aged - current:  # no longer served (discovery): no series frozen at its last age
            metrics.forecast_age.remove(name)
        aged.clear()
        aged.update(current)
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # --- /v1 ---------------------------------------------------------------------------------
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authenticate)],
                   responses={401: {"description": "bearer token missing or wrong"}})
    # FastAPI's own type for `responses` (a dict is invariant: dict[int, dict[str, str]] is refused).
    not_found: dict[int | str, dict[str, Any]] = {404: {"description": "unknown workload"}}
    unready: dict[int | str, dict[str, Any]] = {
        503: {"description": "no model yet; retry after Retry-After seconds"}}

    def summary(name: str) -> WorkloadSummary:
        w = state.workload(name)
        s = state.scheduler.workloads[name]  # the same event-loop turn: the set cannot change between
        entry = state.cache.get(name)
        return WorkloadSummary(
            name=w.name, origin=s.origin, model_name=w.model_name, namespace=w.namespace, labels=w.labels,
            signals=list(w.signals), quantile=w.quantile, served_quantiles=list(w.served_quantiles),
            lead_time_seconds=w.lead_time.total_seconds(), interval_seconds=w.interval.total_seconds(),
            step_seconds=w.bin_seconds, max_horizon_seconds=w.max_horizon.total_seconds(),
            ready=s.ready, retraining=s.retraining,
            serving={sig: f"{v.card.model}@{v.card.version}" for sig, v in s.serving.items()},
            forecast_generated_at=entry.generated_at if entry else None,
            last_retrain=s.last_retrain, last_error=s.last_error,
            not_ready_reason=not_ready_reason(name, s, entry),
        )

    @v1.get("/workloads", response_model=list[WorkloadSummary], tags=["workloads"])
    async def list_workloads() -> list[WorkloadSummary]:
        return [summary(w.name) for w in state.workloads()]

    @v1.get("/workload-source", response_model=WorkloadSourceStatus, tags=["workloads"])
    async def workload_source() -> WorkloadSourceStatus:
        """Where the workloads come from (the config, or the PredictiveAutoscalers), and each object
        that is not served with the reason (the object and its field)."""
        status = state.scheduler.source_status
        return WorkloadSourceStatus(source=status.description, resync_seconds=status.resync_seconds,
                                    synced_at=status.synced_at, error=status.error, skipped=dict(status.skipped))

    @v1.get("/workloads/{name}", response_model=WorkloadSummary, tags=["workloads"], responses=not_found)
    async def get_workload(name: WorkloadName) -> WorkloadSummary:
        return summary(name)

    def _sliced(name: str, signal: str | None, horizon: str | None, quantiles: str | None,
                step: str | None) -> dict[str, Forecast]:
        w = state.workload(name)
        if signal is not None and signal not in w.signals:
            raise _unprocessable("signal", f"signal {signal!r} is not configured for {name} "
                                 f"(has {sorted(w.signals)})", signal)
        qs = _parse_quantiles(quantiles, w.served_quantiles)
        max_h = w.max_horizon.total_seconds()
        horizon_s = _parse_duration("horizon", horizon, max_h, step=w.bin_seconds, maximum=max_h)
        step_s = _parse_duration("step", step, w.bin_seconds, step=w.bin_seconds, maximum=max_h)
        entry = state.entry(name)
        now = state.clock()
        return {
            sig: slice_forecast(f, start=now, horizon=timedelta(seconds=horizon_s), quantiles=qs,
                                step_seconds=step_s)
            for sig, f in entry.forecast.forecasts.items() if signal is None or sig == signal
        }

    horizon_q = Query(None, description="how far ahead, e.g. 2h (default: max_horizon)", max_length=32)
    quantiles_q = Query(None, description="comma-separated served quantiles, e.g. 0.5,0.9", max_length=200)
    step_q = Query(None, description="bin of the answer, a multiple of the model's bin, e.g. 30m",
                   max_length=32)

    @v1.get("/workloads/{name}/forecast", response_model=WorkloadForecast, tags=["forecasts"],
            responses={**not_found, **unready})
    async def workload_forecast(name: WorkloadName, horizon: str | None = horizon_q,
                          quantiles: str | None = quantiles_q, step: str | None = step_q) -> WorkloadForecast:
        return WorkloadForecast(workload=name, forecasts=_sliced(name, None, horizon, quantiles, step))

    @v1.get("/workloads/{name}/forecast/{signal}", response_model=Forecast, tags=["forecasts"],
            responses={**not_found, **unready})
    async def signal_forecast(name: WorkloadName, signal: Annotated[str, Path(max_length=32)],
                        horizon: str | None = horizon_q, quantiles: str | None = quantiles_q,
                        step: str | None = step_q) -> Forecast:
        return _sliced(name, signal, horizon, quantiles, step)[signal]

    @v1.get("/workloads/{name}/cards", response_model=dict[str, ModelCard], tags=["models"],
            responses=not_found)
    async def model_cards(name: WorkloadName) -> dict[str, ModelCard]:
        """The registry's model card of each signal's serving model (selection and backtest included)."""
        state.workload(name)
        return {sig: v.card for sig, v in state.scheduler.workloads[name].serving.items()}

    @v1.get("/workloads/{name}/decisions", response_model=list[RetrainDecision], tags=["models"],
            responses=not_found)
    async def decisions(name: WorkloadName,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[RetrainDecision]:
        state.workload(name)
        mine = [d for d in state.scheduler.decisions if d.workload == name]
        return mine[-limit:]

    @v1.post("/workloads/{name}/retrain", status_code=202, response_model=RetrainAccepted,
             tags=["models"], responses=not_found)
    async def retrain(name: WorkloadName) -> RetrainAccepted:
        state.workload(name)
        queued = state.scheduler.request_retrain(name)
        message = "retrain queued for the next tick" if queued else "a retrain is already queued or running"
        return RetrainAccepted(workload=name, queued=queued, message=message)

    @v1.get("/keda/{name}", response_model=KedaMetric, tags=["keda"],
            responses={**not_found, **unready})
    async def keda_metric(name: WorkloadName,
                    metric: Annotated[str, Query(max_length=100)] = em.DESIRED_REPLICAS) -> KedaMetric:
        """For KEDA's metrics-api scaler: `valueLocation: value`."""
        reading = state.read_metric(name, metric)
        return KedaMetric(workload=name, metric=metric, value=reading.value, timestamp=reading.generated_at)

    app.include_router(v1)

    # --- external.metrics.k8s.io -------------------------------------------------------------
    k8s = APIRouter(dependencies=[Depends(authenticate)], tags=["external metrics"])

    @k8s.get("/apis")
    async def apis() -> dict:
        return em.api_group_list()

    @k8s.get(f"/apis/{em.GROUP}")
    async def api_group() -> dict:
        return em.api_group()

    @k8s.get(f"/apis/{em.GROUP_VERSION}")
    async def api_resources() -> dict:
        return em.api_resource_list(state.metric_names)

    @k8s.get(f"/apis/{em.GROUP_VERSION}/namespaces/{{namespace}}/{{metric}}",
             responses={404: {"description": "unknown metric"}, 503: {"description": "no forecast yet"}})
    async def external_metric(namespace: Annotated[str, Path(max_length=253)],
                        metric: Annotated[str, Path(max_length=253)],
                        labelSelector: Annotated[str | None, Query(max_length=1000)] = None):  # noqa: N803
        known = state.metric_names
        if metric not in known:
            raise UnknownMetric(f"unknown external metric {metric!r}; known: {', '.join(known)}")
        try:
            requirements = em.parse_selector(labelSelector)
        except em.SelectorError as error:
            return JSONResponse(em.status_error(400, "BadRequest", str(error)), status_code=400)
        now = state.clock()
        items = []
        for w in state.workloads():
            if w.namespace is not None and w.namespace != namespace:
                continue
            labels = w.metric_labels()
            if not em.selector_matches(requirements, {**labels, "namespace": namespace}):
                continue
            if em.signal_of_metric(metric) not in (None, *w.signals):
                continue
            reading = state.read_metric(w.name, metric, now)
            items.append((metric, labels, now, reading.value))
        # A JSONResponse skips FastAPI's generic encoder: this is the HPA's hot path.
        return JSONResponse(em.metric_value_list(items))

    app.include_router(k8s)
    return app

