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

from engine.notify import deliveries, messages, owed
from engine.notify.templates import TEMPLATE_ERRORS
from engine.store import Tx, consents, inbox, reads
from engine.store import reminders as rows_of
from engine.store.database import SqlStore
from engine.store.reminders import Reminder
from engine.store.statuses import MessageKind, ReminderStatus

ARMED, DISARMED, SENT, FAILED = ReminderStatus.ARMED, ReminderStatus.DISARMED, ReminderStatus.SENT, ReminderStatus.FAILED
KIND = MessageKind.REMIND
soonest, armed = rows_of.soonest, rows_of.armed  # when the next one is due; the armed ones (the daemon, tests)


def fire_due(store: SqlStore, policy, now: datetime) -> list[Reminder]:
    """Send every armed reminder due by `now` (one transaction); returns those fired."""
    from engine.views.overview import Specs  # views import engine.notify: imported when used

    fired = []
    with store.transaction() as conn:
        specs = Specs(conn, policy)  # each stored version parsed once
        for reminder in rows_of.armed(conn, due_by=now):
            try:
                with conn.begin_nested():
                    done = fire(conn, policy, reminder, specs)
            except TEMPLATE_ERRORS as exc:  # a template an administrator broke: this reminder only, never the others
                logger.bind(instance=reminder.instance, outcome="failed").error(
                    "reminder {} not sent: {}: {}", reminder.id, type(exc).__name__, exc)
                rows_of.mark(conn, reminder.id, FAILED)
                continue
            if done is not None:
                fired.append(reminder)
    return fired


def fire(conn: Tx, policy, row: Reminder, specs) -> int | None:
    """Write the deliveries of one armed reminder and mark it sent; None when it no longer applies.
    `specs` (engine.views.overview.Specs) gives the workflow version the instance runs."""
    current = reads.instance_row(conn, row.instance)
    if current is None or current.state != row.state or current.final:
        rows_of.mark(conn, row.id, DISARMED)  # the state was left without the disarm (never expected)
        return None
    config = policy.config
    spec = specs.get(current.workflow, current.version)
    fields = current.fields
    roles = owed.owed_roles(spec, row.state, fields, config, consents.given(conn, row.instance)) if spec else {}
    triggers = {person: steps for role, steps in roles.items() for person in owed.people(role, config)}
    tz = policy.tz
    logger.bind(instance=row.instance, workflow=row.workflow, outcome="reminded", recipients=list(triggers)).info(
        "reminder: {} in state {} expires {}; owed by {}", row.instance, row.state,
        row.deadline_at.astimezone(tz).isoformat(), ", ".join(triggers) or "nobody")
    created = 0
    if config.notifications is not None and triggers:
        shared = messages.for_reminder(conn, policy, spec, row, fields, "", [])  # once; the recipient's part per message
        titles = {t.trigger: t.title or t.trigger for t in spec.transitions}

        def context(recipient: str) -> dict:
            steps = triggers.get(recipient) or sorted({t for r, s in roles.items() if r.startswith(recipient + ".") for t in s})
            return {**shared, "recipient": messages.recipient(config, recipient), "steps": [titles.get(t, t) for t in steps]}

        extra = {"workflow": row.workflow, "state": row.state, "deadline_at": row.deadline_at.isoformat()}
        created = deliveries.write(conn, policy, inbox.engine_key("timer", row.id), row.instance, KIND,
                                   list(triggers), context, extra)
    rows_of.mark(conn, row.id, SENT)
    return created
