"""The forecaster's workloads from the PredictiveAutoscalers in the cluster (`discovery.enabled`).

A forecaster.service.workloads.WorkloadSource over the controller's own reading of the objects
(controller.kube lists them, controller.resource parses each spec with controller.policy.spec), so
the forecaster serves exactly what the controller will ask it for. It lives in the composition root
because forecaster/ never imports controller/. Each resync lists every PredictiveAutoscaler again
(a periodic list, not a watch: a few objects, every 30 s by default, and nothing to resume).

How a PredictiveAutoscaler with a `forecast` section becomes a WorkloadSettings (`workload_base`):

- name: the annotation `prescaler.dev/workload`, else metadata.name (the controller's rule,
  `Reconciler.workload_of`);
- namespace: metadata.namespace (external metrics are answered there);
- model_name: spec.forecast.modelName, else the workload name;
- signals (and their query): spec.forecast.signals;
- model, quantile, retrain_interval: spec.forecast.model, .quantile, .retrainInterval;
- interval: spec.forecast.interval; 0 (a window of one instant for the controller) becomes
  spec.syncPeriod, since the service refreshes every interval and needs it positive;
- lead_time: spec.leadTime; with `auto`, status.leadTimeSeconds (the value the controller learned
  and uses), else the controller's default before it has measured a cold start
  (DEFAULT_LEAD_TIME_SECONDS);
- max_horizon: spec.forecast.horizon, raised to lead_time + interval when shorter (a learned lead
  time can outgrow it);
- capacity: spec.capacity (perReplica of the forecast signals, targetUtilization, combine),
  spec.minReplicas, spec.maxReplicas.

The rest (bin, candidates, quantiles, backtest_window, labels) keeps the service's defaults, and a
`workloads:` entry of the config with the same name overrides any field (forecaster.service.workloads).
A spec that does not parse, or settings the service refuses, skip that object with the reason, naming
the object and its field; the other objects are served as before. A signal's `query` is handed to
both sides: the controller evaluates it as it is for the live error, the forecaster over its history
at its bin (where `$model_name` and `$step` would be replaced; the controller replaces neither).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import yaml
from kubernetes.config.config_exception import ConfigException

from controller.errors import KubeError
from controller.kube import KubeClient, api_client_for
from controller.policy.spec import SIGNAL_CAPACITY_FIELD
from controller.reconcile import DEFAULT_LEAD_TIME_SECONDS, Reconciler
from controller.resource import Autoscaler, SpecCache, parse_autoscaler
from forecaster.service.config import ConfigError, ServiceConfig, WorkloadOverride
from forecaster.service.workloads import (
    StaticWorkloads,
    WorkloadBase,
    WorkloadListing,
    WorkloadSource,
    WorkloadSourceError,
    combine,
)

log = logging.getLogger("prescaler.discovery")

WORKLOAD_ANNOTATION = "prescaler.dev/workload"

# Where each settings field comes from in the object, for error messages (see the module's table).
_PATHS = {
    "model_name": "spec.forecast.modelName", "namespace": "metadata.namespace",
    "signals": "spec.forecast.signals", "model": "spec.forecast.model", "quantile": "spec.forecast.quantile",
    "retrain_interval": "spec.forecast.retrainInterval", "interval": "spec.forecast.interval",
    "lead_time": "spec.leadTime", "max_horizon": "spec.forecast.horizon", "capacity": "spec.capacity",
    "capacity.per_replica": "spec.capacity.perReplica",
    "capacity.target_utilization": "spec.capacity.targetUtilization", "capacity.combine": "spec.capacity.combine",
    "capacity.min_replicas": "spec.minReplicas", "capacity.max_replicas": "spec.maxReplicas",
}


def origin_of(pa: Autoscaler) -> str:
    return f"PredictiveAutoscaler {pa.key}"


def lead_time_seconds(pa: Autoscaler) -> float:
    """The lead time the controller uses for this object: the spec's, or with `auto` the one it
    learned from pod readiness (status.leadTimeSeconds), its default until it has measured one."""
    spec = pa.spec
    if spec.lead_time != "auto":
        return float(spec.lead_time)
    learned = pa.status.lead_time_seconds
    return float(learned) if learned else DEFAULT_LEAD_TIME_SECONDS


def workload_base(pa: Autoscaler) -> WorkloadBase | None:
    """The WorkloadSettings fields an object with a valid spec describes; None without `forecast`
    (a plain HPA: nothing to forecast)."""
    spec = pa.spec
    forecast, capacity = spec.forecast, spec.capacity
    if forecast is None or capacity is None:  # the spec refuses forecast without capacity
        return None
    name = Reconciler.workload_of(pa)
    lead = lead_time_seconds(pa)
    interval = forecast.interval_seconds or spec.sync_period_seconds
    signals = [s.name for s in forecast.signals]
    per_replica: dict[str, Any] = {}
    for signal in signals:
        rate = capacity.per_replica.rate(signal)
        if rate is not None:  # the spec has one for every forecast signal; a rate of another is unused
            per_replica[signal] = rate
    fields: dict[str, Any] = {
        "name": name,
        "model_name": forecast.model_name or name,
        "namespace": pa.namespace,
        "signals": {s.name: ({"query": s.query} if s.query is not None else {}) for s in forecast.signals},
        "model": forecast.model,
        "quantile": forecast.quantile,
        "lead_time": timedelta(seconds=lead),
        "interval": timedelta(seconds=interval),
        "retrain_interval": timedelta(seconds=forecast.retrain_interval_seconds),
        "max_horizon": timedelta(seconds=max(forecast.horizon_seconds, lead + interval)),
        "capacity": {
            "per_replica": per_replica,
            "target_utilization": capacity.target_utilization,
            "combine": capacity.combine,
            "min_replicas": spec.min_replicas,
            "max_replicas": spec.max_replicas,
        },
    }
    paths = dict(_PATHS)
    paths["name"] = (f"metadata.annotations[{WORKLOAD_ANNOTATION}]" if WORKLOAD_ANNOTATION in pa.annotations
                     else "metadata.name")
    for signal, field in SIGNAL_CAPACITY_FIELD.items():
        paths[f"capacity.per_replica.{signal}"] = f"spec.capacity.perReplica.{field}"
    for i, s in enumerate(forecast.signals):
        paths[f"signals.{s.name}"] = f"spec.forecast.signals[{i}]"
    return WorkloadBase(origin_of(pa), fields, paths)


def _age_key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    # RFC 3339 in UTC ("2025-01-18T12:00:00Z") sorts as text; the oldest object wins a name.
    return str(meta.get("creationTimestamp") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or "")


def listing_from(objects: Sequence[dict[str, Any]], overrides: Sequence[WorkloadOverride], *,
                 specs: SpecCache | None = None) -> WorkloadListing:
    """The listing of these objects (as the API server returns them) with the config's overrides.

    Two objects naming the same workload: the older serves it, the younger is skipped, so creating
    a second object never takes away the forecasts the first one's HPA or controller reads.
    """
    bases: dict[str, WorkloadBase] = {}
    skipped: dict[str, str] = {}
    for obj in sorted(objects, key=_age_key):
        pa = parse_autoscaler(obj, specs)
        origin = origin_of(pa)
        if pa.spec is None:
            skipped[origin] = pa.spec_error or "spec: invalid"
            continue
        base = workload_base(pa)
        if base is None:
            continue
        name = base.fields["name"]
        if name in bases:
            skipped[origin] = (f"{base.paths['name']}: workload {name!r} is already served from "
                               f"{bases[name].origin}, which is older")
            continue
        bases[name] = base
    return combine(bases, overrides, skipped)


class PredictiveAutoscalerSource:
    """A WorkloadSource listing the PredictiveAutoscalers of `namespaces` (empty: all) each `resync`."""

    def __init__(self, kube: KubeClient, *, namespaces: Sequence[str] = (), resync: timedelta,
                 overrides: Sequence[WorkloadOverride] = ()):
        self.kube = kube
        self.namespaces = tuple(namespaces)
        self._resync = resync
        self.overrides = tuple(overrides)
        self._specs = SpecCache()  # an unchanged spec is not validated again at every resync

    @property
    def description(self) -> str:
        where = ", ".join(self.namespaces) if self.namespaces else "all namespaces"
        return f"PredictiveAutoscalers in {where}"

    @property
    def resync(self) -> timedelta | None:
        return self._resync

    def load(self) -> WorkloadListing:
        objects: list[dict[str, Any]] = []
        for namespace in self.namespaces or (None,):
            try:
                items, _ = self.kube.list_autoscalers(namespace)
            except KubeError as error:
                raise WorkloadSourceError(f"listing {self.description}: {error}") from error
            objects.extend(items)
        return listing_from(objects, self.overrides, specs=self._specs)


def workload_source(config: ServiceConfig, *, kube: KubeClient | None = None) -> WorkloadSource:
    """The source `config` asks for: the PredictiveAutoscalers with `discovery.enabled` (through
    `kube`, or the discovery section's kubeconfig or service account), else the config's list."""
    if not config.discovery.enabled:
        return StaticWorkloads(config)
    d = config.discovery
    if kube is None:
        try:
            api = api_client_for(kubeconfig=str(d.kubeconfig) if d.kubeconfig is not None else None)
        except (ConfigException, OSError, yaml.YAMLError) as error:  # a start-up error, not a traceback
            where = (f"discovery.kubeconfig ({d.kubeconfig})" if d.kubeconfig is not None
                     else "discovery: no kubeconfig given, and neither a pod's service account nor ~/.kube/config")
            raise ConfigError(f"{where}: cannot configure the Kubernetes client: {error}") from error
        kube = KubeClient(api, timeout=d.request_timeout.total_seconds())
    return PredictiveAutoscalerSource(kube, namespaces=d.namespaces, resync=d.resync, overrides=config.workloads)
