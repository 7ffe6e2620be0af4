"""The loop driver: keep the PredictiveAutoscalers in view (list + watch), reconcile each when due.

Time comes from an injected clock and waiting from an injected `wait(seconds)` (a threading.Event's
wait in production), so tests drive `step()` by hand. Only the lease holder acts; a follower keeps
its probes green and tries for the lease every tick.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable

from forecaster.contract import Clock

from .errors import KubeError
from .kube import KubeClient
from .leader import LeaseElector
from .reconcile import Cycle, Outcome, Reconciler
from .resource import parse_rfc3339
from .server import Health

if TYPE_CHECKING:
    from controller.policy.spec import PredictiveAutoscalerSpec

log = logging.getLogger("prescaler.loop")
DEFAULT_SYNC_SECONDS = 15.0


def sync_seconds_of(spec: PredictiveAutoscalerSpec | None) -> float:
    """spec.syncPeriod in seconds, as the parsed spec holds it (parsed once, with the rest of the spec);
    the default for a spec that does not parse, whose sync reports it (SpecValid=False) every period."""
    return DEFAULT_SYNC_SECONDS if spec is None else spec.sync_period_seconds


class AutoscalerCache:
    """An informer in miniature: list, then watch from the list's resourceVersion; relist on 410 or error."""

    def __init__(self, kube: KubeClient, namespace: str | None, *, watch_timeout_seconds: int = 60):
        self.kube, self.namespace = kube, namespace
        self.watch_timeout_seconds = watch_timeout_seconds
        self._items: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.synced = threading.Event()
        self.changed: set[str] = set()  # keys whose generation changed: reconcile now, not at the next period
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def key(obj: dict[str, Any]) -> str:
        return f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"

    def relist(self) -> str:
        items, rv = self.kube.list_autoscalers(self.namespace)
        with self._lock:
            self._items = {self.key(o): o for o in items}
        self.synced.set()
        return rv

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items.values())

    def take_changed(self) -> set[str]:
        with self._lock:
            changed, self.changed = self.changed, set()
            return changed

    def apply(self, kind: str, obj: dict[str, Any]) -> None:
        key = self.key(obj)
        with self._lock:
            old = self._items.get(key)
            if kind == "DELETED":
                self._items.pop(key, None)
                return
            self._items[key] = obj
            if old is None or old["metadata"].get("generation") != obj["metadata"].get("generation"):
                self.changed.add(key)

    def _run(self, backoff: Callable[[float], bool]) -> None:
        rv = ""
        while not self._stop.is_set():
            try:
                if not rv:
                    rv = self.relist()
                for kind, obj in self.kube.watch_autoscalers(self.namespace, rv,
                                                             timeout_seconds=self.watch_timeout_seconds):
                    if self._stop.is_set():
                        return
                    if kind == "ERROR":  # 410 Gone: our resourceVersion is too old, relist
                        rv = ""
                        break
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self.apply(kind, obj)
                        rv = obj["metadata"].get("resourceVersion", rv)
            except KubeError as err:
                log.warning("watch: %s; relisting", err)
                rv = ""
                if backoff(1.0):
                    return

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, args=(self._stop.wait,), name="pa-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


class Controller:
    def __init__(self, reconciler: Reconciler, kube: KubeClient, clock: Clock, *, namespace: str | None = None,
                 elector: LeaseElector | None = None, health: Health | None = None,
                 cache: AutoscalerCache | None = None):
        self.reconciler, self.kube, self.clock = reconciler, kube, clock
        self.namespace, self.elector, self.health, self.cache = namespace, elector, health, cache
        self._last_sync: dict[str, datetime] = {}
        self.list_error: KubeError | None = None  # the last list of PredictiveAutoscalers failed with this

    def _due(self, obj: dict[str, Any], key: str, now: datetime, changed: set[str]) -> bool:
        if key in changed:
            return True
        last = self._last_sync.get(key) or parse_rfc3339((obj.get("status") or {}).get("lastSyncTime"))
        return last is None or now - last >= timedelta(seconds=sync_seconds_of(self.reconciler.spec_of(obj)))

    def step(self, *, force: bool = False) -> list[Outcome]:
        """One tick: renew or try for the lease, then reconcile every resource that is due."""
        now = self.clock()
        if self.elector is not None and not self.elector.try_acquire_or_renew():
            self.reconciler.metrics.leader.set(0)
            # A standby decides nothing: its per-autoscaler series would repeat a stale decision next
            # to the leader's (two replicas, two different "desired" values on one graph).
            self.reconciler.metrics.forget_all()
            if self.health:
                self.health.tick(ready=True)  # a healthy standby is ready
            return []
        self.reconciler.metrics.leader.set(1)
        if self.cache is not None and self.cache.synced.is_set():
            objects, changed = self.cache.items(), self.cache.take_changed()
        else:
            try:
                objects, _ = self.kube.list_autoscalers(self.namespace)
            except KubeError as err:
                self.reconciler.metrics.errors.labels(f"{type(err).__name__}{err.status or ''}").inc()
                log.warning("list: %s", err)
                self.list_error = err
                if self.health:
                    self.health.tick(ready=False)
                return []
            self.list_error = None
            changed = set()
        cycle = Cycle(autoscalers=list(objects))
        outcomes = []
        for obj in objects:
            key = AutoscalerCache.key(obj)
            if force or self._due(obj, key, now, changed):
                outcomes.append(self.reconciler.reconcile_one(obj, now, cycle))
                self._last_sync[key] = now
        live = {AutoscalerCache.key(o) for o in objects}
        for key in list(self._last_sync):
            if key not in live:
                del self._last_sync[key]
                namespace, name = key.split("/", 1)
                self.reconciler.metrics.forget(namespace, name)  # deleted: none of its series may linger
        if self.health:
            self.health.tick(ready=True)
        return outcomes

    def run(self, stop: threading.Event, *, tick_seconds: float = 1.0) -> None:
        """Tick until `stop` is set; then release the lease (shutdown hands over at once)."""
        if self.cache is not None:
            self.cache.start()
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    self.step()
                except Exception:  # noqa: BLE001 - the loop must outlive any one bug; it is logged and counted
                    log.exception("controller step failed")
                    self.reconciler.metrics.errors.labels("Unexpected").inc()
                stop.wait(max(0.0, tick_seconds - (time.monotonic() - started)))
        finally:
            if self.cache is not None:
                self.cache.stop()
            if self.elector is not None:
                self.elector.release()
