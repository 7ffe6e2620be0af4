"""Leader election on a Lease in the fake API server: one leader, failover, release on shutdown."""

from __future__ import annotations

from controller.leader import LeaseElector
from controller.loop import Controller

from .conftest import autoscaler, deployment, kube_client, make_reconciler

LEASE = ("coordination.k8s.io/v1", "leases")


def _electors(kube, clock, duration=15):
    return [LeaseElector(kube_client(kube), "default", "prescaler-controller", name, clock,
                         lease_duration_seconds=duration) for name in ("a", "b")]


def test_one_leader_at_a_time_and_failover_when_it_stops(kube, clock) -> None:
    a, b = _electors(kube, clock)
    assert a.try_acquire_or_renew() is True
    assert b.try_acquire_or_renew() is False
    for _ in range(5):  # a keeps renewing every 5 s: b never takes over
        clock.advance(5)
        assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    assert kube.get(*LEASE, "prescaler-controller")["spec"]["holderIdentity"] == "a"

    # a stops (crash: no release). b must wait a full lease duration from when it last saw a change.
    clock.advance(10)
    assert b.try_acquire_or_renew() is False
    clock.advance(6)
    assert b.try_acquire_or_renew() is True
    lease = kube.get(*LEASE, "prescaler-controller")["spec"]
    assert lease["holderIdentity"] == "b" and lease["leaseTransitions"] == 1
    assert a.try_acquire_or_renew() is False, "the old leader comes back as a follower"


def test_release_on_shutdown_hands_over_at_once(kube, clock) -> None:
    a, b = _electors(kube, clock)
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    assert a.release() is True
    lease = kube.get(*LEASE, "prescaler-controller")["spec"]
    assert lease["holderIdentity"] == "" and lease["leaseDurationSeconds"] == 1
    assert b.try_acquire_or_renew() is True
    assert a.release() is False, "a follower has nothing to release"


def test_a_racing_write_loses_with_a_conflict(kube, clock) -> None:
    a, b = _electors(kube, clock)
    assert a.try_acquire_or_renew()
    kube.fail_next(r"/leases/prescaler-controller$", 1, status=409, method="PUT")
    clock.advance(5)
    assert a.try_acquire_or_renew() is False  # lost this round, not an exception
    assert a.try_acquire_or_renew() is True


def test_only_the_leader_reconciles(kube, clock, prom) -> None:
    kube.create("apps/v1", "deployments", deployment(replicas=2))
    kube.create("prescaler.dev/v1alpha1", "predictiveautoscalers", autoscaler(forecast=None, capacity=None))
    a_el, b_el = _electors(kube, clock)
    a = Controller(make_reconciler(kube, prom, None, identity="a"), kube_client(kube), clock, elector=a_el)
    b = Controller(make_reconciler(kube, prom, None, identity="b"), kube_client(kube), clock, elector=b_el)
    assert len(a.step()) == 1
    assert b.step() == []
    assert b.reconciler.metrics.leader._value.get() == 0
    a_el.release()
    clock.advance(15)
    assert len(b.step()) == 1
    assert a.step() == []
