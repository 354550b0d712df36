"""Deadline timers: armed when an instance enters a state with a deadline, disarmed when it leaves.

This module says when a deadline and its reminders fall due (working days, days, hours, or a
datetime field); the timer rows and their statements are in engine/store/timers.py.

A deadline counts from the nominal time of the event that entered its state (`armed_from`): a
deadline fired late after downtime re-arms the next from its own due time, and the daemon
catches up in nominal order (`due_cutoff`), so downtime never stretches a chain of deadlines.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from engine.policy.spec import Deadline, Duration
from engine.rules.workcalendar import WorkCalendar

# The timer rows live in the store; these names stay importable from here for the executor and daemon.
from engine.store.timers import (  # noqa: F401
    ARMED,
    DISARMED,
    FIRED,
    Timer,
    arm,
    armed,
    disarm,
    mark_fired,
    reminder_rows,
    row,
    submit_due,
    work_pending,
)


def duration_end(duration: Duration, start: datetime, calendar: WorkCalendar) -> datetime:
    """When a span that starts at `start` ends, on the working-day calendar."""
    if duration.working_days is not None:
        return calendar.add_working_days(start, duration.working_days)
    if duration.days is not None:
        return calendar.add_days(start, duration.days)
    if duration.hours is not None:
        return calendar.add_hours(start, duration.hours)
    raise ValueError(f"a duration gives one of working_days, days or hours: {duration!r}")  # Duration validates this


def deadline_due(deadline: Deadline, entered_at: datetime, fields: dict, calendar: WorkCalendar) -> datetime:
    """The deadline's instant: the datetime field named by `at` when set, else the duration."""
    if deadline.at and fields.get(deadline.at):
        return datetime.fromisoformat(fields[deadline.at])
    return duration_end(deadline, entered_at, calendar)


def reminder_times(deadline: Deadline, entered_at: datetime, due_at: datetime, policy) -> list[datetime]:
    """When the deadline's `remind` reminders are sent: those after `entered_at` and before `due_at`, earliest first.

    Hours count back from the instant the deadline expires; working days and days name the day
    (the N-th last working day on or before the deadline's last day, or N-1 calendar days before
    it moved back to a working day) and the time is `notifications.remind_at` (07:30 by default).
    """
    notifications = policy.config.notifications
    at = time.fromisoformat(notifications.remind_at if notifications else "07:30")
    out: list[datetime] = []
    for span in deadline.reminders():
        moment = remind_before(span, due_at, policy.calendar, at)
        if entered_at < moment < due_at and moment not in out:
            out.append(moment)
    return sorted(out)


def remind_before(span: Duration, due_at: datetime, calendar: WorkCalendar, at: time) -> datetime:
    if span.hours is not None:
        return due_at - timedelta(hours=span.hours)
    last = (due_at - timedelta(microseconds=1)).astimezone(calendar.tz).date()  # the deadline's last day
    if span.working_days is not None:
        day = _working_day_on_or_before(calendar, last)
        for _ in range(span.working_days - 1):
            day = _working_day_on_or_before(calendar, day - timedelta(days=1))
    elif span.days is not None:
        day = _working_day_on_or_before(calendar, last - timedelta(days=span.days - 1))
    else:
        raise ValueError(f"a duration gives one of working_days, days or hours: {span!r}")  # Duration validates this
    return datetime.combine(day, at, tzinfo=calendar.tz)


def _working_day_on_or_before(calendar: WorkCalendar, d: date) -> date:
    """`calendar.shift_to_working_day(d, "previous")` as a date: "previous" never gives None (it raises after ten years)."""
    day = calendar.shift_to_working_day(d, "previous")
    if day is None:
        raise ValueError(f"no working day on or before {d}")
    return day


CATCH_UP_STEP = timedelta(seconds=60)


def armed_from(payload: dict, now: datetime) -> datetime:
    """When the deadline of the state an event enters counts from: its nominal time, not `now`.

    An event fired by a deadline carries that deadline's `due_at`, and a schedule's start the
    occurrence's `nominal_at`; a next deadline counts from those, so downtime does not stretch
    it (a chain of missed deadlines cascades from the first one's due time). Any other event: now.
    """
    nominal = payload.get("due_at") or payload.get("nominal_at")
    if not nominal:
        return now
    return min(datetime.fromisoformat(nominal), now)


def late_text(seconds: float) -> str:
    """How late, for logs and messages: '114d (trễ 114 ngày)', '5h 3m (trễ 5 giờ 3 phút)'."""
    whole = int(max(seconds, 0))
    days, rest = divmod(whole, 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    if days:
        return f"{days}d (trễ {days} ngày)"
    parts = [(hours, "h", "giờ"), (minutes, "m", "phút")]
    short = " ".join(f"{v}{u}" for v, u, _ in parts if v) or f"{whole}s"
    vietnamese = " ".join(f"{v} {w}" for v, _, w in parts if v) or f"{whole} giây"
    return f"{short} (trễ {vietnamese})"


def due_cutoff(conn, now: datetime) -> datetime | None:
    """Up to which instant armed timers fire now (None: none yet), in a store transaction `conn`.

    On time (the soonest armed timer is at most CATCH_UP_STEP late): `now`. Catching up after
    downtime: the soonest due time plus one step, and only once no event and no after-commit
    action is waiting, because what they arm (the next state's deadline, counted from a nominal
    time; an instance a rule starts) may fall earlier than the timers still armed. So a chain of
    missed deadlines fires in the order of its nominal due times, as it would have on time.
    """
    soonest = armed(conn, limit=1)
    if not soonest:
        return None
    first = soonest[0].due_at
    if now - first <= CATCH_UP_STEP:
        return now
    return None if work_pending(conn, now) else first + CATCH_UP_STEP
