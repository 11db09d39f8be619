"""Pure schedule policy: which tick of ``spec.retraining.schedule`` starts a run now.

Cron expressions are evaluated by cronsim (five fields as Vixie/Debian cron, with
``L`` and ``#``; daylight-saving gaps and repeats handled as cron does) in the
schedule's time zone (zoneinfo).  The clock is an argument: nothing here reads it.

The state between two reconciles is one timestamp the status keeps,
``nextScheduleTime``: the first tick after the previous evaluation.  Once the clock
passes it, the latest tick at or before now is due (ticks before it were missed:
after operator downtime at most one catch-up run, as a CronJob), unless it is older
than the starting deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

#: The condition reasons of a schedule the API server let through and cron refuses:
#: a field out of range or an unknown name ("61 * * * *", "0 0 * * fun") ...
INVALID_SCHEDULE = "InvalidSchedule"
#: ... or a time zone the tz database does not have.
INVALID_TIME_ZONE = "InvalidTimeZone"

#: The macros Kubernetes CronJobs accept, as the five fields they stand for.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

#: Missed ticks counted for a message at most (a CronJob gives up counting at 100 too).
MAX_COUNTED = 100


class ScheduleError(ValueError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Schedule:
    expression: str
    zone: ZoneInfo

    def _fields(self) -> str:
        return MACROS.get(self.expression, self.expression)

    def after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment``, in UTC."""
        tick = next(CronSim(self._fields(), moment.astimezone(self.zone)))
        return tick.astimezone(UTC)

    def at_or_before(self, moment: datetime) -> datetime | None:
        """The latest tick at or before ``moment``, in UTC (None: none in cronsim's range)."""
        # Ticks fall on whole minutes: one second past the floor includes a tick at it.
        start = moment.replace(microsecond=0) + timedelta(seconds=1)
        try:
            tick = next(CronSim(self._fields(), start.astimezone(self.zone), reverse=True))
        except StopIteration:
            return None
        return tick.astimezone(UTC)

    def is_tick(self, moment: datetime) -> bool:
        return self.after(moment - timedelta(seconds=1)) == moment

    def ticks_between(self, start: datetime, end: datetime) -> int:
        """Ticks in [start, end), counted up to :data:`MAX_COUNTED`."""
        count, moment = 0, start - timedelta(seconds=1)
        while count < MAX_COUNTED:
            moment = self.after(moment)
            if moment >= end:
                break
            count += 1
        return count


def parse(expression: str, time_zone: str | None) -> Schedule:
    """The schedule, or :class:`ScheduleError` naming what is wrong with it."""
    zone_name = time_zone or "UTC"
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a folder
        raise ScheduleError(
            INVALID_TIME_ZONE, f"time zone {zone_name!r} is not in the tz database"
        ) from None
    schedule = Schedule(expression.strip(), zone)
    try:
        schedule.after(datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as error:
        raise ScheduleError(INVALID_SCHEDULE, f"schedule {expression!r}: {error}") from None
    except StopIteration:  # valid fields that never match together (e.g. 30 February)
        raise ScheduleError(INVALID_SCHEDULE, f"schedule {expression!r} never fires") from None
    return schedule


@dataclass(frozen=True)
class Plan:
    """What to do about the schedule at one reconcile."""

    #: The tick to start a run for now (None: no tick is due).
    tick: datetime | None
    #: The first tick after now: the status shows it and the reconcile wakes then.
    next: datetime
    #: A due tick not started because it is older than the starting deadline.
    missed: datetime | None = None
    #: Ticks before the due one that passed unstarted (the operator was down).
    skipped: int = 0


def plan(
    schedule: Schedule,
    now: datetime,
    expected: datetime | None,
    starting_deadline: timedelta | None,
) -> Plan:
    """The tick due at ``now``, given ``expected``, the next tick the status recorded.

    Without a recorded tick (a new schedule), or with one the schedule no longer has
    (the expression or time zone changed), nothing is due: the first run is at the
    first tick after now, as a new CronJob's.
    """
    following = schedule.after(now)
    if expected is None or expected > now or not schedule.is_tick(expected):
        return Plan(tick=None, next=following)
    latest = schedule.at_or_before(now)
    if latest is None or latest < expected:  # cannot happen for a tick <= now; be safe
        return Plan(tick=None, next=following)
    skipped = schedule.ticks_between(expected, latest)
    if starting_deadline is not None and now - latest > starting_deadline:
        return Plan(tick=None, next=following, missed=latest, skipped=skipped)
    return Plan(tick=latest, next=following, skipped=skipped)


def tick_window(tick: datetime) -> int:
    """The tick in a run's name: minutes since the epoch (cron's resolution)."""
    return int(tick.timestamp() // 60)
