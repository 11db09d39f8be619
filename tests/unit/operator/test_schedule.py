"""The schedule policy (driftloop.schedule) at a clock the test sets: one named case each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from driftloop import schedule


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    name: str
    expression: str
    now: str
    #: The next tick the status recorded at the previous reconcile.
    expected: str | None
    deadline: timedelta | None = None
    time_zone: str | None = None
    # What the plan must say.
    tick: str | None = None
    next: str = ""
    missed: str | None = None
    skipped: int = 0


CASES = [
    Case(
        "a new schedule: nothing due, the first run at the next tick",
        "* * * * *",
        now="2026-11-30T12:00:30",
        expected=None,
        next="2026-11-30T12:01:00",
    ),
    Case(
        "before the recorded tick: nothing due",
        "* * * * *",
        now="2026-11-30T12:00:59",
        expected="2026-11-30T12:01:00",
        next="2026-11-30T12:01:00",
    ),
    Case(
        "at the recorded tick: it is due",
        "* * * * *",
        now="2026-11-30T12:01:00",
        expected="2026-11-30T12:01:00",
        tick="2026-11-30T12:01:00",
        next="2026-11-30T12:02:00",
    ),
    Case(
        "a reconcile a few seconds late: the tick is still due",
        "*/5 * * * *",
        now="2026-11-30T12:05:07",
        expected="2026-11-30T12:05:00",
        tick="2026-11-30T12:05:00",
        next="2026-11-30T12:10:00",
    ),
    Case(
        "after downtime across several ticks: only the latest runs",
        "* * * * *",
        now="2026-11-30T12:04:30",
        expected="2026-11-30T12:01:00",
        tick="2026-11-30T12:04:00",
        next="2026-11-30T12:05:00",
        skipped=3,
    ),
    Case(
        "after downtime, the latest tick within the starting deadline: it runs",
        "0 * * * *",
        now="2026-11-30T15:04:00",
        expected="2026-11-30T13:00:00",
        deadline=timedelta(minutes=5),
        tick="2026-11-30T15:00:00",
        next="2026-11-30T16:00:00",
        skipped=2,
    ),
    Case(
        "after downtime, the latest tick past the starting deadline: missed",
        "0 * * * *",
        now="2026-11-30T15:06:00",
        expected="2026-11-30T13:00:00",
        deadline=timedelta(minutes=5),
        next="2026-11-30T16:00:00",
        missed="2026-11-30T15:00:00",
        skipped=2,
    ),
    Case(
        "no starting deadline: the latest tick runs however late",
        "@daily",
        now="2026-11-30T23:59:00",
        expected="2026-11-28T00:00:00",
        tick="2026-11-30T00:00:00",
        next="2026-12-01T00:00:00",
        skipped=2,
    ),
    Case(
        "the schedule changed (the recorded time is not a tick of it): start afresh",
        "0 3 * * *",
        now="2026-11-30T12:10:00",
        expected="2026-11-30T12:05:00",
        next="2026-12-01T03:00:00",
    ),
    Case(
        "the schedule changed to a finer one: the next tick is the new schedule's",
        "* * * * *",
        now="2026-11-30T12:10:30",
        expected="2026-12-01T00:00:00",
        next="2026-11-30T12:11:00",
    ),
    Case(
        "a time zone: 03:00 in Berlin is 02:00 UTC in winter",
        "0 3 * * *",
        time_zone="Europe/Berlin",
        now="2026-11-30T12:00:00",
        expected=None,
        next="2026-12-01T02:00:00",
    ),
    Case(
        "a time zone: due at the zone's tick",
        "0 3 * * *",
        time_zone="Europe/Berlin",
        now="2026-12-01T02:00:10",
        expected="2026-12-01T02:00:00",
        tick="2026-12-01T02:00:00",
        next="2026-12-02T02:00:00",
    ),
    Case(
        "daylight saving: 03:00 in Berlin is 01:00 UTC in summer",
        "0 3 * * *",
        time_zone="Europe/Berlin",
        now="2026-06-30T12:00:00",
        expected=None,
        next="2026-07-01T01:00:00",
    ),
    Case(
        "daylight saving: a 02:30 tick in the spring gap runs at 03:00 as cron does",
        "30 2 * * *",
        time_zone="Europe/Berlin",
        now="2026-03-28T12:00:00",
        expected=None,
        next="2026-03-29T01:00:00",
    ),
    Case(
        "a macro: @hourly",
        "@hourly",
        now="2026-11-30T12:00:00",
        expected=None,
        next="2026-11-30T13:00:00",
    ),
    Case(
        "day of week by name and the last day of the month",
        "0 0 L * *",
        now="2026-11-30T12:00:00",
        expected=None,
        next="2026-12-31T00:00:00",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_plan(case: Case) -> None:
    cron = schedule.parse(case.expression, case.time_zone)

    plan = schedule.plan(
        cron, at(case.now), at(case.expected) if case.expected else None, case.deadline
    )

    assert plan == schedule.Plan(
        tick=at(case.tick) if case.tick else None,
        next=at(case.next),
        missed=at(case.missed) if case.missed else None,
        skipped=case.skipped,
    )


@pytest.mark.parametrize(
    ("expression", "time_zone", "reason", "message"),
    [
        ("61 * * * *", None, schedule.INVALID_SCHEDULE, "Bad minute"),
        ("0 25 * * *", None, schedule.INVALID_SCHEDULE, "Bad hour"),
        ("0 0 * * fun", None, schedule.INVALID_SCHEDULE, "Bad day-of-week"),
        ("0 0 30 2 *", None, schedule.INVALID_SCHEDULE, "Bad day-of-month"),
        ("*/0 * * * *", None, schedule.INVALID_SCHEDULE, "schedule '*/0 * * * *'"),
        ("0 3 * * *", "Mars/Olympus_Mons", schedule.INVALID_TIME_ZONE, "Mars/Olympus_Mons"),
        ("0 3 * * *", "Europe", schedule.INVALID_TIME_ZONE, "not in the tz database"),
    ],
)
def test_what_cron_or_the_tz_database_refuses_is_named(
    expression: str, time_zone: str | None, reason: str, message: str
) -> None:
    with pytest.raises(schedule.ScheduleError) as error:
        schedule.parse(expression, time_zone)
    assert error.value.reason == reason
    assert message in error.value.message


def test_one_name_per_tick() -> None:
    tick = at("2026-11-30T12:01:00")
    assert schedule.tick_window(tick) == schedule.tick_window(tick + timedelta(seconds=59))
    assert schedule.tick_window(tick) != schedule.tick_window(tick + timedelta(minutes=1))


def test_missed_ticks_are_counted_up_to_a_bound() -> None:
    cron = schedule.parse("* * * * *", None)
    now = at("2026-11-30T12:00:00")
    plan = schedule.plan(cron, now, now - timedelta(days=30), None)
    assert plan.tick == now
    assert plan.skipped == schedule.MAX_COUNTED
