"""The daily digest: on each working day at `notifications.digest.at`, one e-mail to each person
who owes a step on some open instance, listing those tasks soonest deadline first.

One digest per working day: the day is recorded in coopflow_meta (`digest_day`) in the same
transaction as its deliveries, whose keys (`schedule:digest:<day>:<recipient>:email`) are unique
per person and day. A day the daemon was down at that hour gets its digest when it starts, that
same day only (yesterday's list is stale). People under `digest.opt_out` get none.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from loguru import logger

from engine.notify import deliveries, messages, owed
from engine.notify.templates import TEMPLATE_ERRORS
from engine.store import Tx, consents, inbox, reads
from engine.store import timers as timer_rows
from engine.store.database import SqlStore, read_meta, write_meta
from engine.store.statuses import MessageKind

META_KEY = "digest_day"
KIND = MessageKind.DIGEST
FAR = datetime.max.replace(tzinfo=None)


def instant(policy, day: date) -> datetime:
    return datetime.combine(day, time.fromisoformat(policy.config.notifications.digest.at), tzinfo=policy.tz)


def enabled(policy) -> bool:
    notifications = policy.config.notifications
    return notifications is not None and notifications.digest is not None


def next_at(policy, after: datetime) -> datetime | None:
    """The first digest instant strictly after `after` (None when there is no digest)."""
    if not enabled(policy):
        return None
    day = after.astimezone(policy.tz).date()
    for _ in range(3660):
        if policy.calendar.is_working_day(day) and instant(policy, day) > after:
            return instant(policy, day)
        day += timedelta(days=1)
    return None


def due_day(conn: Tx, policy, now: datetime) -> date | None:
    """Today (local), when it is a working day, its digest hour has passed and it was not sent yet."""
    if not enabled(policy):
        return None
    today = now.astimezone(policy.tz).date()
    if not policy.calendar.is_working_day(today) or now < instant(policy, today):
        return None
    done = read_meta(conn, META_KEY)
    return None if done is not None and done >= today.isoformat() else today


def send_due(store: SqlStore, policy, now: datetime) -> int | None:
    """Write today's digests if they are due; returns how many people get one (None: not due)."""
    if not enabled(policy):
        return None
    with store.transaction() as conn:
        day = due_day(conn, policy, now)
        if day is None:
            return None
        lists = tasks_by_recipient(conn, policy)
        opted_out = set(policy.config.notifications.digest.opt_out)
        contacts = policy.config.notifications.contacts
        chosen = [r for r in lists if r.partition(":")[2] not in opted_out and r not in opted_out
                  and (contacts.get(r.partition(":")[2]) or contacts.get(r.partition(":")[0]))]
        if chosen:
            try:
                with conn.begin_nested():
                    deliveries.write(conn, policy, inbox.engine_key("schedule", KIND, day.isoformat()), None, KIND, chosen,
                                     lambda r: messages.for_digest(policy, r, lists[r]))
            except TEMPLATE_ERRORS as exc:  # a broken digest template: that day's digest only
                logger.bind(outcome="failed").error("daily digest of {} not sent: {}: {}", day, type(exc).__name__, exc)
                chosen = []
        write_meta(conn, META_KEY, day.isoformat())
    logger.bind(outcome="digest", recipients=chosen).info("daily digest of {}: {} person(s) with open tasks", day, len(chosen))
    return len(chosen)


def tasks_by_recipient(conn: Tx, policy) -> dict[str, list[dict[str, Any]]]:
    """Recipient (`party.role:person`, or `party.role` for a role without listed people) -> the
    open tasks they owe, soonest deadline first (then the instance id)."""
    from engine.views.overview import Specs  # views import engine.notify: imported when used

    config, tz, specs = policy.config, policy.tz, Specs(conn, policy)
    due = timer_rows.armed_due_by_instance(conn)
    out: dict[str, list[tuple]] = {}
    actor_of: dict[str, str] = {}  # one digest per person, even one listed under two roles
    for row in reads.open_instances(conn):
        spec = specs.get(row.workflow, row.version)
        if spec is None or row.state not in spec.states:
            continue
        fields = row.fields
        roles = owed.owed_roles(spec, row.state, fields, config, consents.given(conn, row.id))
        if not roles:
            continue
        titles = {t.trigger: t.title or t.trigger for t in spec.transitions}
        at = due.get(row.id)
        for role, steps in roles.items():
            task = {"instance": row.id, "workflow": spec.title, "clause": spec.clause,
                    "state": spec.states[row.state].title, "subject": fields.get(spec.subject) if spec.subject else None,
                    "due_at": messages.vi_time(at, tz), "steps": [titles[t] for t in steps],
                    "link": messages.link(config, row.id)}
            for actor in owed.people(role, config):
                person = actor.partition(":")[2] or actor
                actor = actor_of.setdefault(person, actor)
                out.setdefault(actor, []).append(((at.replace(tzinfo=None) if at else FAR), row.id, role, task))
    return {actor: [t for *_, t in sorted(items, key=lambda i: i[:3])] for actor, items in out.items()}
