"""Deadline timers: armed when an instance enters a state with a deadline, disarmed when it leaves.

This module says when a deadline and its reminders fall due (working days, days, hours, or a
datetime field); the timer rows and their statements are in engine/store/timers.py.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from engine.policy.spec import Deadline, Duration
from engine.rules.workcalendar import WorkCalendar
# The timer rows live in the store; these names stay importable from here for the executor and daemon.
from engine.store.timers import ARMED, DISARMED, FIRED, Timer, arm, armed, disarm, mark_fired, submit_due  # noqa: F401


def duration_end(duration: Duration, start: datetime, calendar: WorkCalendar) -> datetime:
    """When a span that starts at `start` ends, on the working-day calendar."""
    if duration.working_days is not None:
        return calendar.add_working_days(start, duration.working_days)
    if duration.days is not None:
        return calendar.add_days(start, duration.days)
    return calendar.add_hours(start, duration.hours)


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
        day = calendar.shift_to_working_day(last, "previous")
        for _ in range(span.working_days - 1):
            day = calendar.shift_to_working_day(day - timedelta(days=1), "previous")
    else:
        day = calendar.shift_to_working_day(last - timedelta(days=span.days - 1), "previous")
    return datetime.combine(day, at, tzinfo=calendar.tz)
