"""One PredictiveAutoscaler, one sync: read, decide (controller.policy), act, report.

`Reconciler.reconcile_one(obj, now)` is the whole of one sync for one resource; it never raises for
data problems (a bad spec, a missing target, another autoscaler, an outage): each becomes a condition,
an Event on a transition, a metric, and a retry next period. What each boundary error falls back to:

- MetricsUnavailable (Prometheus down)   -> every metric unavailable: the policy holds (never scales blind)
- ForecastUnavailable (forecaster down)  -> no forecast: the predictive stage abstains (ForecastMissing)
- NotFound on the target's /scale        -> AbleToScale=False FailedGetScale, nothing else
- ScaleConflict on the scale patch       -> re-read /scale, patch once more with the fresh version
- KubeUnavailable (500s, timeouts)       -> error counted by type, nothing written, next period retries
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

from .conditions import ready_condition
from .errors import ForecastUnavailable, KubeError, KubeUnavailable, MetricsUnavailable, NotFound, ScaleConflict
from .forecast_client import ForecastProvider
from .kube import KubeClient, Scale, TargetRef
from .live_metrics import PrometheusLiveMetrics, default_signal_query
from .resource import (
    Autoscaler,
    PendingScaleUp,
    PredictiveAutoscalerStatus,
    SpecCache,
    StatusCondition,
    parse_autoscaler,
    parse_rfc3339,
    rfc3339,
)
from .server import ControllerMetrics

if TYPE_CHECKING:  # the policy package is imported where a sync first runs, as before
    from controller.policy.spec import MetricSpec, PredictiveAutoscalerSpec
    from controller.policy.types import Decision, MetricObservation, PodCondition, PolicyState
    from forecaster.contract import Forecast

log = logging.getLogger("prescaler.controller")

DEFAULT_LEAD_TIME_SECONDS = 300.0  # used by `leadTime: auto` until a cold start has been measured
LEAD_TIME_SAMPLES = 20             # the p90 is over this many recent cold starts
PENDING_SCALE_UP_TIMEOUT = 3600.0  # a scale-up not ready after an hour is not a cold start sample


@dataclass
class Clients:
    """The reconciler's surroundings, injected: tests pass fakes at the HTTP edge, never mocks."""

    kube: KubeClient
    metrics: PrometheusLiveMetrics | None = None
    forecasts: ForecastProvider | None = None


@dataclass
class Cycle:
    """Per-cycle caches: other autoscalers are listed once per namespace per cycle, not per resource."""

    hpas: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    scaled_objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # The PredictiveAutoscalers the controller already holds this cycle (its cache or list); None:
    # list them per namespace when one is needed (a reconcile called on its own, as tests do).
    autoscalers: list[dict[str, Any]] | None = None
    _autoscalers_by_target: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    _indexed: set[str] = field(default_factory=set)  # namespaces listed ("*": all, from `autoscalers`)
    pods: dict[str, dict[tuple[str, str], list[dict[str, Any]]]] = field(default_factory=dict)


def parse_equality_selector(selector: str) -> dict[str, str] | None:
    """`a=b,c=d` (what /scale status.selector holds for matchLabels) -> dict; None for set-based terms."""
    labels: dict[str, str] = {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, sep, value = term.partition("=")
        if not sep or key.endswith("!") or any(ch in term for ch in "()!") or " in " in term:
            return None
        labels[key.strip()] = value.lstrip("=").strip()
    return labels


@dataclass
class Outcome:
    key: str
    reason: str
    desired: int | None = None
    current: int | None = None
    scaled: bool = False
    error: str | None = None


def p90(values: list[float]) -> float:
    """The 90th percentile by the nearest-rank method (robust to one slow outlier among few samples)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def pod_condition(pod: Mapping[str, Any]) -> PodCondition:
    """How the HPA groups a pod (replica_calculator.go groupPods): Ready, Unready or Ignored."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    phase = status.get("phase")
    if meta.get("deletionTimestamp") or phase in ("Failed", "Succeeded"):
        return "Ignored"
    if phase != "Running":
        return "Unready"
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return "Ready" if ready else "Unready"


def _targets(obj: Mapping[str, Any], ref: TargetRef) -> bool:
    target = (obj.get("spec") or {}).get("scaleTargetRef") or {}
    kind = target.get("kind", "Deployment")  # KEDA defaults kind to Deployment
    group = (target.get("apiVersion") or "apps/v1").rpartition("/")[0]
    return target.get("name") == ref.name and kind == ref.kind and group == ref.api_version.rpartition("/")[0]


ConditionStatus = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class SyncContext:
    """One sync of one autoscaler: what every step reads, and the status the steps build together.

    `status` starts as a copy of the status read and is changed in place by the steps; `_finish`
    writes it, once. `old_conditions` are the conditions as read, so a condition keeps its
    lastTransitionTime while its status holds and an Event fires only on a transition (as the HPA's
    setCondition does). `spec` is `pa.spec` with its type: None when the spec does not parse.
    """

    pa: Autoscaler
    spec: PredictiveAutoscalerSpec | None
    now: datetime
    status: PredictiveAutoscalerStatus
    old_conditions: Mapping[str, StatusCondition]

    @classmethod
    def begin(cls, pa: Autoscaler, now: datetime) -> SyncContext:
        status = pa.status.model_copy(deep=True)
        status.last_sync_time = rfc3339(now)
        status.observed_generation = pa.generation
        return cls(pa=pa, spec=pa.spec, now=now, status=status,
                   old_conditions={c.type: c for c in pa.status.conditions})

    def set_condition(self, type_: str, value: ConditionStatus, reason: str, message: str) -> None:
        """Replace the condition `type_` in the status being built; its transition time moves only
        when its status changes."""
        previous = self.old_conditions.get(type_)
        transition = previous.last_transition_time if previous and previous.status == value else rfc3339(self.now)
        condition = StatusCondition(type=type_, status=value, reason=reason, message=message[:32768],
                                    last_transition_time=transition, observed_generation=self.pa.generation)
        self.status.conditions = [c for c in self.status.conditions if c.type != type_] + [condition]


class Reconciler:
    def __init__(self, clients: Clients, *, metrics: ControllerMetrics | None = None, identity: str = "prescaler",
                 dry_run: bool = False, monotonic: Callable[[], float] = time.perf_counter):
        self.clients = clients
        self.metrics = metrics or ControllerMetrics()
        self.identity = identity
        self.dry_run = dry_run
        self._monotonic = monotonic
        self._specs = SpecCache()  # parsed once per spec, not at every sync

    def spec_of(self, obj: Mapping[str, Any]) -> PredictiveAutoscalerSpec | None:
        """The object's parsed spec, None when it does not parse, from the cache the sync itself reads:
        the loop asks for syncPeriod every tick, and an unchanged spec is not validated again."""
        raw_spec = obj.get("spec")
        if not isinstance(raw_spec, dict):
            return None
        spec, _ = self._specs.parse(str((obj.get("metadata") or {}).get("uid") or ""), raw_spec)
        return spec

    # ---- the sync ----------------------------------------------------------------------------
    def reconcile_one(self, obj: Mapping[str, Any], now: datetime, cycle: Cycle | None = None) -> Outcome:
        started = self._monotonic()
        pa = parse_autoscaler(dict(obj), self._specs)
        try:
            return self._reconcile(SyncContext.begin(pa, now), cycle or Cycle())
        except KubeError as err:
            # 500s, timeouts, 403s: count, write nothing, the next period retries (no crash).
            kind = type(err).__name__ if err.status == 0 else f"{type(err).__name__}{err.status}"
            self.metrics.errors.labels(kind).inc()
            log.warning("%s: %s", pa.key, err)
            return Outcome(pa.key, "Error", error=str(err))
        except Exception as err:  # noqa: BLE001 - one resource's bug must not stop the others' syncs
            self.metrics.errors.labels("Unexpected").inc()
            log.exception("%s: unexpected error", pa.key)
            return Outcome(pa.key, "Error", error=f"{type(err).__name__}: {err}")
        finally:
            self.metrics.duration.observe(self._monotonic() - started)

    def _reconcile(self, ctx: SyncContext, cycle: Cycle) -> Outcome:
        from controller.policy import decide
        from controller.policy.types import PolicyInputError, PolicyState, PredictiveInputs, ReactiveInputs

        pa, now, status = ctx.pa, ctx.now, ctx.status
        spec = ctx.spec
        if spec is None:
            ctx.set_condition("SpecValid", "False", "InvalidSpec", pa.spec_error or "")
            ctx.set_condition("ScalingActive", "False", "InvalidSpec", pa.spec_error or "")
            self._finish(ctx)
            return Outcome(pa.key, "InvalidSpec", error=pa.spec_error)
        ctx.set_condition("SpecValid", "True", "Valid", "the spec is valid")
        ref = TargetRef(spec.scale_target_ref.api_version or "apps/v1", spec.scale_target_ref.kind,
                        spec.scale_target_ref.name)
        target_name = f"{ref.kind}/{ref.name}"

        owner = self._other_autoscaler(pa.namespace, ref, cycle) or self._older_autoscaler(pa, ref, cycle)
        if owner is not None:
            message = f"{owner} already targets {target_name}; prescaler acts on nothing while it does"
            ctx.set_condition("OwnedByAnotherAutoscaler", "True", "AnotherAutoscaler", message)
            ctx.set_condition("AbleToScale", "False", "AnotherAutoscaler", message)
            ctx.set_condition("ScalingActive", "False", "AnotherAutoscaler", message)
            self._finish(ctx)
            return Outcome(pa.key, "AnotherAutoscaler")
        ctx.set_condition("OwnedByAnotherAutoscaler", "False", "NoOtherAutoscaler",
                          f"no HPA, ScaledObject or older PredictiveAutoscaler targets {target_name}")

        kube = self.clients.kube
        try:
            scale = kube.get_scale(pa.namespace, ref)
        except NotFound as err:
            message = f"the target {target_name} ({ref.api_version}) was not found: {err.reason}"
            ctx.set_condition("AbleToScale", "False", "FailedGetScale", message)
            ctx.set_condition("ScalingActive", "False", "FailedGetScale", message)
            self._finish(ctx)
            return Outcome(pa.key, "FailedGetScale", error=message)

        # leadTime: auto: a pending scale-up is one cold-start sample once readyReplicas reaches it.
        lead_seconds = self._lead_time(ctx, spec, ref, scale)

        pods = self._pods(pa.namespace, scale.selector, cycle)
        pod_states = {p["metadata"]["name"]: pod_condition(p) for p in pods}
        observations = [self._observe(m, pa.namespace) for m in spec.metrics]
        reactive = ReactiveInputs(current_replicas=scale.replicas, pods=pod_states, metrics=observations,
                                  status_replicas=scale.status_replicas)
        forecasts, observed, forecast_age = self._forecasts(ctx, spec, pod_states)
        predictive = PredictiveInputs(forecasts=forecasts, observed_rates=observed, lead_time_seconds=lead_seconds)
        try:
            state = PolicyState.from_dict(pa.status.policy_state)
        except PolicyInputError as err:
            log.warning("%s: status.policyState unreadable, starting afresh: %s", pa.key, err)
            state = PolicyState()

        decision, new_state = decide(spec, reactive, predictive, state, now)
        # Recorded before acting, so that a failed scale patch still shows what each stage asked for.
        self.metrics.record_decision(pa.namespace, pa.name, spec, decision)
        self.metrics.record_forecasts(pa.namespace, pa.name, spec, forecasts, observed, now=now,
                                      lead_seconds=lead_seconds)
        if self.dry_run:
            log.info("%s: [dry-run] %s %d -> %d: %s", pa.key, decision.reason, scale.replicas,
                     decision.desired_replicas, decision.message)
        scaled = False
        if decision.act and decision.desired_replicas != scale.replicas and not self.dry_run:
            try:
                self._patch_scale(pa, ref, scale, decision.desired_replicas)
                scaled = True
            except KubeError as err:
                new_state = new_state.without_scale_event_at(now)
                message = f"failed to scale {target_name} to {decision.desired_replicas}: {err}"
                ctx.set_condition("AbleToScale", "False", "FailedUpdateScale", message)
                self.metrics.errors.labels(f"{type(err).__name__}{err.status or ''}").inc()
                self._event(ctx, "FailedRescale", message, "Warning", "Scale")
                self._finish(ctx, decision=decision, state=new_state)
                return Outcome(pa.key, "FailedUpdateScale", decision.desired_replicas, scale.replicas, error=message)
        if scaled:
            direction = "up" if decision.desired_replicas > scale.replicas else "down"
            status.last_scale_time = rfc3339(now)
            self.metrics.scales.labels(pa.namespace, pa.name, direction).inc()
            note = f"scaled {target_name} from {scale.replicas} to {decision.desired_replicas}: {decision.message}"
            self._event(ctx, decision.reason, note, "Normal", "Scale")
            if spec.lead_time == "auto" and direction == "up":
                status.pending_scale_up = PendingScaleUp(since=rfc3339(now), replicas=decision.desired_replicas)
        status.current_replicas = scale.replicas
        status.desired_replicas = decision.desired_replicas
        status.last_reason = decision.reason
        status.lead_time_seconds = lead_seconds
        status.forecast_age_seconds = forecast_age
        if not any(c.type == "AbleToScale" for c in decision.conditions):
            ctx.set_condition("AbleToScale", "True", "SucceededGetScale", f"read the scale of {target_name}")
        self._finish(ctx, decision=decision, state=new_state)

        self.metrics.record_sync(pa.namespace, pa.name, desired=decision.desired_replicas, current=scale.replicas,
                                 lead_seconds=lead_seconds, forecast_age=forecast_age)
        self.metrics.record_reason(pa.namespace, pa.name, decision.reason)
        return Outcome(pa.key, decision.reason, decision.desired_replicas, scale.replicas, scaled)

    # ---- steps -----------------------------------------------------------------------------
    def _other_autoscaler(self, namespace: str, ref: TargetRef, cycle: Cycle) -> str | None:
        kube = self.clients.kube
        if namespace not in cycle.hpas:
            cycle.hpas[namespace] = kube.list_hpas(namespace)
        for hpa in cycle.hpas[namespace]:
            if _targets(hpa, ref):
                return f"HorizontalPodAutoscaler {hpa['metadata']['name']}"
        if namespace not in cycle.scaled_objects:
            cycle.scaled_objects[namespace] = kube.list_scaled_objects(namespace)
        for so in cycle.scaled_objects[namespace]:
            if _targets(so, ref):
                return f"KEDA ScaledObject {so['metadata']['name']}"
        return None

    def _older_autoscaler(self, pa: Autoscaler, ref: TargetRef, cycle: Cycle) -> str | None:
        """Another PredictiveAutoscaler on the same target that was there first: it keeps the target.

        Two controllers of one scale subresource overwrite each other every sync (seen: 13 -> 5 -> 10 -> 5
        every 15 s). The older one, by creationTimestamp, then name, wins, so which one acts never
        depends on the order of a list; a PA being deleted claims nothing.
        """
        def index(objects: list[dict[str, Any]]) -> None:
            # By namespace and target name, once per cycle: 1,000 PAs on 1,000 Deployments in one
            # namespace must not cost 1,000 scans of 1,000 each.
            for o in objects:
                key = ((o.get("metadata") or {}).get("namespace", ""),
                       str(((o.get("spec") or {}).get("scaleTargetRef") or {}).get("name", "")))
                cycle._autoscalers_by_target.setdefault(key, []).append(o)

        if cycle.autoscalers is not None:
            if not cycle._indexed:
                index(cycle.autoscalers)
                cycle._indexed.add("*")
        elif pa.namespace not in cycle._indexed:
            index(self.clients.kube.list_autoscalers(pa.namespace)[0])
            cycle._indexed.add(pa.namespace)
        others = cycle._autoscalers_by_target.get((pa.namespace, ref.name), [])

        def age(meta: Mapping[str, Any]) -> tuple[datetime, str]:
            created = parse_rfc3339(meta.get("creationTimestamp")) or datetime.max.replace(tzinfo=timezone.utc)
            return created, str(meta.get("name", ""))

        mine = age({"creationTimestamp": pa.creation_timestamp, "name": pa.name})
        older = sorted((age(o["metadata"]), o["metadata"]["name"]) for o in others
                       if o["metadata"].get("name") != pa.name and not o["metadata"].get("deletionTimestamp")
                       and _targets(o, ref) and age(o["metadata"]) < mine)
        return f"PredictiveAutoscaler {older[0][1]}" if older else None

    def _pods(self, namespace: str, selector: str, cycle: Cycle) -> list[dict[str, Any]]:
        """The pods a /scale selector matches. One list per namespace per cycle, filtered here (client-go's
        HPA reads pods from a shared informer cache the same way); set-based selectors ask the server."""
        if not selector:
            return []
        labels = parse_equality_selector(selector)
        if not labels:
            return self.clients.kube.list_pods(namespace, selector)
        if namespace not in cycle.pods:
            index: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for pod in self.clients.kube.list_pods(namespace, ""):
                for pair in ((pod.get("metadata") or {}).get("labels") or {}).items():
                    index.setdefault(pair, []).append(pod)
            cycle.pods[namespace] = index  # label pair -> pods: a lookup, not a scan, per autoscaler
        index = cycle.pods[namespace]
        first, *rest = sorted(labels.items(), key=lambda kv: len(index.get(kv, ())))
        return [p for p in index.get(first, [])
                if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in rest)]

    def _lead_time(self, ctx: SyncContext, spec: PredictiveAutoscalerSpec, ref: TargetRef, scale: Scale) -> float:
        status, now = ctx.status, ctx.now
        if spec.lead_time != "auto":
            status.pending_scale_up = None
            return float(spec.lead_time)
        pending = status.pending_scale_up
        if pending is not None:
            since = parse_rfc3339(pending.since)
            ready = self.clients.kube.ready_replicas(ctx.pa.namespace, ref)
            if since is None or scale.replicas < pending.replicas or \
                    (now - since).total_seconds() > PENDING_SCALE_UP_TIMEOUT:
                status.pending_scale_up = None  # scaled back down, or never came: not a cold-start sample
            elif ready is not None and ready >= pending.replicas:
                samples = status.lead_time_samples + [(now - since).total_seconds()]
                status.lead_time_samples = samples[-LEAD_TIME_SAMPLES:]
                status.pending_scale_up = None
        return p90(status.lead_time_samples) if status.lead_time_samples else DEFAULT_LEAD_TIME_SECONDS

    def _observe(self, metric: MetricSpec, namespace: str) -> MetricObservation:
        from controller.policy.types import MetricObservation

        live = self.clients.metrics
        if live is None:
            return MetricObservation.unavailable("no Prometheus configured for live metrics")
        try:
            if metric.type == "Pods" and metric.pods is not None:  # the spec guarantees the source
                pods = metric.pods
                return MetricObservation(pod_values=live.pod_values(pods.metric.name, namespace, pods.metric.selector))
            if metric.type == "External" and metric.external is not None:
                external = metric.external
                value = live.external_value(external.metric.name, namespace, external.metric.selector)
                if value is None:
                    return MetricObservation.unavailable(f"external metric {external.metric.name}: no series")
                return MetricObservation(value=value)
        except MetricsUnavailable as err:
            self.metrics.errors.labels("MetricsUnavailable").inc()
            return MetricObservation.unavailable(str(err))
        return MetricObservation.unavailable(
            f"{metric.display_name}: {metric.type} metrics are not read by prescaler (use Pods or External)")

    def _forecasts(self, ctx: SyncContext, spec: PredictiveAutoscalerSpec, pods: Mapping[str, PodCondition],
                   ) -> tuple[dict[str, Forecast | None], dict[str, float | None], float | None]:
        if spec.forecast is None:
            return {}, {}, None
        pa = ctx.pa
        signals = spec.forecast_signals
        forecasts: dict[str, Forecast | None] = {s: None for s in signals}
        provider = self.clients.forecasts
        age = None
        step = 60
        if provider is not None:
            try:
                got = provider.get(self.workload_of(pa), horizon_seconds=spec.forecast.horizon_seconds,
                                   quantiles=[spec.forecast.quantile])
                for signal in signals:
                    forecasts[signal] = got.forecasts.get(signal)
                ages = [(ctx.now - f.generated_at).total_seconds() for f in got.forecasts.values()]
                age = max(ages) if ages else None
                step = min((f.step_seconds for f in got.forecasts.values()), default=60)
            except ForecastUnavailable as err:
                self.metrics.errors.labels("ForecastUnavailable").inc()
                log.info("%s: %s", pa.key, err)
        observed: dict[str, float | None] = {s: None for s in signals}
        live = self.clients.metrics
        if live is not None:
            queries: dict[str, str | None] = {s.name: s.query for s in spec.forecast.signals}
            for signal in signals:
                query = queries[signal] or default_signal_query(signal, pa.namespace, list(pods), step)
                try:
                    observed[signal] = live.rate(query)
                except MetricsUnavailable as err:
                    self.metrics.errors.labels("MetricsUnavailable").inc()
                    log.info("%s: observed %s: %s", pa.key, signal, err)
        return forecasts, observed, age

    def _patch_scale(self, pa: Autoscaler, ref: TargetRef, scale: Scale, replicas: int) -> None:
        """Patch with the read's resourceVersion; on 409 re-read and patch once more (optimistic concurrency)."""
        kube = self.clients.kube
        try:
            kube.patch_scale(pa.namespace, ref, replicas, scale.resource_version)
        except ScaleConflict:
            self.metrics.errors.labels("ScaleConflict").inc()
            fresh = kube.get_scale(pa.namespace, ref)
            kube.patch_scale(pa.namespace, ref, replicas, fresh.resource_version)

    # ---- status, conditions, events ------------------------------------------------------------
    def _finish(self, ctx: SyncContext, *, decision: Decision | None = None, state: PolicyState | None = None) -> None:
        status, old = ctx.status, ctx.old_conditions
        if decision is None:  # no decision this sync: no per-autoscaler series may keep its last value
            self.metrics.forget(ctx.pa.namespace, ctx.pa.name)
        if decision is not None:
            for c in decision.conditions:
                if c.type == "AbleToScale" and any(x.type == "AbleToScale" and x.reason == "FailedUpdateScale"
                                                    for x in status.conditions):
                    continue
                ctx.set_condition(c.type, c.status, c.reason, c.message)
        if state is not None:
            status.policy_state = state.to_dict()
        # Events on every fallback transition of ForecastHealthy (and on the spec becoming invalid).
        new = {c.type: c for c in status.conditions}
        before, after = old.get("ForecastHealthy"), new.get("ForecastHealthy")
        if after is not None and (before is None or before.status != after.status):
            if after.status == "False":
                self._event(ctx, after.reason, f"predictive stage off, acting as a plain HPA: {after.message}",
                            "Warning", "Fallback")
            elif before is not None:
                self._event(ctx, "ForecastRecovered", f"predictive stage back on: {after.message}",
                            "Normal", "Recover")
        before, after = old.get("SpecValid"), new.get("SpecValid")
        if after is not None and after.status == "False" and (before is None or before.status != "False"):
            self._event(ctx, "InvalidSpec", after.message, "Warning", "Validate")
        before, after = old.get("OwnedByAnotherAutoscaler"), new.get("OwnedByAnotherAutoscaler")
        if after is not None and after.status == "True" and (before is None or before.status != "True"):
            self._event(ctx, "AnotherAutoscaler", after.message, "Warning", "Yield")
        # horizontal.go records FailedGetScale as a Warning Event as well as a condition; ours, once per
        # transition like the others (the Event API would aggregate the repeats anyway).
        before, after = old.get("AbleToScale"), new.get("AbleToScale")
        if after is not None and after.reason == "FailedGetScale" and (before is None or before.reason != after.reason):
            self._event(ctx, "FailedGetScale", after.message, "Warning", "GetScale")
        ctx.set_condition("Ready", *ready_condition(status.conditions))  # the one place Ready is set
        status.conditions.sort(key=lambda c: c.type)
        if self.dry_run:
            return
        self.clients.kube.patch_autoscaler_status(ctx.pa.namespace, ctx.pa.name, status.to_merge_patch())

    def _event(self, ctx: SyncContext, reason: str, note: str, type_: str, action: str) -> None:
        pa = ctx.pa
        if self.dry_run:
            log.info("%s: [dry-run] event %s: %s", pa.key, reason, note)
            return
        try:
            self.clients.kube.create_event(pa.namespace, pa.object_reference(), reason=reason, note=note,
                                           type_=type_, action=action, now=ctx.now, reporting_instance=self.identity)
        except KubeUnavailable as err:  # an Event lost is not worth failing the sync for
            self.metrics.errors.labels("EventFailed").inc()
            log.warning("%s: event %s not recorded: %s", pa.key, reason, err)

    @staticmethod
    def workload_of(pa: Autoscaler) -> str:
        """The forecaster's workload name: the annotation `prescaler.dev/workload`, else the resource name."""
        return pa.annotations.get("prescaler.dev/workload", pa.name)


def reconcile_one(pa: Mapping[str, Any], clients: Clients, now: datetime, *,
                  metrics: ControllerMetrics | None = None, dry_run: bool = False) -> Outcome:
    """One sync of one PredictiveAutoscaler object (as the API server returned it) at `now`."""
    return Reconciler(clients, metrics=metrics, dry_run=dry_run).reconcile_one(pa, now)
