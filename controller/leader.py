"""Leader election on a coordination.k8s.io/v1 Lease, with an injected clock.

The algorithm is client-go's tools/leaderelection (tryAcquireOrRenew), kept small so the clock is a
seam (the kubernetes Python client's leaderelection reads time.time() and sleeps in its own loop):
- no Lease: create it with us as holder;
- another holder whose record we have seen unchanged for leaseDurationSeconds (measured on *our*
  clock from when we observed it, as client-go does, so clock skew between nodes does not matter),
  or an empty holder: take it over (acquireTime, leaseTransitions + 1);
- us: renew (renewTime);
- every write is a PUT with the read's resourceVersion, so of two candidates racing, one gets 409 and
  stays a follower.
`release()` (on shutdown) clears holderIdentity and sets leaseDurationSeconds to 1, as client-go's
ReleaseOnCancel does, so the standby takes over at its next try instead of after a full lease.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from forecaster.contract import Clock

from .errors import KubeError, NotFound, ScaleConflict
from .kube import KubeClient

log = logging.getLogger("prescaler.leader")


def _micro(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    def __init__(self, kube: KubeClient, namespace: str, name: str, identity: str, clock: Clock, *,
                 lease_duration_seconds: int = 15):
        if lease_duration_seconds < 1:
            raise ValueError(f"lease_duration_seconds ({lease_duration_seconds}) must be >= 1")
        self.kube, self.namespace, self.name, self.identity = kube, namespace, name, identity
        self.clock = clock
        self.lease_duration_seconds = lease_duration_seconds
        self.is_leader = False
        self._observed: tuple[Any, ...] | None = None
        self._observed_at: datetime | None = None

    def _lease_body(self, now: datetime, existing: dict[str, Any] | None) -> dict[str, Any]:
        spec = dict((existing or {}).get("spec") or {})
        taking_over = spec.get("holderIdentity") != self.identity
        spec["holderIdentity"] = self.identity
        spec["leaseDurationSeconds"] = self.lease_duration_seconds
        spec["renewTime"] = _micro(now)
        if taking_over:
            spec["acquireTime"] = _micro(now)
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if existing else 0)
        meta = {"name": self.name, "namespace": self.namespace}
        if existing:
            meta["resourceVersion"] = existing["metadata"]["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    def try_acquire_or_renew(self) -> bool:
        """One attempt; returns whether we lead now. API errors count as not leading (fail safe)."""
        now = self.clock()
        try:
            try:
                lease = self.kube.get_lease(self.namespace, self.name)
            except NotFound:
                self.kube.create_lease(self.namespace, self._lease_body(now, None))
                return self._became(True)
            spec = lease.get("spec") or {}
            record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseDurationSeconds"))
            if record != self._observed:
                self._observed, self._observed_at = record, now
            holder = spec.get("holderIdentity") or ""
            duration = float(spec.get("leaseDurationSeconds") or self.lease_duration_seconds)
            if holder and holder != self.identity and self._observed_at is not None \
                    and now < self._observed_at + timedelta(seconds=duration):
                return self._became(False)
            updated = self.kube.update_lease(self.namespace, self._lease_body(now, lease))
            s = updated.get("spec") or {}
            self._observed = (s.get("holderIdentity"), s.get("renewTime"), s.get("leaseDurationSeconds"))
            self._observed_at = now
            return self._became(True)
        except ScaleConflict:
            return self._became(False)  # another candidate wrote first
        except KubeError as err:
            log.warning("lease %s/%s: %s", self.namespace, self.name, err)
            return self._became(False)

    def _became(self, leader: bool) -> bool:
        if leader != self.is_leader:
            log.info("%s %s the lease %s/%s", self.identity, "acquired" if leader else "lost",
                     self.namespace, self.name)
        self.is_leader = leader
        return leader

    def release(self) -> bool:
        """Give the lease up if we hold it (shutdown). Returns whether a release was written."""
        if not self.is_leader:
            return False
        try:
            lease = self.kube.get_lease(self.namespace, self.name)
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != self.identity:
                return self._became(False)
            spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=_micro(self.clock()))
            self.kube.update_lease(self.namespace, {**lease, "spec": spec})
            self._became(False)
            return True
        except KubeError as err:
            log.warning("lease %s/%s: release failed: %s", self.namespace, self.name, err)
            return False
