"""Reminders before a deadline: `remind:` on a state's deadline (docs/policy.md).

The rows are armed with the deadline's timer and disarmed with it when the instance leaves the
state (engine.scheduling.timers). When one falls due the scheduling core (the daemon, or the
simulator under its stepped clock) calls `fire_due`: in one transaction it writes a delivery to
each person who owes the next step (keys `timer:<reminder id>:<recipient>:<channel>`, so a
retried firing writes nothing twice) and marks the reminder sent.
"""

from __future__ import annotations

from datetime import datetime

from loguru import logger
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from engine.notify import deliveries, messages, owed
from engine.notify.templates import TEMPLATE_ERRORS
from engine.store import inbox
from engine.store.database import SqlStore, instances, reminders

ARMED, DISARMED, SENT, FAILED = "armed", "disarmed", "sent", "failed"
KIND = "remind"


def soonest(conn: Connection) -> datetime | None:
    """When the earliest armed reminder is due."""
    return conn.execute(select(reminders.c.due_at).where(reminders.c.status == ARMED)
                        .order_by(reminders.c.due_at).limit(1)).scalar()


def armed(conn: Connection, instance: str | None = None) -> list[dict]:
    """Armed reminders (of one instance, or all), soonest first."""
    query = select(reminders).where(reminders.c.status == ARMED).order_by(reminders.c.due_at, reminders.c.id)
    if instance is not None:
        query = query.where(reminders.c.instance == instance)
    return [dict(r) for r in conn.execute(query).mappings()]


def fire_due(store: SqlStore, policy, now: datetime) -> list[dict]:
    """Send every armed reminder due by `now` (one transaction); returns those fired."""
    from engine.views.overview import Specs  # views import engine.notify: imported when used

    fired = []
    with store.transaction() as conn:
        specs = Specs(conn, policy)  # each stored version parsed once
        due = conn.execute(select(reminders).where(reminders.c.status == ARMED, reminders.c.due_at <= now)
                           .order_by(reminders.c.due_at, reminders.c.id)).mappings().all()
        for row in due:
            try:
                with conn.begin_nested():
                    done = fire(conn, policy, dict(row), specs)
            except TEMPLATE_ERRORS as exc:  # a template an administrator broke: this reminder only, never the others
                logger.bind(instance=row["instance"], outcome="failed").error(
                    "reminder {} not sent: {}: {}", row["id"], type(exc).__name__, exc)
                _mark(conn, row["id"], FAILED)
                continue
            if done is not None:
                fired.append(dict(row))
    return fired


def fire(conn: Connection, policy, row: dict, specs) -> int | None:
    """Write the deliveries of one armed reminder and mark it sent; None when it no longer applies.
    `specs` (engine.views.overview.Specs) gives the workflow version the instance runs."""
    current = conn.execute(select(instances).where(instances.c.id == row["instance"])).mappings().first()
    if current is None or current["state"] != row["state"] or current["final"]:
        _mark(conn, row["id"], DISARMED)  # the state was left without the disarm (never expected)
        return None
    config = policy.config
    spec = specs.get(current["workflow"], current["version"])
    fields = current["fields"] or {}
    roles = owed.owed_roles(spec, row["state"], fields, config, owed.consented(conn, row["instance"])) if spec else {}
    triggers = {person: steps for role, steps in roles.items() for person in owed.people(role, config)}
    tz = policy.tz
    logger.bind(instance=row["instance"], workflow=row["workflow"], outcome="reminded", recipients=list(triggers)).info(
        "reminder: {} in state {} expires {}; owed by {}", row["instance"], row["state"],
        row["deadline_at"].astimezone(tz).isoformat(), ", ".join(triggers) or "nobody")
    created = 0
    if config.notifications is not None and triggers:
        shared = messages.for_reminder(conn, policy, spec, row, fields, "", [])  # once; the recipient's part per message
        titles = {t.trigger: t.title or t.trigger for t in spec.transitions}

        def context(recipient: str) -> dict:
            steps = triggers.get(recipient) or sorted({t for r, s in roles.items() if r.startswith(recipient + ".") for t in s})
            return {**shared, "recipient": messages.recipient(config, recipient), "steps": [titles.get(t, t) for t in steps]}

        extra = {"workflow": row["workflow"], "state": row["state"], "deadline_at": row["deadline_at"].isoformat()}
        created = deliveries.write(conn, policy, inbox.engine_key("timer", row["id"]), row["instance"], KIND,
                                   list(triggers), context, extra)
    _mark(conn, row["id"], SENT)
    return created


def _mark(conn: Connection, reminder_id: str, status: str) -> None:
    conn.execute(update(reminders).where(reminders.c.id == reminder_id).values(status=status))
