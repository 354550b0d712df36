"""Schedule occurrences: when a calendar rule falls due, start its workflow exactly once.

Every occurrence has a key (schedule id + nominal instant) stored under a unique constraint, so
an occurrence fires at most once even with two daemons or a crash mid-firing, and every one
missed during downtime is found and fired once. The host rotates strictly: each occurrence's
host is the party after the previous occurrence's host in the rotation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from loguru import logger

from engine import clock
from engine.store import inbox
from engine.policy.loader import Policy, is_expression
from engine.policy.spec import ScheduleSpec
from engine.store import occurrences as occurrence_rows
from engine.store.database import SqlStore
from engine.store.occurrences import last_fired, since
from engine.scheduling.triggers import CalendarRuleTrigger, occurrence_facts


@dataclass(frozen=True)
class Firing:
    """One occurrence that was fired now (or found already fired)."""

    schedule: str
    nominal_at: datetime
    host: str | None
    instance: str | None
    late_by: float


def trigger_for(policy: Policy, schedule: ScheduleSpec) -> CalendarRuleTrigger:
    return CalendarRuleTrigger(schedule.every, policy.calendar)


def due(store: SqlStore, policy: Policy, schedule: ScheduleSpec, now: datetime) -> Iterator[datetime]:
    """Nominal instants of this schedule that are due by `now` and not yet fired, oldest first."""
    with store.reading() as conn:
        last = last_fired(conn, schedule.id)
    start = max(since(store, schedule.id), last["nominal_at"]) if last else since(store, schedule.id)
    yield from trigger_for(policy, schedule).occurrences(start, now)


def fire(store: SqlStore, policy: Policy, schedule: ScheduleSpec, nominal: datetime) -> Firing | None:
    """Record the occurrence and queue its workflow start, in one transaction; None if already fired."""
    now = clock.now()
    with store.transaction() as conn:
        last = last_fired(conn, schedule.id)
        host = next_host(schedule, last["host"] if last else None)
        if not occurrence_rows.claim(conn, schedule.id, nominal, now, host):
            return None
        facts = {**occurrence_facts(nominal.astimezone(policy.tz)), "host": host, "index": occurrence_rows.count(conn, schedule.id)}
        values = {k: (policy.expression(v[1:].strip()).evaluate({"occurrence": facts}) if is_expression(v) else v)
                  for k, v in schedule.with_.items()}
        if schedule.host:
            values[schedule.host.field] = host
        sub = inbox.submit(conn, inbox.START, instance=inbox.new_instance_id(schedule.start), workflow=schedule.start,
                           actor=schedule.actor, values=values, key=inbox.engine_key("schedule", schedule.id, nominal.isoformat()),
                           extra={"schedule": schedule.id, "nominal_at": nominal.isoformat()})
        occurrence_rows.set_instance(conn, schedule.id, nominal, sub.instance)
    late = (now - nominal).total_seconds()
    log = logger.bind(workflow=schedule.start, instance=sub.instance, schedule=schedule.id, host=host)
    if late > 60:
        log.warning("schedule {} fired for {} late by {}", schedule.id, nominal.astimezone(policy.tz).isoformat(), _human(late))
    else:
        log.info("schedule {} fired for {}", schedule.id, nominal.astimezone(policy.tz).isoformat())
    return Firing(schedule.id, nominal, host, sub.instance, late)


def fire_due(store: SqlStore, policy: Policy, now: datetime | None = None) -> list[Firing]:
    """Fire every due, unfired occurrence of every schedule (the catch-up after downtime)."""
    now = now or clock.now()
    fired = []
    for schedule in policy.schedules.values():
        for nominal in due(store, policy, schedule, now):
            firing = fire(store, policy, schedule, nominal)
            if firing:
                fired.append(firing)
    return fired


def next_host(schedule: ScheduleSpec, previous: str | None) -> str | None:
    """The party after `previous` in the rotation (the first one when none or not in it)."""
    if not schedule.host:
        return None
    rotate = schedule.host.rotate
    if previous not in rotate:
        return rotate[0]
    return rotate[(rotate.index(previous) + 1) % len(rotate)]


def upcoming(store: SqlStore, policy: Policy, now: datetime, count: int = 1) -> list[tuple[ScheduleSpec, datetime, str | None]]:
    """The next `count` occurrences of each schedule after `now`, with their hosts."""
    out = []
    for schedule in policy.schedules.values():
        with store.reading() as conn:
            last = last_fired(conn, schedule.id)
        host = last["host"] if last else None
        trigger, previous = trigger_for(policy, schedule), None
        for _ in range(count):
            at = trigger.get_next_fire_time(previous, now)
            if at is None:
                break
            host = next_host(schedule, host)
            out.append((schedule, at, host))
            previous = at
    return sorted(out, key=lambda item: item[1])


def _human(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return " ".join(f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m")) if v) or f"{int(seconds)}s"
