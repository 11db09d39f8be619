"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's rules.

Several operator replicas may run (the chart runs two); only the holder of the Lease
reconciles.  The rules are client-go's ``leaderelection`` package:

* A candidate takes the Lease when nobody holds it, or when its record has not
  changed for ``leaseDurationSeconds`` *as measured on the candidate's own clock*
  from the moment it last saw the record change (no clock sync between nodes needed).
* Every write is conditioned on the Lease's resourceVersion: of two candidates racing
  for an expired Lease exactly one wins (the other gets a 409).
* The leader renews every ``retry_period``.  It stops acting once it has not renewed
  for ``renew_deadline`` (10 s), which is shorter than the ``lease_duration`` (15 s)
  others must wait: a leader that is paused, partitioned or whose API calls hang
  gives up before anyone else may start.
* On a graceful stop the leader releases the Lease (holder cleared, duration 1 s), so
  a standby takes over within a retry period instead of a lease duration.

Why not the official client's ``kubernetes.leaderelection``: it measures expiry with
the wall clock, cannot release on shutdown, has no way to ask "am I still the leader
right now?" (which :func:`driftloop.handlers.run` asks before every reconcile), and
sleeps in loops that nothing can stop.  This module is the same algorithm with those
four points fixed, and an injectable clock so it is unit-tested without waiting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from driftloop.api import KindInfo
from driftloop.client import ConflictError, ForwardingKube, KubeClient, Obj

log = logging.getLogger("driftloop.leadership")

LEASE_API_VERSION = "coordination.k8s.io/v1"


@dataclass(frozen=True)
class LeaseTimings:
    """client-go's defaults (controller-runtime uses the same)."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        # The safety margin: a leader must give up before others may take over.
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs retry period < renew deadline < lease duration, got "
                f"{self.retry_period} / {self.renew_deadline} / {self.lease_duration}"
            )


class LeaseStore(Protocol):
    """The three Lease calls an elector makes."""

    def get_lease(self, namespace: str, name: str) -> Obj | None: ...

    def create_lease(self, lease: Obj) -> Obj:
        """Create; :class:`ConflictError` when it already exists."""
        ...

    def update_lease(self, lease: Obj) -> Obj:
        """Replace, conditioned on ``metadata.resourceVersion``; :class:`ConflictError` if stale."""
        ...


class Leadership(Protocol):
    def held(self) -> bool:
        """Whether this process may act now."""
        ...


class NoElection:
    """A single replica that never elects: always the leader (``--no-leader-elect``)."""

    def held(self) -> bool:
        return True


def _micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """One candidate for one Lease.  Thread-safe: a renew thread and a watchdog share it."""

    def __init__(
        self,
        store: LeaseStore,
        namespace: str,
        name: str,
        identity: str,
        timings: LeaseTimings = LeaseTimings(),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timings = timings
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        #: The last Lease spec seen and when (our clock) it was first seen so.
        self._observed: Obj | None = None
        self._observed_at = 0.0
        #: When the last successful acquire/renew *started* (None: not the leader).
        self._renewed_at: float | None = None

    # ------------------------------------------------------------------ queries

    def held(self) -> bool:
        """The leader, renewed less than ``renew_deadline`` ago."""
        with self._lock:
            return (
                self._renewed_at is not None
                and self._clock() - self._renewed_at < self.timings.renew_deadline
            )

    def holder(self) -> str:
        """The holder in the last record seen ("" when none)."""
        with self._lock:
            return str((self._observed or {}).get("holderIdentity") or "")

    # ------------------------------------------------------------------ actions

    def try_acquire_or_renew(self) -> bool:
        """One attempt (client-go's ``tryAcquireOrRenew``); True when we hold the Lease."""
        started = self._clock()
        now = _micro_time(self._wall_clock())
        try:
            lease = self.store.get_lease(self.namespace, self.name)
            if lease is None:
                spec = self._spec(acquire_time=now, renew_time=now, transitions=0)
                self.store.create_lease(self._manifest(spec))
                return self._won(spec, started)
            spec = dict(lease.get("spec") or {})
            self._observe(spec, started)
            holder = spec.get("holderIdentity") or ""
            if holder and holder != self.identity and not self._expired(spec, started):
                return self._lost()
            if holder == self.identity:
                new = self._spec(
                    acquire_time=spec.get("acquireTime") or now,
                    renew_time=now,
                    transitions=int(spec.get("leaseTransitions") or 0),
                )
            else:
                new = self._spec(
                    acquire_time=now,
                    renew_time=now,
                    transitions=int(spec.get("leaseTransitions") or 0) + 1,
                )
            self.store.update_lease({**lease, "spec": new})
            if holder != self.identity:
                log.info("%s took the lease over from %r", self.identity, holder or "nobody")
            return self._won(new, started)
        except ConflictError:
            return self._lost()  # another candidate wrote first; re-read next time
        except Exception as error:  # the API unreachable, a timeout: not fatal, retry
            log.warning("lease %s/%s: %s", self.namespace, self.name, error)
            return False

    def release(self) -> bool:
        """Give the Lease up (graceful stop) so a standby takes over at once."""
        if not self.held():
            return False
        now = _micro_time(self._wall_clock())
        try:
            lease = self.store.get_lease(self.namespace, self.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return False
            spec = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1}
            spec["renewTime"] = now
            self.store.update_lease({**lease, "spec": spec})
        except Exception as error:  # best effort: the lease expires anyway
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, error)
            return False
        finally:
            with self._lock:
                self._renewed_at = None
        log.info("%s released the lease", self.identity)
        return True

    # ------------------------------------------------------------------ helpers

    def _spec(self, *, acquire_time: str, renew_time: str, transitions: int) -> Obj:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": round(self.timings.lease_duration),
            "acquireTime": acquire_time,
            "renewTime": renew_time,
            "leaseTransitions": transitions,
        }

    def _manifest(self, spec: Obj) -> Obj:
        return {
            "apiVersion": LEASE_API_VERSION,
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }

    def _observe(self, spec: Obj, at: float) -> None:
        with self._lock:
            if spec != self._observed:
                self._observed, self._observed_at = spec, at

    def _expired(self, spec: Obj, now: float) -> bool:
        duration = float(spec.get("leaseDurationSeconds") or self.timings.lease_duration)
        with self._lock:
            return now - self._observed_at >= duration

    def _won(self, spec: Obj, started: float) -> bool:
        with self._lock:
            self._observed, self._observed_at = spec, started
            self._renewed_at = started
        return True

    def _lost(self) -> bool:
        with self._lock:
            self._renewed_at = None
        return False


def campaign(
    elector: LeaderElector,
    stop: threading.Event,
    sleep: Callable[[float], object] | None = None,
) -> bool:
    """Block until ``elector`` holds the Lease (True) or ``stop`` is set (False)."""
    wait = sleep or stop.wait
    log.info("%s is a candidate for lease %s/%s", elector.identity, elector.namespace, elector.name)
    while not stop.is_set():
        if elector.try_acquire_or_renew():
            log.info("%s is the leader", elector.identity)
            return True
        wait(elector.timings.retry_period)
    return False


def keep_leading(
    elector: LeaderElector,
    on_lost: Callable[[], None],
    stop: threading.Event,
) -> list[threading.Thread]:
    """Start the renew loop and its watchdog (daemon threads).

    The watchdog, not the renew loop, calls ``on_lost``: a renew call that hangs on a
    dead connection cannot keep the process acting past the renew deadline.
    """
    period = elector.timings.retry_period

    def renew() -> None:
        while not stop.wait(period):
            elector.try_acquire_or_renew()

    def watchdog() -> None:
        while not stop.wait(min(0.5, period / 4)):
            if not elector.held():
                log.critical(
                    "%s lost lease %s/%s (held by %r): stopping",
                    elector.identity,
                    elector.namespace,
                    elector.name,
                    elector.holder(),
                )
                on_lost()
                return

    threads = [
        threading.Thread(target=renew, name="lease-renew", daemon=True),
        threading.Thread(target=watchdog, name="lease-watchdog", daemon=True),
    ]
    for thread in threads:
        thread.start()
    return threads


class NotLeaderError(Exception):
    """A write refused because this process no longer holds the Lease."""


class FencedKube(ForwardingKube):
    """A :class:`~driftloop.client.KubeClient` whose writes go through only while
    ``leadership.held()``.

    Leases are not fences: a leader paused (SIGSTOP, a long GC, a frozen VM) past its
    lease may wake up in the middle of a reconcile after another replica took over.
    The watchdog ends such a process within half a second; this check closes the
    window before it does, on every write rather than once per reconcile.
    """

    def __init__(self, kube: KubeClient, leadership: Leadership) -> None:
        super().__init__(kube)
        self._leadership = leadership

    def _fence(self) -> None:
        if not self._leadership.held():
            raise NotLeaderError("this replica no longer holds the leader lease")

    def create(self, manifest: Obj) -> tuple[Obj, bool]:
        self._fence()
        return super().create(manifest)

    def apply_deployment(self, manifest: Obj) -> Obj:
        self._fence()
        return super().apply_deployment(manifest)

    def patch_status(
        self,
        kind: KindInfo,
        namespace: str,
        name: str,
        patch: Obj,
        resource_version: str | None = None,
    ) -> Obj | None:
        self._fence()
        return super().patch_status(kind, namespace, name, patch, resource_version)

    def delete_job(self, namespace: str, name: str) -> None:
        self._fence()
        super().delete_job(namespace, name)

    def delete_deployment(self, namespace: str, name: str) -> None:
        self._fence()
        super().delete_deployment(namespace, name)

    def apply_hpa(self, manifest: Obj) -> Obj:
        self._fence()
        return super().apply_hpa(manifest)

    def delete_hpa(self, namespace: str, name: str) -> None:
        self._fence()
        super().delete_hpa(namespace, name)

    def delete_service(self, namespace: str, name: str) -> None:
        self._fence()
        super().delete_service(namespace, name)
