"""Schedule occurrences: when a calendar rule falls due, start its workflow exactly once.

Every occurrence has a key (schedule id + nominal instant) stored under a unique constraint, so
an occurrence fires at most once even with two daemons or a crash mid-firing, and every one
missed during downtime is found and fired once. The host of an occurrence follows from the
rotation's anchor (`host_for`), not from what this store happened to fire before.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

from loguru import logger

from engine import clock
from engine.policy.loader import Policy
from engine.policy.spec import ScheduleSpec, is_expression
from engine.scheduling import timers
from engine.scheduling.triggers import CalendarRuleTrigger, occurrence_facts
from engine.store import inbox
from engine.store import occurrences as occurrence_rows
from engine.store.database import SqlStore
from engine.store.occurrences import last_fired, since

NO_ANCHOR = date(2000, 1, 1)  # turns count from here when neither `from` nor the agreement's dates say


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
        host = host_for(policy, schedule, nominal)
        if not occurrence_rows.claim(conn, schedule.id, nominal, now, host):
            return None
        facts = {**occurrence_facts(nominal.astimezone(policy.tz)), "host": host, "index": ordinal(policy, schedule, nominal)}
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
        log.warning("schedule {} fired for {} late by {}", schedule.id, nominal.astimezone(policy.tz).isoformat(), timers.late_text(late))
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


def host_for(policy: Policy, schedule: ScheduleSpec, nominal: datetime) -> str | None:
    """Who hosts the occurrence at `nominal`, from the rotation's anchor (never from the store).

    Each era of the rotation (the first, then each of `changes`) starts at its first occurrence
    on or after its `from` date, hosted by its `first` party; the k-th occurrence after that is
    hosted by the party k turns later. An occurrence before the first era counts backwards.
    So the host depends only on the policy and the date: the daemon (whenever first started),
    `upcoming` and `simulate --from` any date agree, and a change applies from its own date on.
    """
    rotation = schedule.host
    if not rotation:
        return None
    trigger = trigger_for(policy, schedule)
    eras = [(anchor_day(policy, schedule), rotation.rotate, rotation.first or rotation.rotate[0])]
    for change in rotation.changes:
        order = change.rotate or eras[-1][1]
        eras.append((change.from_, order, change.first or order[0]))
    target = nominal.astimezone(UTC)
    chosen = None
    for since_day, order, first in eras:
        anchor = trigger.get_next_fire_time(None, _midnight(policy, since_day))
        if anchor is not None and (chosen is None or anchor.astimezone(UTC) <= target):
            chosen = (anchor, order, first)
    if chosen is None:  # no occurrence on or after any `from`: count back from the first era
        return rotation.first or rotation.rotate[0]
    anchor, order, first = chosen
    return order[(order.index(first) + _turns(trigger, anchor, nominal)) % len(order)]


def anchor_day(policy: Policy, schedule: ScheduleSpec) -> date:
    """The day a schedule's occurrences are counted from: the rotation's `from`, else the
    agreement's effective (or signing) date."""
    agreement = policy.config.agreement
    start = schedule.host.from_ if schedule.host else None
    return start or agreement.effective or agreement.signed or NO_ANCHOR


def ordinal(policy: Policy, schedule: ScheduleSpec, nominal: datetime) -> int:
    """`occurrence.index`: 1 for the schedule's first occurrence on or after its anchor day, 2 for
    the next, ... (0, -1, ... before it). Like the host it depends only on the policy and the date,
    so the daemon, `simulate` and a store restored from backup agree."""
    trigger = trigger_for(policy, schedule)
    first = trigger.get_next_fire_time(None, _midnight(policy, anchor_day(policy, schedule)))
    if first is None:
        return 1
    return 1 + _turns(trigger, first, nominal)


def _turns(trigger: CalendarRuleTrigger, anchor: datetime, nominal: datetime) -> int:
    """How many occurrences `nominal` lies after `anchor` (negative when before it)."""
    if anchor.astimezone(UTC) <= nominal.astimezone(UTC):
        return sum(1 for _ in trigger.occurrences(anchor, nominal))
    return -sum(1 for _ in trigger.occurrences(nominal, anchor))


def _midnight(policy: Policy, day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=policy.tz)


def upcoming(store: SqlStore, policy: Policy, now: datetime, count: int = 1) -> list[tuple[ScheduleSpec, datetime, str | None]]:
    """The next `count` occurrences of each schedule after `now`, with their hosts (from the
    rotation's anchor, so the store is not read)."""
    out = []
    for schedule in policy.schedules.values():
        trigger, previous = trigger_for(policy, schedule), None
        for _ in range(count):
            at = trigger.get_next_fire_time(previous, now)
            if at is None:
                break
            out.append((schedule, at, host_for(policy, schedule, at)))
            previous = at
    return sorted(out, key=lambda item: item[1])
