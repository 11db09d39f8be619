"""Scheduled retraining (``spec.retraining.schedule``), through the Deployment reconcile -
one named case each.

Each case serves version 1 of ``iris``, sets the case's retraining policy (no
Prometheus address: the drift triggers read nothing, the schedule needs none), seeds
the ``nextScheduleTime`` an earlier reconcile recorded and the TrainingRuns, and runs
one reconcile at NOW (12:00:00Z).  It compares the Schedule and Retraining conditions,
the schedule's status fields, the writes, the events and the wake-up asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from driftloop import schedule
from driftloop.api import API_VERSION

from .deploy_harness import (
    conditions_of,
    deployment_status,
    edit_spec,
    message_of,
    run,
    serve,
    set_status,
)
from .harness import NOW, NS, deployment, events, later, model_version, seeded, text
from .test_drift import TEMPLATE, Answers, observation, training_run

Obj = dict[str, Any]

TICK = text(NOW)
NEXT = text(later(60))
RUN = f"iris-schedule-{schedule.tick_window(NOW)}"
PATCH = "patch_status Deployment/iris"
STARTED = f"schedule: tick {TICK}: started TrainingRun {RUN}"
RECORD = {"trainingRun": RUN, "trigger": "schedule", "value": None, "time": TICK}
MISSED = f"schedule: tick {TICK} not started within startingDeadline 5m: skipped"
SCHEDULED = ("True", "Scheduled", f"* * * * * (UTC): next {NEXT}")


def policy(**fields: Any) -> Obj:
    return {"schedule": "* * * * *", "cooldown": "1s", "template": TEMPLATE, **fields}


@dataclass(frozen=True)
class Case:
    name: str
    retraining: Obj
    #: nextScheduleTime as the previous reconcile recorded it.
    recorded: str | None = None
    runs: tuple[Obj, ...] = ()
    conditions: tuple[Obj, ...] = ()
    #: Seconds past NOW the reconcile runs at.
    clock: float = 0
    # What the reconcile under test must do.
    schedule: tuple[str, str, str] | None = SCHEDULED
    retraining_condition: tuple[str, str, str] | None = None
    next_time: str | None = NEXT
    last_time: str | None = None
    writes: tuple[str, ...] = (PATCH,)
    events: tuple[tuple[str, str, str], ...] = ()
    requeue: float | None = 60


CASES = [
    Case(
        "a new schedule starts nothing: the first run is at the next tick",
        retraining=policy(),
    ),
    Case(
        "at the recorded tick: one run, named after the tick",
        retraining=policy(),
        recorded=TICK,
        retraining_condition=("True", "Scheduled", STARTED),
        last_time=TICK,
        writes=(f"create TrainingRun/{RUN}", PATCH),
        events=(("Normal", "RetrainingStarted", STARTED),),
    ),
    Case(
        "after downtime across ticks: one catch-up run, for the latest tick",
        retraining=policy(),
        recorded=text(later(-180)),
        retraining_condition=(
            "True",
            "Scheduled",
            f"{STARTED} (catching up; 3 earlier tick(s) missed)",
        ),
        last_time=TICK,
        writes=(f"create TrainingRun/{RUN}", PATCH),
        events=(
            ("Normal", "RetrainingStarted", f"{STARTED} (catching up; 3 earlier tick(s) missed)"),
        ),
    ),
    Case(
        "a retry finds the tick's run (the last status write was lost): nothing new",
        retraining=policy(),
        recorded=TICK,
        runs=(training_run(RUN, NOW, "Running"),),
        last_time=TICK,
    ),
    Case(
        "maxConcurrent runs in flight: the tick is skipped, not deferred",
        retraining=policy(maxConcurrent=1),
        recorded=TICK,
        runs=(training_run("iris-drift-1", later(-600), "Running"),),
        retraining_condition=(
            "False",
            "MaxConcurrent",
            f"schedule: tick {TICK} skipped: 1 retraining run(s) in flight",
        ),
        events=(
            (
                "Normal",
                "ScheduledRunSkipped",
                f"schedule: tick {TICK} skipped: 1 retraining run(s) in flight",
            ),
        ),
    ),
    Case(
        "inside the cooldown: the tick is skipped",
        retraining=policy(cooldown="30m"),
        recorded=TICK,
        runs=(training_run("iris-drift-1", later(-600), "Succeeded"),),
        retraining_condition=(
            "False",
            "Cooldown",
            f"schedule: tick {TICK} skipped: cooldown: 1200s left",
        ),
        events=(
            (
                "Normal",
                "ScheduledRunSkipped",
                f"schedule: tick {TICK} skipped: cooldown: 1200s left",
            ),
        ),
    ),
    Case(
        "the latest tick is older than the starting deadline: missed, said so",
        retraining=policy(schedule="0 * * * *", startingDeadline="5m"),
        recorded=text(later(-7200)),
        clock=600,  # 12:10, ten minutes past the 12:00 tick
        schedule=("True", "Scheduled", f"0 * * * * (UTC): next {text(later(3600))}"),
        next_time=text(later(3600)),
        retraining_condition=("False", "MissedSchedule", MISSED),
        events=(("Warning", "MissedSchedule", MISSED),),
        requeue=3000,
    ),
    Case(
        "a time zone: the next tick is the zone's 03:00",
        retraining=policy(schedule="0 3 * * *", timeZone="Europe/Berlin"),
        schedule=("True", "Scheduled", "0 3 * * * (Europe/Berlin): next 2026-12-01T02:00:00Z"),
        next_time="2026-12-01T02:00:00Z",
        requeue=14 * 3600,
    ),
    Case(
        "a cron field out of range: InvalidSchedule, serving goes on",
        retraining=policy(schedule="61 * * * *"),
        schedule=("False", "InvalidSchedule", "schedule '61 * * * *': Bad minute"),
        next_time=None,
        events=(("Warning", "InvalidSchedule", "schedule '61 * * * *': Bad minute"),),
        requeue=None,
    ),
    Case(
        "a time zone the tz database lacks: InvalidTimeZone",
        retraining=policy(timeZone="Mars/Olympus_Mons"),
        schedule=(
            "False",
            "InvalidTimeZone",
            "time zone 'Mars/Olympus_Mons' is not in the tz database",
        ),
        next_time=None,
        events=(
            (
                "Warning",
                "InvalidTimeZone",
                "time zone 'Mars/Olympus_Mons' is not in the tz database",
            ),
        ),
        requeue=None,
    ),
    Case(
        "still invalid at the next reconcile: no second event",
        retraining=policy(schedule="61 * * * *"),
        conditions=(
            {
                "type": "Schedule",
                "status": "False",
                "reason": "InvalidSchedule",
                "message": "schedule '61 * * * *': Bad minute",
                "lastTransitionTime": text(later(-60)),
                "observedGeneration": 1,
            },
        ),
        schedule=("False", "InvalidSchedule", "schedule '61 * * * *': Bad minute"),
        next_time=None,
        requeue=None,
    ),
    Case(
        "the schedule removed: its time and condition go",
        retraining={"template": TEMPLATE},
        recorded=TICK,
        schedule=None,
        next_time=None,
        requeue=None,
    ),
    Case(
        "retraining disabled: a due tick starts nothing",
        retraining=policy(enabled=False),
        recorded=TICK,
        schedule=None,
        next_time=None,
        requeue=None,
    ),
]


def _given(case: Case) -> Any:
    kube = seeded(deployment(), model_version(1), *case.runs)
    serve(kube)
    edit_spec(retraining=case.retraining)(kube)
    fields: Obj = {}
    if case.recorded is not None:
        fields["nextScheduleTime"] = case.recorded
    if case.conditions:
        current = deployment_status(kube).get("conditions") or []
        fields["conditions"] = [*current, *case.conditions]
    if fields:
        set_status(**fields)(kube)
    kube.writes.clear()
    return kube


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_schedule(case: Case) -> None:
    kube = _given(case)

    outcome = run(kube, now=later(case.clock))

    status = deployment_status(kube)
    found = conditions_of(status)
    if case.schedule is None:
        assert "Schedule" not in found
    else:
        assert (*found["Schedule"], message_of(status, "Schedule")) == case.schedule
    if case.retraining_condition is None:
        assert "Retraining" not in found
    else:
        assert (*found["Retraining"], message_of(status, "Retraining")) == (
            case.retraining_condition
        )
    assert status.get("nextScheduleTime") == case.next_time
    assert status.get("lastScheduleTime") == case.last_time
    assert [repr(w) for w in kube.writes] == list(case.writes)
    assert events(outcome) == list(case.events)
    assert outcome.requeue_after == case.requeue
    if case.retraining_condition and case.retraining_condition[1] == "Scheduled":
        assert status["retrainHistory"][0] == RECORD
    assert found["Ready"] == ("True", "Serving")  # the schedule never disturbs serving


def test_the_scheduled_run_is_the_deployments_and_labelled_schedule() -> None:
    kube = _given(CASES[1])
    run(kube)
    created = next(w.body for w in kube.writes if w.verb == "create")
    meta = created["metadata"]
    assert meta["name"] == RUN
    assert meta["labels"]["driftloop.dev/trigger"] == "schedule"
    assert meta["labels"]["driftloop.dev/deployment"] == "iris"
    assert [(r["kind"], r["name"]) for r in meta["ownerReferences"]] == [("Deployment", "iris")]
    assert created["spec"]["datasetRef"] == {"name": "iris"}


def test_the_next_reconciles_until_the_next_tick_start_nothing_more() -> None:
    """Reconciles between two ticks (any event: a run's progress, a pod) find the tick
    done; the next tick starts the next run, one per tick."""
    kube = _given(CASES[1])
    run(kube)
    for seconds in (1, 30, 59):
        kube.writes.clear()
        outcome = run(kube, now=later(seconds))
        assert not [w for w in kube.writes if w.verb == "create"]
        assert outcome.requeue_after == pytest.approx(60 - seconds)
    finished = kube.stored(API_VERSION, "TrainingRun", NS, RUN)
    kube.update_status(finished, phase="Succeeded")  # else maxConcurrent 1 skips the tick
    kube.writes.clear()
    run(kube, now=later(60))
    created = [w.body["metadata"]["name"] for w in kube.writes if w.verb == "create"]
    assert created == [f"iris-schedule-{schedule.tick_window(later(60))}"]


def test_a_tick_and_a_drift_trigger_in_one_pass_share_maxconcurrent() -> None:
    """The schedule's run goes first; the trigger that fires in the same pass is refused
    by maxConcurrent 1 against it, and does not replace the Retraining condition."""
    kube = _given(
        Case(
            "both",
            retraining=policy(
                prometheus={"address": "http://prometheus.monitoring:9090"}, maxConcurrent=1
            ),
            recorded=TICK,
        )
    )
    set_status(drift=[observation(0.2, later(-30), since=later(-60))])(kube)

    run(kube, prometheus=Answers(1.3))  # the calibrated default fires above 1

    created = [w.body["metadata"]["name"] for w in kube.writes if w.verb == "create"]
    assert created == [RUN]
    status = deployment_status(kube)
    assert conditions_of(status)["Retraining"] == ("True", "Scheduled")
    assert status["drift"][0]["firingSince"] == text(later(-60))  # still firing


def test_the_wake_up_is_never_later_than_the_next_tick() -> None:
    kube = _given(CASES[0])
    outcome = run(kube, now=NOW + timedelta(seconds=59, microseconds=500_000))
    # 0.5s to the tick: the shortest wake-up (1s) still lands just after it.
    assert outcome.requeue_after == 1.0
