"""Fault injection on the embedded cluster: the seed, the faults, the invariant checks
after each, and the recovery times the suite prints (tests/faults).

* ``DRIFTLOOP_FAULT_SEED``  the random seed (default: a fresh one, printed); every
  random choice of a run comes from :attr:`FaultRun.rng`, and every failure message
  names the seed.
* ``DRIFTLOOP_FAULT_SCALE`` ``quick`` (default: what ``make test`` runs, a few minutes) or
  ``long`` (``make test-faults``: more lifecycles and kills).

Faults are real: the operator process is SIGKILLed (:class:`OperatorProcess`), the
kube-apiserver is killed and restarted (``hack/cluster.sh restart-apiserver``),
Prometheus and MinIO are stopped and started with their hack/ scripts.
"""

from __future__ import annotations

import contextlib
import os
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from driftloop_testkit.cluster import Kubectl, hack, wait_for
from driftloop_testkit.data import model_version_manifest
from driftloop_testkit.driftloop import GROUP, PLURALS, VERSION, create_cr, get_cr
from driftloop_testkit.invariants import Breach, Snapshot, check_always, check_settled, report

#: How long the operator gets after the last fault before an object that is neither
#: terminal nor Ready counts as stuck. Generous: a bound on "never", not a performance claim.
SETTLE_BOUND_SECONDS = 420.0


@dataclass(frozen=True)
class Scale:
    lifecycles: int
    kills_per_lifecycle: int
    #: seconds between kills are drawn from this range
    kill_gap: tuple[float, float]
    outage_seconds: float
    #: times every open connection to the API server is stalled (each ~70 s to heal)
    stalls: int


SCALES = {
    "quick": Scale(
        lifecycles=1, kills_per_lifecycle=8, kill_gap=(3.0, 15.0), outage_seconds=60, stalls=1
    ),
    "long": Scale(
        lifecycles=3, kills_per_lifecycle=15, kill_gap=(2.0, 20.0), outage_seconds=90, stalls=2
    ),
}


def fault_scale() -> Scale:
    name = os.environ.get("DRIFTLOOP_FAULT_SCALE", "quick")
    if name not in SCALES:
        raise ValueError(f"DRIFTLOOP_FAULT_SCALE={name!r}: one of {sorted(SCALES)}")
    return SCALES[name]


def fault_seed() -> int:
    text = os.environ.get("DRIFTLOOP_FAULT_SEED")
    return int(text) if text else random.SystemRandom().randrange(1, 2**31)


@dataclass
class RecoveryLog:
    """Faults injected and the time each took to recover, by fault kind (printed at the
    end of the session; never asserted)."""

    injected: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    recovery: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def fault(self, kind: str) -> None:
        self.injected[kind] += 1

    def recovered(self, kind: str, seconds: float) -> None:
        self.recovery[kind].append(seconds)

    def summary(self, seed: int) -> list[str]:
        lines = [
            f"fault seed {seed}; faults injected: {sum(self.injected.values())} "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.injected.items()))
        ]
        for kind, times in sorted(self.recovery.items()):
            ordered = sorted(times)
            p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
            lines.append(
                f"  recovery after {kind}: n={len(times)} "
                f"p50={statistics.median(ordered):.1f}s p99={p99:.1f}s max={ordered[-1]:.1f}s"
            )
        return lines


@dataclass
class FaultRun:
    """One test's faults: the seeded random source, the namespace and where to record."""

    seed: int
    salt: str  # the test's name: each test has its own random sequence of one seed
    namespace: str
    custom: Any
    kubectl: Kubectl
    log: RecoveryLog
    rng: random.Random = field(init=False)
    checks: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}/{self.salt}")

    # -- reading --------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        def crs(kind: str) -> list[dict[str, Any]]:
            items = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURALS[kind]
            )["items"]
            return list(items)

        return Snapshot(
            datasets=crs("Dataset"),
            runs=crs("TrainingRun"),
            versions=crs("ModelVersion"),
            deployments=crs("Deployment"),
            jobs=self.kubectl.json("get", "jobs", "-n", self.namespace)["items"],
            predictors=self.kubectl.json("get", "deployments.apps", "-n", self.namespace)["items"],
        )

    def fail(self, breaches: list[Breach], snapshot: Snapshot, when: str) -> None:
        raise AssertionError(report(breaches, snapshot, self.seed, when))

    def check_always(self, when: str) -> Snapshot:
        """The invariants that hold at any moment; fail loudly (seed, objects) if not."""
        snapshot = self.snapshot()
        self.checks += 1
        breaches = check_always(snapshot)
        if breaches:
            self.fail(breaches, snapshot, when)
        return snapshot

    def settle(
        self,
        when: str,
        kind: str | None = None,
        since: float | None = None,
        bound: float = SETTLE_BOUND_SECONDS,
        extra: Callable[[Snapshot], list[Breach]] | None = None,
    ) -> Snapshot:
        """Wait (up to ``bound`` seconds) until every settled invariant holds, checking the
        always-invariants on every poll; record the time from ``since`` as ``kind``'s
        recovery. Fails with the seed and the last breaches when the bound passes."""
        start = since if since is not None else time.monotonic()
        deadline = time.monotonic() + bound
        while True:
            snapshot = self.snapshot()
            self.checks += 1
            always = check_always(snapshot)
            if always:
                self.fail(always, snapshot, when)
            breaches = check_settled(snapshot) + (extra(snapshot) if extra else [])
            if not breaches:
                if kind:
                    self.log.recovered(kind, time.monotonic() - start)
                return snapshot
            if time.monotonic() > deadline:
                self.fail(breaches, snapshot, f"{when}: still unsettled after {bound:.0f}s")
            time.sleep(2)

    def wait_cr(
        self,
        kind: str,
        name: str,
        predicate: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = SETTLE_BOUND_SECONDS,
        always: bool = True,
    ) -> dict[str, Any]:
        """Wait for ``predicate`` on an object, checking the always-invariants meanwhile;
        the timeout message names the seed and the object's last status."""
        last: dict[str, Any] = {}

        def check() -> dict[str, Any] | None:
            nonlocal last
            if always:
                self.check_always(f"while waiting for {what}")
            obj = get_cr(self.custom, self.namespace, kind, name)
            last = obj or {}
            return obj if obj is not None and predicate(obj) else None

        try:
            return wait_for(check, timeout=timeout, interval=1, what=what)  # type: ignore[no-any-return]
        except TimeoutError as error:
            raise AssertionError(
                f"{error} (replay: DRIFTLOOP_FAULT_SEED={self.seed})\n"
                f"last status of {kind}/{name}: {last.get('status')}"
            ) from None

    # -- probing the operator ---------------------------------------------------------
    def canary(self, label: str, timeout: float = SETTLE_BOUND_SECONDS) -> float:
        """Create a hand-registered ModelVersion of a model of its own and wait until the
        operator has judged it (status.approval): proof that the operator sees new
        events. Returns the seconds that took."""
        model = f"canary-{label}"
        started = time.monotonic()
        create_cr(self.custom, self.namespace, model_version_manifest(f"{model}-v1", model, 1))
        self.wait_cr(
            "ModelVersion",
            f"{model}-v1",
            lambda o: bool((o.get("status") or {}).get("approval")),
            what=f"the operator to judge the canary {model}-v1",
            timeout=timeout,
        )
        return time.monotonic() - started


# ---------------------------------------------------------------------------
# the faults outside the operator
# ---------------------------------------------------------------------------
def restart_apiserver(down_seconds: int) -> None:
    """SIGKILL the embedded cluster's kube-apiserver, keep it down, start it again."""
    hack("cluster.sh", "restart-apiserver", str(down_seconds), timeout=300 + down_seconds)


@contextlib.contextmanager
def service_down(script: str, *up_args: str) -> Iterator[None]:
    """``hack/<script> down`` for the block, and ``up`` again whatever happens (others
    share the service)."""
    hack(script, "down", timeout=120)
    try:
        yield
    finally:
        hack(script, "up", *up_args, timeout=600)
