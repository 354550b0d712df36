"""What falls due, and firing it: the scheduling core both drivers share.

The daemon (real clock: APScheduler wakes it at the alarm) and the simulator (stepped clock: it
jumps to the alarm) differ only in how they wait; what is due at an instant and how it fires is
decided here once. Schedules fire through `engine.scheduling.schedules.fire_due`, the daily digest
through `engine.notify.digest.send_due`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.notify import reminders
from engine.policy.loader import Policy
from engine.scheduling import timers
from engine.store.database import SqlStore


def soonest(store: SqlStore) -> datetime | None:
    """The soonest armed deadline or reminder (reminders before a deadline ring the same alarm)."""
    with store.reading() as conn:
        soonest = timers.armed(conn, limit=1)
        reminder = reminders.soonest(conn)
    return min([t.due_at for t in soonest] + ([reminder] if reminder else []), default=None)


def fire_deadlines(store: SqlStore, policy: Policy, now: datetime) -> list[dict[str, Any]]:
    """Queue the trigger of every due armed deadline in one transaction — in the order of their
    nominal due times after downtime (`timers.due_cutoff`) — then the due reminders; returns the
    fired timers' rows."""
    with store.transaction() as conn:
        cutoff = timers.due_cutoff(conn, now)
        fired = [row for t in (timers.armed(conn, due_before=cutoff) if cutoff else [])
                 if (row := timers.submit_due(conn, t.id)) is not None]
    reminders.fire_due(store, policy, now)
    return fired
