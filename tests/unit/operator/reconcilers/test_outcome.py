"""StatusWriter: conditions stamped with the generation, Ready mirrored into kstatus.

kstatus (Flux, ``kubectl wait``, cli-utils) reads ``Reconciling`` and ``Stalled``:
the operator sets exactly one of them while Ready is not True, and neither once
it is.  Each table case gives the conditions already in status, what the
reconciler decides now, and every condition the outcome must carry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest

from driftloop.builders import Owner
from driftloop.client import CrdCache
from driftloop.fake import FakeKube
from driftloop.reconcilers import Context, Event, Outcome
from driftloop.reconcilers._outcome import STALLED_REASONS, StatusWriter, owner_of

from .harness import CONFIG, NOW, Obj, text, training_run

T0 = text(NOW - timedelta(hours=2))
T_NOW = text(NOW)
#: (type, status, reason, message, lastTransitionTime)
Cond = tuple[str, str, str, str, str]


def condition(type_: str, status: str, reason: str, message: str = "", at: str = T0) -> Obj:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": at,
        "observedGeneration": 3,
    }


@dataclass(frozen=True)
class Case:
    name: str
    previous: Sequence[Obj]
    #: Conditions the reconciler sets now: (type, status, reason, message).
    sets: Sequence[tuple[str, bool | str, str, str]]
    want: Sequence[Cond]
    terminal: bool = False


CASES = [
    Case(
        "no Ready condition: no kstatus condition either",
        [],
        [("Approved", True, "GatesPassed", "")],
        [("Approved", "True", "GatesPassed", "", T_NOW)],
    ),
    Case(
        "nothing set and nothing before: no conditions",
        [],
        [],
        [],
    ),
    Case(
        "Ready=True: no Reconciling",
        [],
        [("Ready", True, "Validated", "150 rows")],
        [("Ready", "True", "Validated", "150 rows", T_NOW)],
    ),
    Case(
        "Ready=True clears an earlier Stalled and keeps other conditions, Ready first",
        [
            condition("Stalled", "True", "ValidationFailed"),
            condition("Approved", "True", "GatesPassed"),
            condition("Ready", "False", "ValidationFailed"),
        ],
        [("Ready", True, "Validated", "")],
        [
            ("Ready", "True", "Validated", "", T_NOW),
            ("Approved", "True", "GatesPassed", "", T0),
        ],
    ),
    Case(
        "a waiting reason: Reconciling, with Ready's reason and message",
        [],
        [("Ready", False, "Validating", "Job iris-profile-g1 is running")],
        [
            ("Ready", "False", "Validating", "Job iris-profile-g1 is running", T_NOW),
            ("Reconciling", "True", "Validating", "Job iris-profile-g1 is running", T_NOW),
        ],
    ),
    Case(
        "Ready=Unknown is reconciling too",
        [],
        [("Ready", "Unknown", "Progressing", "")],
        [
            ("Ready", "Unknown", "Progressing", "", T_NOW),
            ("Reconciling", "True", "Progressing", "", T_NOW),
        ],
    ),
    Case(
        "any reason ending in Failed stalls",
        [],
        [("Ready", False, "TrainingFailed", "accuracy 0.6 < 0.9")],
        [
            ("Ready", "False", "TrainingFailed", "accuracy 0.6 < 0.9", T_NOW),
            ("Stalled", "True", "TrainingFailed", "accuracy 0.6 < 0.9", T_NOW),
        ],
    ),
    Case(
        "a terminal object stalls whatever its reason",
        [],
        [("Ready", False, "DataUnavailable", "no such file")],
        [
            ("Ready", "False", "DataUnavailable", "no such file", T_NOW),
            ("Stalled", "True", "DataUnavailable", "no such file", T_NOW),
        ],
        terminal=True,
    ),
    Case(
        "still reconciling, for a new reason: the transition time stays",
        [
            condition("Ready", "False", "DatasetNotReady"),
            condition("Reconciling", "True", "DatasetNotReady"),
        ],
        [("Ready", False, "Training", "Job iris-rf-train is running")],
        [
            ("Ready", "False", "Training", "Job iris-rf-train is running", T0),
            ("Reconciling", "True", "Training", "Job iris-rf-train is running", T0),
        ],
    ),
    Case(
        "reconciling turns stalled: Reconciling goes, Stalled starts now",
        [
            condition("Ready", "False", "Validating"),
            condition("Reconciling", "True", "Validating"),
        ],
        [("Ready", False, "ValidationFailed", "rule minRows failed")],
        [
            ("Ready", "False", "ValidationFailed", "rule minRows failed", T0),
            ("Stalled", "True", "ValidationFailed", "rule minRows failed", T_NOW),
        ],
    ),
    Case(
        "stalled turns reconciling: Stalled goes, Reconciling starts now",
        [
            condition("Ready", "False", "InvalidSpec"),
            condition("Stalled", "True", "InvalidSpec"),
        ],
        [("Ready", False, "ArtifactStoreMissing", "no PVC")],
        [
            ("Ready", "False", "ArtifactStoreMissing", "no PVC", T0),
            ("Reconciling", "True", "ArtifactStoreMissing", "no PVC", T_NOW),
        ],
    ),
    Case(
        "a Ready=False left from before is mirrored even when nothing set it now",
        [condition("Ready", "False", "DatasetNotFound", "Dataset 'iris' does not exist")],
        [],
        [
            ("Ready", "False", "DatasetNotFound", "Dataset 'iris' does not exist", T0),
            ("Reconciling", "True", "DatasetNotFound", "Dataset 'iris' does not exist", T_NOW),
        ],
    ),
    Case(
        "the mirror sorts after Ready among the others",
        [condition("Approved", "False", "GatesFailed"), condition("Zeta", "True", "X")],
        [("Ready", False, "Scaling", "")],
        [
            ("Ready", "False", "Scaling", "", T_NOW),
            ("Approved", "False", "GatesFailed", "", T0),
            ("Reconciling", "True", "Scaling", "", T_NOW),
            ("Zeta", "True", "X", "", T0),
        ],
    ),
]


def _write(previous: Sequence[Obj], generation: int | None = 4) -> StatusWriter:
    meta: Obj = {"name": "iris", "namespace": "ml", "uid": "u"}
    if generation is not None:
        meta["generation"] = generation
    body: Obj = {"metadata": meta}
    if previous:
        body["status"] = {"observedGeneration": 3, "conditions": list(previous)}
    return StatusWriter(body, T_NOW)


def _summary(outcome: Outcome) -> list[Cond]:
    return [
        (c["type"], c["status"], c["reason"], c["message"], c["lastTransitionTime"])
        for c in outcome.status["conditions"]
    ]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_kstatus_mirror(case: Case) -> None:
    status = _write(case.previous)
    for type_, value, reason, message in case.sets:
        status.condition(type_, value, reason, message)
    outcome = status.outcome(terminal=case.terminal)
    assert _summary(outcome) == list(case.want)
    # Everything set now (the mirror too) carries the generation it was decided at.
    decided = {t for t, *_ in case.sets} | {"Reconciling", "Stalled"}
    for c in outcome.status["conditions"]:
        assert c["observedGeneration"] == (4 if c["type"] in decided else 3), c


@pytest.mark.parametrize("reason", sorted(STALLED_REASONS))
def test_terminal_reasons_stall(reason: str) -> None:
    status = _write([])
    status.ready(False, reason, "why")
    assert _summary(status.outcome())[1] == ("Stalled", "True", reason, "why", T_NOW)


@pytest.mark.parametrize(
    "reason", ["Validating", "Training", "DatasetNotReady", "DataUnavailable", "Failing"]
)
def test_other_reasons_reconcile(reason: str) -> None:
    status = _write([])
    status.ready(False, reason)
    assert _summary(status.outcome())[1] == ("Reconciling", "True", reason, "", T_NOW)


def test_outcome_carries_fields_events_and_phase() -> None:
    status = _write([])
    status.fields.update(phase="Ready", version=None)
    status.ready(True, "Validated")
    event = Event("Normal", "Validated", "150 rows")
    outcome = status.outcome([event], "Ready")
    assert outcome.status == {
        "observedGeneration": 4,
        "phase": "Ready",
        "version": None,  # None removes the field from status
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Validated",
                "message": "",
                "lastTransitionTime": T_NOW,
                "observedGeneration": 4,
            }
        ],
    }
    assert (outcome.events, outcome.phase) == ([event], "Ready")


def test_a_new_object_is_generation_zero_with_no_events() -> None:
    status = _write([], generation=None)
    assert (status.generation, status.current) == (0, {})
    outcome = status.outcome()
    assert outcome == Outcome(status={"observedGeneration": 0, "conditions": []})
    assert (Outcome().status, Outcome().events, Outcome().phase) == ({}, [], None)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (NOW, "2026-11-30T12:00:00Z"),
        (NOW.replace(microsecond=999_999), "2026-11-30T12:00:00Z"),  # truncated, not rounded
        (datetime(2027, 1, 2, 3, 4, 5, 600, tzinfo=UTC), "2027-01-02T03:04:05Z"),
        (NOW.astimezone(timezone(timedelta(hours=2))), "2026-11-30T14:00:00+02:00"),
    ],
)
def test_context_now_text(now: datetime, expected: str) -> None:
    kube = FakeKube()
    assert Context(kube, CONFIG, now, CrdCache(kube)).now_text == expected


def test_owner_of() -> None:
    assert owner_of(training_run()) == Owner("TrainingRun", "iris-rf", "ml", "iris-rf-uid")
