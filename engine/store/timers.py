"""Deadline timer rows (and their reminders): arm, disarm, fire, and the armed ones soonest first.

The timer rows are the truth; the daemon's scheduler only holds in-memory jobs rebuilt from
them. When a deadline or a reminder falls due is decided in engine/scheduling/timers.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from loguru import logger
from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from engine.store.database import inbox as inbox_table
from engine.store.database import outbox, reminders, timers
from engine.store.statuses import EventKind, InboxStatus, OutboxStatus, TimerStatus

ARMED, DISARMED, FIRED = TimerStatus.ARMED, TimerStatus.DISARMED, TimerStatus.FIRED


@dataclass(frozen=True)
class Timer:
    id: str
    instance: str
    workflow: str
    state: str
    trigger: str
    due_at: datetime


_ARM = timers.insert()
_ARM_REMINDER = reminders.insert()


def row(timer: Timer) -> dict:
    """The timer's row as armed (the executor's batch writes it: engine.store.batch)."""
    return {"id": timer.id, "instance": timer.instance, "workflow": timer.workflow, "state": timer.state,
            "trigger": timer.trigger, "due_at": timer.due_at, "status": ARMED}


def reminder_rows(timer: Timer, remind_at: Iterable[datetime]) -> list[dict]:
    """The rows of the deadline's reminders (`<timer id>:remind:<n>`, engine.notify.reminders), armed."""
    return [{"id": f"{timer.id}:remind:{n}", "timer": timer.id, "instance": timer.instance, "workflow": timer.workflow,
             "state": timer.state, "due_at": at, "deadline_at": timer.due_at, "status": ARMED}
            for n, at in enumerate(remind_at, 1)]


def arm(conn: Connection, timer: Timer, remind_at: Iterable[datetime] = ()) -> None:
    """Arm the deadline's timer and its reminders, one at a time (the executor batches them instead)."""
    conn.execute(_ARM, row(timer))
    rows = reminder_rows(timer, remind_at)
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
    sub = inbox.submit(conn, EventKind.FIRE, instance=row["instance"], trigger=row["trigger"], actor="system",
                       key=inbox.engine_key("timer", timer_id), extra={"timer": timer_id, "due_at": row["due_at"].isoformat()})
    if sub.new:
        return row
    held = conn.execute(select(inbox_table.c.status, inbox_table.c.payload).where(inbox_table.c.id == sub.inbox_id)).one()
    if held.status != InboxStatus.PENDING or held.payload.get("timer") != timer_id:
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


def armed_due(conn: Connection, instance: str) -> datetime | None:
    """The due time of the instance's (soonest) armed deadline, if any."""
    return conn.execute(select(timers.c.due_at).where(timers.c.instance == instance, timers.c.status == ARMED)
                        .order_by(timers.c.due_at).limit(1)).scalar()


def armed_due_by_instance(conn: Connection) -> dict[str, datetime]:
    """Instance -> the due time of its armed deadline, for every instance that has one."""
    return {instance: due_at for instance, due_at in conn.execute(
        select(timers.c.instance, timers.c.due_at).where(timers.c.status == ARMED))}


def work_pending(conn: Connection, now: datetime) -> bool:
    """Is an inbox event waiting to be applied, or an after-commit action due to be dispatched?
    (engine.scheduling.timers.due_cutoff catches up missed deadlines only when none is.)"""
    return bool(conn.execute(select(inbox_table.c.id).where(inbox_table.c.status == InboxStatus.PENDING).limit(1)).first()
                or conn.execute(select(outbox.c.id).where(outbox.c.status == OutboxStatus.PENDING, outbox.c.next_at <= now).limit(1)).first())
