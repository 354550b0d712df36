"""The reads behind one person's worklist (the console's "Việc của tôi"): open instances they may
see, split by whether one of their roles is named for a next step, one page at a time in SQL;
and which of a page of instances (the calendar's) they may see.

A `Duty` says which instances name a role of the person for a step: those of one workflow
version, in one of some states, whose party field names one of the person's parties (or all of
them, for a pattern that names no field). The caller derives duties from the policy; here they
become a WHERE clause, so a page costs the rows on it, not the store's size. Pages are ordered by
armed deadline (soonest first, none last), then id, and continue from a keyset cursor.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, false, func, null, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from engine.store.reads import BadCursor, Visibility, visible_where
from engine.store.tables import instances, timers, workflow_versions


@dataclass(frozen=True)
class Duty:
    """Instances of `workflow` at `version` in one of `states` whose field `field` names one of
    `parties` (every such instance when `field` is None) owe a step to the person."""

    workflow: str
    version: str
    states: tuple[str, ...]
    field: str | None = None
    parties: tuple[str, ...] = ()


def pinned_versions(conn: Connection) -> list[tuple[str, str]]:
    """(workflow, version) of every workflow version the store has pinned (a small table)."""
    return [(w, v) for w, v in conn.execute(select(workflow_versions.c.workflow, workflow_versions.c.version))]


def _owed(duties: Sequence[Duty]):
    """Any of `duties` as SQL."""
    clauses: list[ColumnElement[bool]] = []
    for d in duties:
        clause = and_(instances.c.workflow == d.workflow, instances.c.version == d.version, instances.c.state.in_(d.states))
        if d.field is not None:  # never NULL (an empty field), so that NOT of it holds for the others
            clause = and_(clause, func.coalesce(instances.c.fields[d.field].as_string(), "").in_(list(d.parties)))
        clauses.append(clause)
    return or_(*clauses) if clauses else false()


WINDOW = 1_000  # instances looked at per query, in page order
BUDGET = 2_000  # instances looked at for one page at most; the page then ends early, its cursor where it stopped


def _encode(due: datetime | None, ident: str) -> str:
    raw = json.dumps([due.isoformat() if due is not None else None, ident]).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def check_cursor(text: str) -> tuple[datetime | None, str]:
    """(due time or None, id) of a cursor `page` handed out; BadCursor for any other text."""
    try:
        due, ident = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return (datetime.fromisoformat(due) if due is not None else None), str(ident)
    except (ValueError, TypeError) as exc:
        raise BadCursor(f"'{text[:40]}' is not a cursor this page handed out") from exc


def _deadlines_between(at: datetime | None, ident: str, end: Any = None):
    """Armed deadlines after (at, ident) and up to `end` (a row: due_at, id; None: no bound), soonest first."""
    query = select(timers.c.instance.label("id"), timers.c.due_at).where(timers.c.status == "armed")
    if at is not None:
        query = query.where(timers.c.due_at >= at, or_(timers.c.due_at > at, timers.c.instance > ident))
    if end is not None:
        query = query.where(timers.c.due_at <= end.due_at, or_(timers.c.due_at < end.due_at, timers.c.instance <= end.id))
    return query.order_by(timers.c.due_at, timers.c.instance)


def _ids_between(ident: str, end: Any = None):
    """Instances after `ident` and up to `end` (a row: id; None: no bound) by id."""
    query = select(instances.c.id, null().label("due_at")).where(instances.c.id > ident)
    if end is not None:
        query = query.where(instances.c.id <= end.id)
    return query.order_by(instances.c.id)


def page(conn: Connection, visibility: Visibility, duties: Sequence[Duty], owed: bool, limit: int,
         after: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Up to `limit` open instances `visibility` allows that match one of `duties` (`owed`) or none
    of them (not `owed`), by armed deadline (none last) then id, after the cursor `after`; each with
    its `deadline` (due_at, fires) or None. Also the cursor to continue from, None when nothing is left.

    Instances are looked at WINDOW at a time in that order (the due-time index, then the primary
    key), BUDGET at most: a page costs the instances looked at, never the whole store's; one that
    stops at BUDGET may hold fewer than `limit` rows, and the cursor goes on from there. A window's
    end is found on the index alone; the database then walks it in order and stops at `limit` rows."""
    matched = _owed(duties)
    # column tests first, the party fields' JSON after: SQL stops at the first false term
    wanted = and_(instances.c.final == 0, matched if owed else ~matched, visible_where(visibility))
    undated = ~select(timers.c.id).where(timers.c.instance == instances.c.id, timers.c.status == "armed").exists()
    at, ident = check_cursor(after) if after else (None, "")
    dated = after is None or at is not None
    hits: list[str] = []
    looked = 0
    while len(hits) < limit and looked < BUDGET:
        end = conn.execute((_deadlines_between(at, ident) if dated else _ids_between(ident)).offset(WINDOW - 1).limit(1)).first()
        if dated:
            window = _deadlines_between(at, ident, end).join(instances, instances.c.id == timers.c.instance).where(wanted)
        else:
            window = _ids_between(ident, end).where(wanted, undated)
        kept = conn.execute(window.limit(limit - len(hits))).all()
        hits += [r.id for r in kept]
        looked += WINDOW
        if len(hits) == limit:
            at, ident = kept[-1].due_at, kept[-1].id
        elif end is not None:
            at, ident = end.due_at, end.id
        elif dated:  # the deadlines are through: on to the files without one
            dated, at, ident = False, None, ""
        else:
            return _rows(conn, hits), None
    return _rows(conn, hits), _encode(at, ident)


def _rows(conn: Connection, ids: list[str]) -> list[dict[str, Any]]:
    """The instances `ids` (in that order) with their armed deadline."""
    if not ids:
        return []
    query = (select(instances, timers.c.due_at, timers.c.trigger.label("fires"))
             .outerjoin(timers, (timers.c.instance == instances.c.id) & (timers.c.status == "armed"))
             .where(instances.c.id.in_(ids)))
    found = {}
    for r in conn.execute(query).mappings():
        row = {k: v for k, v in r.items() if k not in ("due_at", "fires")}
        row["deadline"] = {"due_at": r["due_at"], "fires": r["fires"]} if r["due_at"] else None
        found[row["id"]] = row
    return [found[i] for i in ids if i in found]
