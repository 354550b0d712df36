"""Reminder rows: armed and disarmed with their deadline's timer (engine.store.timers writes
them), found when due, and marked sent, failed or disarmed (engine.notify.reminders sends them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from engine.store import Tx
from engine.store.database import reminders
from engine.store.statuses import ReminderStatus


@dataclass(frozen=True)
class Reminder:
    """One reminders row: sent at `due_at`, before the deadline at `deadline_at`."""

    id: str          # <timer id>:remind:<n>
    timer: str
    instance: str
    workflow: str
    state: str
    due_at: datetime
    deadline_at: datetime
    status: str      # a ReminderStatus


_ARMED = select(reminders).where(reminders.c.status == ReminderStatus.ARMED).order_by(reminders.c.due_at, reminders.c.id)


def soonest(conn: Tx) -> datetime | None:
    """When the earliest armed reminder is due."""
    return conn.execute(select(reminders.c.due_at).where(reminders.c.status == ReminderStatus.ARMED)
                        .order_by(reminders.c.due_at).limit(1)).scalar()


def armed(conn: Tx, instance: str | None = None, due_by: datetime | None = None) -> list[Reminder]:
    """Armed reminders (of one instance, or all; only those due by `due_by` when given), soonest first."""
    query = _ARMED
    if instance is not None:
        query = query.where(reminders.c.instance == instance)
    if due_by is not None:
        query = query.where(reminders.c.due_at <= due_by)
    return [Reminder(**r) for r in conn.execute(query).mappings().all()]


def mark(conn: Tx, reminder_id: str, status: ReminderStatus) -> None:
    conn.execute(update(reminders).where(reminders.c.id == reminder_id).values(status=status))
