from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import driftloop_contract as contract
from driftloop import conditions, policies
from driftloop.builders import Owner
from driftloop.client import CrdCache, KubeClient
from driftloop.config import OperatorConfig
from driftloop.prometheus import PrometheusQuery, query_scalar

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Outcome:
    """Desired status fields (``None`` removes a field) and events to post."""

    status: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    #: Metrics label: the object's phase after this reconcile.
    phase: str | None = None
    #: Reconcile again after so many seconds even if nothing changes: time is an input
    #: (a rollout deadline, a refresh window, a trigger's next evaluation), or the status
    #: records a step the next reconcile builds on (a version claim).
    requeue_after: float | None = None


@dataclass(frozen=True)
class Context:
    """Everything a reconciler needs besides the object itself."""

    kube: KubeClient
    config: OperatorConfig
    now: datetime
    #: Optional CRDs (ServiceMonitor), looked up at most every few minutes.
    crds: CrdCache
    #: Runs one instant PromQL query: (address, query, bearer token) -> value.
    query_prometheus: PrometheusQuery = query_scalar

    @property
    def now_text(self) -> str:
        return self.now.replace(microsecond=0).isoformat().replace("+00:00", "Z")


Reconciler = Callable[[Context, Obj], Outcome]

#: The shortest time-based requeue (a deadline just passed still waits this long).
MIN_WAKE_SECONDS = 1.0

#: Ready=False reasons that no amount of waiting fixes (kstatus "Stalled").
STALLED_REASONS = frozenset(
    {
        "InvalidSpec",
        "ValidationFailed",
        "InvalidHyperparameters",
        "UnknownEstimator",
        "InvalidRequest",
        "ResultUnreadable",
        "DeadlineExceeded",
        contract.REASON_SNAPSHOT_MISSING,
        contract.REASON_SNAPSHOT_CORRUPT,
        "ReproduceModelMismatch",  # trainingrun.REPRODUCE_MODEL_MISMATCH
        policies.INVALID_IMAGE,
        *policies.DATA_REFUSALS,
    }
)


def owner_of(body: Obj) -> Owner:
    meta = body["metadata"]
    return Owner(body["kind"], meta["name"], meta["namespace"], meta["uid"])


class StatusWriter:
    """Builds a status in place: conditions plus fields, stamped with the generation."""

    def __init__(self, body: Obj, now: str) -> None:
        self.current: Mapping[str, Any] = body.get("status") or {}
        self.generation: int = int(body["metadata"].get("generation") or 0)
        self.now = now
        self.fields: dict[str, Any] = {"observedGeneration": self.generation}
        self._conditions: list[dict[str, Any]] = list(self.current.get("conditions") or [])
        self.wake_after: float | None = None

    def wake_in(self, seconds: float) -> None:
        """Reconcile again within ``seconds`` (the earliest of all asked for wins)."""
        seconds = max(seconds, MIN_WAKE_SECONDS)
        self.wake_after = seconds if self.wake_after is None else min(self.wake_after, seconds)

    def condition(self, type_: str, status: bool | str, reason: str, message: str = "") -> None:
        self._conditions = conditions.set_condition(
            self._conditions,
            type_,
            status,
            reason,
            message,
            generation=self.generation,
            now=self.now,
        )

    def ready(self, status: bool | str, reason: str, message: str = "") -> None:
        self.condition(conditions.READY, status, reason, message)

    def keep(self, *types: str) -> None:
        """This reconcile re-judged these conditions and they still hold as they are:
        stamp them with the current generation (else, after a spec edit that changes
        nothing they say, they look unreconciled for good)."""
        self._conditions = [
            {**c, "observedGeneration": self.generation} if c["type"] in types else c
            for c in self._conditions
        ]

    def drop(self, *types: str) -> None:
        """Remove conditions that no longer apply (a feature the spec turned off)."""
        self._conditions = [c for c in self._conditions if c["type"] not in types]

    def _kstatus(self, terminal: bool) -> None:
        """Mirror Ready into kstatus' Reconciling / Stalled, which Flux and kstatus read."""
        ready = next((c for c in self._conditions if c["type"] == conditions.READY), None)
        self._conditions = [
            c for c in self._conditions if c["type"] not in ("Reconciling", "Stalled")
        ]
        if ready is None or ready["status"] == "True":
            return
        reason = ready["reason"]
        stalled = terminal or (
            reason not in policies.POD_WAITING_REASONS
            and (reason in STALLED_REASONS or reason.endswith("Failed"))
        )
        previous = [dict(c) for c in self.current.get("conditions") or []]
        kind = "Stalled" if stalled else "Reconciling"
        mirrored = conditions.set_condition(
            previous,
            kind,
            True,
            reason,
            ready.get("message", ""),
            generation=self.generation,
            now=self.now,
        )
        self._conditions.append(next(c for c in mirrored if c["type"] == kind))
        self._conditions.sort(key=lambda c: (c["type"] != conditions.READY, c["type"]))

    def outcome(
        self,
        events: list[Event] | None = None,
        phase: str | None = None,
        *,
        terminal: bool = False,
        requeue_after: float | None = None,
    ) -> Outcome:
        """``terminal``: the object never changes again, so a Ready=False is Stalled."""
        self._kstatus(terminal)
        if requeue_after is not None:
            self.wake_in(requeue_after)
        return Outcome(
            status={**self.fields, "conditions": self._conditions},
            events=events or [],
            phase=phase,
            requeue_after=self.wake_after,
        )
