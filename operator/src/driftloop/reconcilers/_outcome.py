from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from driftloop import conditions
from driftloop.builders import Owner
from driftloop.config import OperatorConfig
from driftloop.kube import Kube

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


@dataclass(frozen=True)
class Context:
    """Everything a reconciler needs besides the object itself."""

    kube: Kube
    config: OperatorConfig
    now: datetime

    @property
    def now_text(self) -> str:
        return self.now.replace(microsecond=0).isoformat().replace("+00:00", "Z")


Reconciler = Callable[[Context, Obj], Outcome]


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

    def outcome(self, events: list[Event] | None = None, phase: str | None = None) -> Outcome:
        return Outcome(
            status={**self.fields, "conditions": self._conditions},
            events=events or [],
            phase=phase,
        )
