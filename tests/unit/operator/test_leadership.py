"""Leader election on a Lease: client-go's rules, on the fake client and a fake clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from driftloop.api import MODEL_VERSION
from driftloop.client import Obj
from driftloop.fake import FakeKube
from driftloop.leadership import (
    FencedKube,
    LeaderElector,
    LeaseTimings,
    NoElection,
    NotLeaderError,
    campaign,
    keep_leading,
)

NS, LEASE = "driftloop-system", "driftloop-operator"
TIMINGS = LeaseTimings()  # 15 s lease, 10 s renew deadline, 2 s retry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=self.now)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


def candidate(kube: Any, clock: Clock, identity: str) -> LeaderElector:
    return LeaderElector(kube, NS, LEASE, identity, TIMINGS, clock=clock, wall_clock=clock.wall)


def lease(kube: FakeKube) -> dict[str, Any]:
    return kube.stored("coordination.k8s.io/v1", "Lease", NS, LEASE)["spec"]  # type: ignore[no-any-return]


def test_the_first_candidate_creates_the_lease_and_leads(kube: FakeKube, clock: Clock) -> None:
    a = candidate(kube, clock, "a")
    assert a.try_acquire_or_renew()
    assert a.held()
    assert lease(kube)["holderIdentity"] == "a"
    assert lease(kube)["leaseDurationSeconds"] == 15
    assert lease(kube)["leaseTransitions"] == 0


def test_a_renewed_lease_keeps_others_out(kube: FakeKube, clock: Clock) -> None:
    a, b = candidate(kube, clock, "a"), candidate(kube, clock, "b")
    a.try_acquire_or_renew()
    acquired = lease(kube)["acquireTime"]
    for _ in range(30):  # a minute of renewals every 2 s
        clock.advance(2)
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    assert a.held()
    assert not b.held()
    assert lease(kube)["acquireTime"] == acquired  # renewals keep it
    assert lease(kube)["renewTime"] != acquired


def test_a_silent_leader_is_replaced_after_the_lease_duration(kube: FakeKube, clock: Clock) -> None:
    a, b = candidate(kube, clock, "a"), candidate(kube, clock, "b")
    a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b first sees a's record now
    clock.advance(14.9)
    assert not b.try_acquire_or_renew()
    clock.advance(0.1)  # 15 s on b's own clock since the record last changed
    assert b.try_acquire_or_renew()
    assert b.held()
    assert lease(kube)["holderIdentity"] == "b"
    assert lease(kube)["leaseTransitions"] == 1
    # a wakes up: it is no leader any more, and cannot renew its way back in
    assert not a.held()  # 15 s > the renew deadline
    assert not a.try_acquire_or_renew()
    assert lease(kube)["holderIdentity"] == "b"


def test_the_leader_steps_down_before_anyone_may_take_over(kube: FakeKube, clock: Clock) -> None:
    """The safety margin: renew deadline (10 s) < lease duration (15 s)."""
    a, b = candidate(kube, clock, "a"), candidate(kube, clock, "b")
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    for elapsed in range(1, 16):
        clock.advance(1)
        b_leads = b.try_acquire_or_renew()
        assert not (a.held() and b_leads), f"two leaders after {elapsed}s"
    assert b.held()


def test_of_two_candidates_racing_for_an_expired_lease_one_wins(clock: Clock) -> None:
    class Racing(FakeKube):
        """b's whole attempt happens between a's read and a's write."""

        interleave: Callable[[], object] | None = None

        def get_lease(self, namespace: str, name: str) -> Obj | None:
            found = super().get_lease(namespace, name)
            if self.interleave is not None:
                run, self.interleave = self.interleave, None
                run()
            return found

    kube = Racing()
    old, a, b = (candidate(kube, clock, i) for i in ("old", "a", "b"))
    old.try_acquire_or_renew()
    a.try_acquire_or_renew(), b.try_acquire_or_renew()
    clock.advance(15)
    kube.interleave = b.try_acquire_or_renew
    assert not a.try_acquire_or_renew()  # its write was based on a stale version: 409
    assert b.held()
    assert not a.held()
    assert lease(kube)["holderIdentity"] == "b"


def test_a_released_lease_is_taken_within_a_retry_period(kube: FakeKube, clock: Clock) -> None:
    a, b = candidate(kube, clock, "a"), candidate(kube, clock, "b")
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    assert a.release()
    assert not a.held()
    assert lease(kube)["holderIdentity"] == ""
    assert b.try_acquire_or_renew()  # no holder: no need to wait


def test_a_standby_cannot_release_what_it_does_not_hold(kube: FakeKube, clock: Clock) -> None:
    a, b = candidate(kube, clock, "a"), candidate(kube, clock, "b")
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    assert not b.release()
    assert lease(kube)["holderIdentity"] == "a"


def test_an_unreachable_api_is_a_failed_attempt_not_a_crash(clock: Clock) -> None:
    class Down(FakeKube):
        def get_lease(self, namespace: str, name: str) -> Obj | None:
            raise ConnectionRefusedError("connection refused")

    kube = FakeKube()
    a = candidate(kube, clock, "a")
    a.try_acquire_or_renew()
    a.store = Down()
    clock.advance(9)
    assert not a.try_acquire_or_renew()
    assert a.held()  # within the renew deadline it still leads...
    clock.advance(1)
    assert not a.held()  # ...and not a moment longer


@pytest.mark.parametrize(
    ("lease_duration", "renew_deadline", "retry_period"),
    [(10, 10, 2), (15, 10, 10), (5, 10, 2)],
)
def test_timings_without_a_safety_margin_are_refused(
    lease_duration: float, renew_deadline: float, retry_period: float
) -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        LeaseTimings(lease_duration, renew_deadline, retry_period)


def test_campaign_waits_for_the_lease_or_a_stop(kube: FakeKube, clock: Clock) -> None:
    a, b = candidate(kube, clock, "a"), candidate(kube, clock, "b")
    a.try_acquire_or_renew()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    assert campaign(b, threading.Event(), sleep=sleep)
    assert waits == [2.0] * 8  # seen at t=0, expired at t=16 (the first retry past 15 s)
    stopped = threading.Event()
    stopped.set()
    assert not campaign(candidate(kube, clock, "c"), stopped)


def test_the_watchdog_ends_a_leader_whose_renewals_fail() -> None:
    """Real threads, short timings: renewals start failing, on_lost is called."""

    class Failing(FakeKube):
        failing = False

        def get_lease(self, namespace: str, name: str) -> Obj | None:
            if self.failing:
                raise TimeoutError("read timed out")
            return super().get_lease(namespace, name)

    kube = Failing()
    timings = LeaseTimings(lease_duration=0.6, renew_deadline=0.4, retry_period=0.05)
    a = LeaderElector(kube, NS, LEASE, "a", timings)
    assert a.try_acquire_or_renew()
    lost, stop = threading.Event(), threading.Event()
    keep_leading(a, on_lost=lost.set, stop=stop)
    try:
        assert not lost.wait(0.5)  # renewals succeed: still leading
        kube.failing = True
        assert lost.wait(10), "the watchdog never noticed"
        assert not a.held()
    finally:
        stop.set()


def test_writes_are_fenced_by_the_lease_and_reads_are_not(kube: FakeKube, clock: Clock) -> None:
    a = candidate(kube, clock, "a")
    a.try_acquire_or_renew()
    kube.add({"apiVersion": "driftloop.dev/v1alpha1", "kind": "ModelVersion",
              "metadata": {"name": "m-v1", "namespace": "ml"}})  # fmt: skip
    fenced = FencedKube(kube, a)
    fenced.patch_status(MODEL_VERSION, "ml", "m-v1", {"approval": "approved"})
    clock.advance(10)  # past the renew deadline
    assert fenced.get(MODEL_VERSION, "ml", "m-v1") is not None
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "ml"}}
    for write in (
        lambda: fenced.patch_status(MODEL_VERSION, "ml", "m-v1", {"approval": "rejected"}),
        lambda: fenced.create(job),
        lambda: fenced.apply_deployment({**job, "apiVersion": "apps/v1", "kind": "Deployment"}),
        lambda: fenced.delete_job("ml", "j"),
    ):
        with pytest.raises(NotLeaderError):
            write()
    assert [w.verb for w in kube.writes if w.kind != "Lease"] == ["patch_status"]
    assert FencedKube(kube, NoElection()).list_jobs("ml", "") == []
