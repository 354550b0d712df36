"""The read model: the queries behind what people read (one instance, a filtered list, a history).

Every function takes a connection from `SqlStore.reading()` and returns plain dicts with
timezone-aware datetimes; rendering (tables, JSON, pages) is the caller's business.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection

from engine.store.database import consents, history, inbox, instances, timers


def instance(conn: Connection, instance_id: str) -> dict[str, Any] | None:
    """One instance with its armed deadline (`deadline`: due_at, fires) and its consents."""
    row = conn.execute(select(instances).where(instances.c.id == instance_id)).mappings().first()
    if row is None:
        return None
    armed = conn.execute(select(timers).where(timers.c.instance == instance_id, timers.c.status == "armed")).mappings().first()
    agreed = conn.execute(select(consents).where(consents.c.instance == instance_id).order_by(consents.c.at)).mappings()
    return {
        **row,
        "deadline": {"due_at": armed["due_at"], "fires": armed["trigger"]} if armed else None,
        "consents": [{"trigger": c["trigger"], "party": c["party"], "actor": c["actor"], "at": c["at"],
                      "expires_at": c["expires_at"]} for c in agreed],
    }


def _instances_query(workflow: str | None, state: str | None):
    """Instances (filtered by workflow and state) joined to their armed deadline, newest first."""
    query = (select(instances, timers.c.due_at, timers.c.trigger.label("fires"))
             .outerjoin(timers, (timers.c.instance == instances.c.id) & (timers.c.status == "armed"))
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


def instance_list(conn: Connection, workflow: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
    """Instances (filtered by workflow and state) with their armed deadline, newest first."""
    return [_instance_row(r) for r in conn.execute(_instances_query(workflow, state)).mappings()]


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
    return conn.execute(select(func.min(timers.c.due_at)).where(timers.c.status == "armed")).scalar()
