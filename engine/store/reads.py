"""The read model: the queries behind what people read (one instance, a filtered list, a history).

Every function takes a connection from `SqlStore.reading()` and returns plain dicts with
timezone-aware datetimes; rendering (tables, JSON, pages) is the caller's business.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, false, func, or_, select, true, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from engine.store.database import consents, history, inbox, instances, timers, workflow_versions
from engine.store.statuses import EventKind, Outcome, TimerStatus

SYSTEM = "system"  # the engine's own actor (engine.policy.spec.SYSTEM): timers, schedules, rules


def instance(conn: Connection, instance_id: str) -> dict[str, Any] | None:
    """One instance with its armed deadline (`deadline`: due_at, fires) and its consents."""
    row = conn.execute(select(instances).where(instances.c.id == instance_id)).mappings().first()
    if row is None:
        return None
    armed = conn.execute(select(timers).where(timers.c.instance == instance_id, timers.c.status == TimerStatus.ARMED)).mappings().first()
    agreed = conn.execute(select(consents).where(consents.c.instance == instance_id).order_by(consents.c.at)).mappings()
    return {
        **row,
        "deadline": {"due_at": armed["due_at"], "fires": armed["trigger"]} if armed else None,
        "consents": [{"trigger": c["trigger"], "party": c["party"], "actor": c["actor"], "at": c["at"],
                      "expires_at": c["expires_at"]} for c in agreed],
    }


@dataclass(frozen=True)
class InstanceRow:
    """An instance as stored: what it runs (workflow, pinned version), where it is, its fields."""

    id: str
    workflow: str
    version: str
    state: str
    fields: dict[str, Any]
    final: bool


_INSTANCE_COLUMNS = (instances.c.id, instances.c.workflow, instances.c.version, instances.c.state, instances.c.fields,
                     instances.c.final)


def _instance_of(r) -> InstanceRow:
    return InstanceRow(r.id, r.workflow, r.version, r.state, r.fields or {}, bool(r.final))


def instance_row(conn: Connection, instance_id: str) -> InstanceRow | None:
    """One instance as stored (None when there is no such instance)."""
    r = conn.execute(select(*_INSTANCE_COLUMNS).where(instances.c.id == instance_id)).first()
    return _instance_of(r) if r is not None else None


def open_instances(conn: Connection) -> Generator[InstanceRow, None, None]:
    """Every open instance (not in a final state), streamed."""
    for r in conn.execute(select(*_INSTANCE_COLUMNS).where(_open())):
        yield _instance_of(r)


def _instances_query(workflow: str | None, state: str | None):
    """Instances (filtered by workflow and state) joined to their armed deadline, newest first."""
    query = (select(instances, timers.c.due_at, timers.c.trigger.label("fires"))
             .outerjoin(timers, (timers.c.instance == instances.c.id) & (timers.c.status == TimerStatus.ARMED))
             .order_by(instances.c.created_at.desc(), instances.c.id))
    if workflow:
        query = query.where(instances.c.workflow == workflow)
    if state:
        query = query.where(instances.c.state == state)
    return query


def _instance_row(r) -> dict[str, Any]:
    """A joined row as an instance dict with its `deadline` (due_at, fires) or None."""
    row = {k: v for k, v in r.items() if k not in ("due_at", "fires")}
    row["deadline"] = {"due_at": r["due_at"], "fires": r["fires"]} if r["due_at"] else None
    return row


def instance_list(conn: Connection, workflow: str | None = None, state: str | None = None, limit: int | None = None,
                  offset: int = 0) -> list[dict[str, Any]]:
    """Instances (filtered by workflow and state) with their armed deadline, newest first
    (`limit` of them after `offset` when given)."""
    if limit is None:
        return [_instance_row(r) for r in conn.execute(_instances_query(workflow, state).offset(offset)).mappings()]
    # The page is chosen first, then joined to its deadlines: the join costs `limit` rows, not all of them.
    chosen = select(instances).order_by(instances.c.created_at.desc(), instances.c.id).limit(limit).offset(offset)
    if workflow:
        chosen = chosen.where(instances.c.workflow == workflow)
    if state:
        chosen = chosen.where(instances.c.state == state)
    page = chosen.subquery()
    query = (select(page, timers.c.due_at, timers.c.trigger.label("fires"))
             .outerjoin(timers, (timers.c.instance == page.c.id) & (timers.c.status == TimerStatus.ARMED))
             .order_by(page.c.created_at.desc(), page.c.id))
    return [_instance_row(r) for r in conn.execute(query).mappings()]


def instance_count(conn: Connection, workflow: str | None = None, state: str | None = None) -> int:
    """How many instances `instance_list` would give without a limit."""
    query = select(func.count()).select_from(instances)
    if workflow:
        query = query.where(instances.c.workflow == workflow)
    if state:
        query = query.where(instances.c.state == state)
    return conn.execute(query).scalar_one()


def instance_history(conn: Connection, instance_id: str) -> list[dict[str, Any]]:
    """Every history row of one instance, in order."""
    query = select(history).where(history.c.instance == instance_id).order_by(history.c.seq)
    return [dict(r) for r in conn.execute(query).mappings()]


# ---- who may read what (the HTTP API's filter)


@dataclass(frozen=True)
class Visibility:
    """What a reader may see: `parties` None = everything (administrators); otherwise an instance
    is visible when one of its party-typed fields (`party_fields[workflow]`) names one of
    `parties`, or, for a workflow without party fields, to every party of the agreement."""

    parties: frozenset[str] | None
    party_fields: Mapping[str, tuple[str, ...]]

    def allows(self, row: Mapping[str, Any]) -> bool:
        if self.parties is None:
            return True
        names = self.party_fields.get(row["workflow"], ())
        if not names:
            return bool(self.parties)
        fields = row.get("fields") or {}
        return any(fields.get(n) in self.parties for n in names)


def visible_where(visibility: Visibility | None):
    """`Visibility.allows` as SQL (None: everything)."""
    if visibility is None or visibility.parties is None:
        return true()
    if not visibility.parties:
        return false()
    parties = sorted(visibility.parties)
    named = {w: names for w, names in visibility.party_fields.items() if names}
    clauses: list[ColumnElement[bool]] = [instances.c.workflow.not_in(list(named)) if named else true()]
    for workflow, names in named.items():
        clauses.append(and_(instances.c.workflow == workflow,
                            or_(*(instances.c.fields[n].as_string().in_(parties) for n in names))))
    return or_(*clauses)


class BadCursor(ValueError):
    """A pagination cursor this API did not hand out."""


def _cursor(row: Mapping[str, Any]) -> str:
    raw = json.dumps([row["created_at"].isoformat(), row["id"]]).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _uncursor(text: str) -> tuple[datetime, str]:
    try:
        at, ident = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return datetime.fromisoformat(at), str(ident)
    except (ValueError, TypeError) as exc:
        raise BadCursor(f"'{text[:40]}' is not a cursor this API returned") from exc


def instance_page(conn: Connection, visibility: Visibility, workflow: str | None = None, state: str | None = None,
                  limit: int = 50, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the instances `visibility` allows, newest first, and the cursor of the next page."""
    query = _instances_query(workflow, state)
    if cursor:
        at, ident = _uncursor(cursor)
        query = query.where(or_(instances.c.created_at < at, and_(instances.c.created_at == at, instances.c.id > ident)))
    rows: list[dict[str, Any]] = []
    for r in conn.execute(query.execution_options(yield_per=500)).mappings():
        row = _instance_row(r)
        if not visibility.allows(row):
            continue
        if len(rows) == limit:
            return rows, _cursor(rows[-1])
        rows.append(row)
    return rows, None


def history_page(conn: Connection, instance_id: str, limit: int = 100, after: int | None = None) -> list[dict[str, Any]]:
    """Up to `limit` history rows of one instance after chain position `after`, in order."""
    query = select(history).where(history.c.instance == instance_id)
    if after is not None:
        query = query.where(history.c.seq > after)
    return [dict(r) for r in conn.execute(query.order_by(history.c.seq).limit(limit)).mappings()]


def inbox_counts(conn: Connection) -> list[tuple[str, str, int]]:
    """(workflow, status, count) of inbox rows, the workflow taken from the instance (or the start)."""
    workflow = func.coalesce(instances.c.workflow, inbox.c.workflow)
    query = (select(workflow, inbox.c.status, func.count())
             .select_from(inbox.outerjoin(instances, instances.c.id == inbox.c.instance))
             .group_by(workflow, inbox.c.status))
    return [(w or "", s, n) for w, s, n in conn.execute(query)]


def oldest_due_timer(conn: Connection) -> datetime | None:
    """The due time of the earliest armed timer (lag = now - this, when it is past)."""
    return conn.execute(select(func.min(timers.c.due_at)).where(timers.c.status == TimerStatus.ARMED)).scalar()


def stored_spec(conn: Connection, version: str) -> dict[str, Any] | None:
    """The canonical JSON of one pinned workflow version (None when the store has no such version)."""
    return conn.execute(select(workflow_versions.c.spec).where(workflow_versions.c.version == version)).scalar()


# ---- the status overview, aggregated in SQL (engine/views/overview.py reads these)
#
# `refs` are the party fields that role patterns (`$field.role`) name: an open instance's
# workflow, version, state and those fields' values are all that decide who owes its next step,
# so instances are counted per such group instead of being read one by one.
#
# `lateness` lists the (version, trigger, from state) of the system-only deadline transitions:
# a history row matching one, fired by a timer, made its instance overdue for good.


def _open():
    return instances.c.final == 0


def open_versions(conn: Connection) -> list[tuple[str, str]]:
    """(workflow, version) of every open instance, each pair once."""
    query = select(instances.c.workflow, instances.c.version).where(_open()).group_by(instances.c.workflow, instances.c.version)
    return [(w, v) for w, v in conn.execute(query)]


def _ref_columns(refs: Mapping[str, Sequence[str]]) -> list:
    """One column per party field in `refs` (name -> the workflows whose patterns name it), read
    from the JSON only for instances of those workflows (NULL for the others)."""
    return [case((instances.c.workflow.in_(list(workflows)), instances.c.fields[name].as_string()), else_=None).label(f"ref{i}")
            for i, (name, workflows) in enumerate(refs.items())]


def _refs(refs: Mapping[str, Sequence[str]], values) -> dict[str, Any]:
    return {name: value for name, value in zip(refs, values, strict=False) if value is not None}


def open_groups(conn: Connection, refs: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """Open instances counted per (workflow, version, state, values of `refs`): dicts with
    workflow, version, state, `refs` (name -> value) and count."""
    inner = select(instances.c.workflow, instances.c.version, instances.c.state, *_ref_columns(refs)).where(_open()).subquery()
    keys = [inner.c.workflow, inner.c.version, inner.c.state, *(inner.c[f"ref{i}"] for i in range(len(refs)))]
    out = []
    for row in conn.execute(select(*keys, func.count()).group_by(*keys)):
        out.append({"workflow": row[0], "version": row[1], "state": row[2],
                    "refs": _refs(refs, row[3:3 + len(refs)]), "count": row[-1]})
    return out


def _overdue_ids(now: datetime, lateness: Sequence[tuple[str, str, str]]):
    """The ids of instances with an armed deadline passed at `now` or a lateness transition fired
    (a subquery SQL evaluates once, never a list of ids)."""
    passed = select(timers.c.instance.label("id")).where(timers.c.status == TimerStatus.ARMED, timers.c.due_at < now)
    if not lateness:
        return passed
    fired = (select(history.c.instance.label("id"))
             .select_from(history.join(instances, instances.c.id == history.c.instance))
             .where(_lateness_row(lateness)))
    return passed.union(fired)


def _lateness_row(lateness: Sequence[tuple[str, str, str]]):
    """A history row (joined to its instance) that is a lateness transition fired by a deadline."""
    return and_(history.c.kind == EventKind.FIRE, history.c.outcome == Outcome.APPLIED, history.c.actor == SYSTEM,
                tuple_(instances.c.version, history.c.trigger, history.c.from_state).in_(list(lateness)),
                history.c.data["timer"].as_string().is_not(None))


def _overdue(now: datetime, lateness: Sequence[tuple[str, str, str]]):
    return instances.c.id.in_(_overdue_ids(now, lateness))


def overdue_instances(conn: Connection, now: datetime, lateness: Sequence[tuple[str, str, str]]) -> list[tuple[str, str, str, str]]:
    """(id, workflow, version, state) of every open instance overdue at `now`, oldest first.

    One pass (the lateness side reads the history table through once); the caller counts and
    pages the result, four short strings per overdue instance, instead of running that pass twice."""
    query = (select(instances.c.id, instances.c.workflow, instances.c.version, instances.c.state)
             .where(_open(), _overdue(now, lateness)).order_by(instances.c.created_at, instances.c.id))
    return [tuple(r) for r in conn.execute(query)]


def overdue_reasons(conn: Connection, ids: Sequence[str], now: datetime, lateness: Sequence[tuple[str, str, str]]) -> dict[str, list[dict]]:
    """Why each of `ids` (one page, bounded) is overdue: its passed armed deadline ("deadline_passed":
    trigger, at) first, then each lateness transition fired ("deadline_fired": trigger, at, from, to)."""
    out: dict[str, list[dict]] = {i: [] for i in ids}
    if not ids:
        return out
    passed = select(timers.c.instance, timers.c.trigger, timers.c.due_at).where(
        timers.c.instance.in_(list(ids)), timers.c.status == TimerStatus.ARMED, timers.c.due_at < now).order_by(timers.c.due_at)
    for deadline in conn.execute(passed):
        out[deadline.instance].append({"why": "deadline_passed", "trigger": deadline.trigger, "at": deadline.due_at})
    if lateness:
        fired = (select(history.c.instance, history.c.trigger, history.c.at, history.c.from_state, history.c.to_state)
                 .select_from(history.join(instances, instances.c.id == history.c.instance))
                 .where(history.c.instance.in_(list(ids)), _lateness_row(lateness)).order_by(history.c.seq))
        for r in conn.execute(fired):
            out[r.instance].append({"why": "deadline_fired", "trigger": r.trigger, "at": r.at,
                                    "from": r.from_state, "to": r.to_state})
    return out


def open_in_state_order(conn: Connection, refs: Mapping[str, Sequence[str]],
                        first: int = 200) -> Generator[dict[str, Any], None, None]:
    """Open instances (id, workflow, version, state, since, `refs`), longest in their state first,
    read in chunks (keyset on state_entered_at, id) growing from `first` rows fourfold: a caller
    that stops early has made the database sort and hand over only about what it read."""
    base = (select(instances.c.id, instances.c.workflow, instances.c.version, instances.c.state,
                   instances.c.state_entered_at, *_ref_columns(refs))
            .where(_open()).order_by(instances.c.state_entered_at, instances.c.id))
    size, after = first, None
    while True:
        query = base if after is None else base.where(or_(instances.c.state_entered_at > after[0], and_(
            instances.c.state_entered_at == after[0], instances.c.id > after[1])))
        rows = conn.execute(query.limit(size)).all()
        for r in rows:
            yield {"id": r.id, "workflow": r.workflow, "version": r.version, "state": r.state,
                   "since": r.state_entered_at, "refs": _refs(refs, r[5:])}
        if len(rows) < size:
            return
        after, size = (rows[-1].state_entered_at, rows[-1].id), size * 4


def live_consents(conn: Connection, now: datetime, refs: Mapping[str, Sequence[str]]) -> dict[str, dict[str, Any]]:
    """Open instances holding consents not yet expired: id -> {workflow, version, state, refs,
    given: trigger -> parties} (only these instances need their next steps decided one by one)."""
    query = (select(consents.c.instance, consents.c.trigger, consents.c.party, instances.c.workflow, instances.c.version,
                    instances.c.state, *_ref_columns(refs))
             .select_from(consents.join(instances, instances.c.id == consents.c.instance))
             .where(_open(), or_(consents.c.expires_at.is_(None), consents.c.expires_at > now)))
    out: dict[str, dict[str, Any]] = {}
    for r in conn.execute(query):
        entry = out.setdefault(r.instance, {"workflow": r.workflow, "version": r.version, "state": r.state,
                                            "refs": _refs(refs, r[6:]), "given": {}})
        entry["given"].setdefault(r.trigger, set()).add(r.party)
    return out


def armed_deadlines_of(conn: Connection, ids: Sequence[str]) -> dict[str, datetime]:
    """The armed deadline (due time) of each of `ids` (one page, bounded) that has one."""
    if not ids:
        return {}
    query = select(timers.c.instance, func.min(timers.c.due_at)).where(
        timers.c.instance.in_(list(ids)), timers.c.status == TimerStatus.ARMED).group_by(timers.c.instance)
    return dict(conn.execute(query).all())


# ---- what falls due (coopflow upcoming, the calendar): filtered by due time in SQL


def _deadlines_where(horizon: datetime, skip: Sequence[tuple[str, str]], visibility: Visibility | None = None):
    """Armed timers due by `horizon`, except those armed in the (workflow, state) pairs `skip`, of
    instances `visibility` allows (joined to instances)."""
    where = [timers.c.status == TimerStatus.ARMED, timers.c.due_at <= horizon]
    if skip:
        where.append(tuple_(timers.c.workflow, timers.c.state).not_in(list(skip)))
    if visibility is not None and visibility.parties is not None:
        where.append(visible_where(visibility))
    return where


def deadline_count(conn: Connection, horizon: datetime, skip: Sequence[tuple[str, str]] = (),
                   visibility: Visibility | None = None) -> int:
    """How many armed timers are due by `horizon`, except those armed in the (workflow, state) pairs
    `skip`, of the instances `visibility` allows (None: all).

    For everything: all the due timers (index `ix_timers_due` alone) less those of each pair in
    `skip` (a range of `ix_timers_state_due`), in one statement: `NOT IN` would read every due
    timer's row. For one reader the instances' party fields must be read anyway."""
    if visibility is not None and visibility.parties is not None:
        query = (select(func.count()).select_from(timers.join(instances, instances.c.id == timers.c.instance))
                 .where(*_deadlines_where(horizon, skip, visibility)))
        return conn.execute(query).scalar_one()

    def due(*where):
        return select(func.count()).select_from(timers).where(
            timers.c.status == TimerStatus.ARMED, timers.c.due_at <= horizon, *where).scalar_subquery()

    pairs = list(dict.fromkeys(skip))  # each pair subtracted once
    count = due()
    for workflow, state in pairs:
        count = count - due(timers.c.workflow == workflow, timers.c.state == state)
    return conn.execute(select(count)).scalar_one()


def deadlines_due(conn: Connection, horizon: datetime, skip: Sequence[tuple[str, str]] = (), limit: int | None = None,
                  offset: int = 0, visibility: Visibility | None = None) -> list[dict[str, Any]]:
    """Armed timers due by `horizon` (passed ones included), soonest first, with their instance's
    version and fields: `limit` of them after `offset`, of the instances `visibility` allows."""
    query = (select(timers.c.instance, timers.c.workflow, timers.c.state, timers.c.trigger, timers.c.due_at,
                    instances.c.version, instances.c.fields)
             .select_from(timers.join(instances, instances.c.id == timers.c.instance))
             .where(*_deadlines_where(horizon, skip, visibility)).order_by(timers.c.due_at, timers.c.instance).offset(offset))
    if limit is not None:
        query = query.limit(limit)
    return [dict(r) for r in conn.execute(query).mappings()]


def awaited_meetings(conn: Connection, workflow: str, state: str,
                     visibility: Visibility | None = None) -> Generator[dict[str, Any], None, None]:
    """Open instances of `workflow` in `state` (meetings awaited) with their fields and armed deadline,
    those `visibility` allows, streamed in no particular order (the caller orders them by time)."""
    # Ordered by the two filtered columns (the index's order), not by id: with statistics that say
    # one workflow holds most instances (ANALYZE on such a store), an ORDER BY id made SQLite walk
    # every instance in id order instead of the few in `state` (1,000,000 instances: ~0.35 s).
    query = (select(instances.c.id, instances.c.version, instances.c.state, instances.c.fields,
                    timers.c.due_at, timers.c.trigger)
             .outerjoin(timers, (timers.c.instance == instances.c.id) & (timers.c.status == TimerStatus.ARMED) & (timers.c.state == state))
             .where(instances.c.workflow == workflow, instances.c.state == state, _open(), visible_where(visibility))
             .order_by(instances.c.workflow, instances.c.state))
    for r in conn.execute(query.execution_options(yield_per=1000)).mappings():
        yield dict(r)
