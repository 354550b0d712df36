"""Deadline timers: armed when an instance enters a state with a deadline, disarmed when it leaves.

The timer rows are the truth; the daemon's scheduler only holds in-memory jobs rebuilt from them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from engine.policy.spec import Deadline, Duration
from loguru import logger

from engine.store.database import inbox as inbox_table, reminders, timers
from engine.store.statuses import TimerStatus
from engine.rules.workcalendar import WorkCalendar

ARMED, DISARMED, FIRED = TimerStatus.ARMED, TimerStatus.DISARMED, TimerStatus.FIRED


@dataclass(frozen=True)
class Timer:
    id: str
    instance: str
    workflow: str
    state: str
    trigger: str
    due_at: datetime


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


_ARM = timers.insert()
_ARM_REMINDER = reminders.insert()


def arm(conn: Connection, timer: Timer, remind_at: Iterable[datetime] = ()) -> None:
    """Arm the deadline's timer and its reminders (rows `<timer id>:remind:<n>`, engine.notify.reminders)."""
    conn.execute(_ARM, {"id": timer.id, "instance": timer.instance, "workflow": timer.workflow, "state": timer.state,
                        "trigger": timer.trigger, "due_at": timer.due_at, "status": ARMED})
    rows = [{"id": f"{timer.id}:remind:{n}", "timer": timer.id, "instance": timer.instance, "workflow": timer.workflow,
             "state": timer.state, "due_at": at, "deadline_at": timer.due_at, "status": ARMED}
            for n, at in enumerate(remind_at, 1)]
    if rows:
        conn.execute(_ARM_REMINDER, rows)


_DISARM = (update(timers).where(timers.c.instance == bindparam("instance_id"), timers.c.status == ARMED)
           .values(status=DISARMED))
_DISARM_REMINDERS = (update(reminders).where(reminders.c.instance == bindparam("instance_id"), reminders.c.status == ARMED)
                     .values(status=DISARMED))


def disarm(conn: Connection, instance: str) -> None:
    """Disarm the instance's armed timers and reminders (it left the state they were armed for)."""
    conn.execute(_DISARM, {"instance_id": instance})
    conn.execute(_DISARM_REMINDERS, {"instance_id": instance})


def mark_fired(conn: Connection, timer_id: str) -> None:
    conn.execute(update(timers).where(timers.c.id == timer_id).values(status=FIRED))


def submit_due(conn: Connection, timer_id: str):
    """Queue the trigger of an armed timer as a system event (idempotent by timer id).

    Returns the timer row when its event was queued now, or None when the timer is no longer
    armed or its event was queued before. A key found already decided (applied, refused,
    cancelled, or not this timer's event: a store written before keys had namespaces) marks
    the timer fired, so a due timer is never submitted again and again.
    """
    from engine.store import inbox

    row = conn.execute(select(timers).where(timers.c.id == timer_id)).mappings().first()
    if row is None or row["status"] != ARMED:
        return None
    sub = inbox.submit(conn, inbox.FIRE, instance=row["instance"], trigger=row["trigger"], actor="system",
                       key=inbox.engine_key("timer", timer_id), extra={"timer": timer_id, "due_at": row["due_at"].isoformat()})
    if sub.new:
        return row
    held = conn.execute(select(inbox_table.c.status, inbox_table.c.payload).where(inbox_table.c.id == sub.inbox_id)).one()
    if held.status != inbox.PENDING or held.payload.get("timer") != timer_id:
        mark_fired(conn, timer_id)
        logger.bind(instance=row["instance"], trigger=row["trigger"]).warning(
            "deadline {} not queued: its key is held by inbox #{} ({}); timer marked fired", timer_id, sub.inbox_id, held.status)
    return None


def armed(conn: Connection, due_before: datetime | None = None, limit: int | None = None) -> list[Timer]:
    """Armed timers (optionally only those due before an instant, or the first `limit`), soonest first."""
    query = select(timers).where(timers.c.status == ARMED).order_by(timers.c.due_at)
    if due_before is not None:
        query = query.where(timers.c.due_at <= due_before)
    if limit is not None:
        query = query.limit(limit)
    return [Timer(r.id, r.instance, r.workflow, r.state, r.trigger, r.due_at) for r in conn.execute(query)]
