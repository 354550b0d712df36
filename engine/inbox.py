"""The durable inbox: every request to move a workflow is a row here before anything happens.

Submitting is idempotent by key: a key submitted twice yields the first row (and, once applied,
its first outcome).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from engine import clock
from engine.store import inbox

START, FIRE, WITHDRAW = "start", "fire", "withdraw"
PENDING, APPLIED, REFUSED = "pending", "applied", "refused"


@dataclass(frozen=True)
class Submission:
    """What submit() accepted: the inbox row, the instance it concerns, and whether it is new."""

    inbox_id: int
    key: str
    instance: str
    new: bool


def new_instance_id(workflow: str) -> str:
    return f"{workflow}-{secrets.token_hex(4)}"


def submit(
    conn: Connection,
    kind: str,
    *,
    instance: str,
    actor: str,
    workflow: str | None = None,
    trigger: str | None = None,
    values: dict[str, Any] | None = None,
    key: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Submission:
    """Insert an event unless its key is already there; returns the row that holds the key."""
    key = key or f"auto:{secrets.token_hex(12)}"
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = insert(inbox).values(
        key=key, kind=kind, instance=instance, workflow=workflow, trigger=trigger, actor=actor,
        payload={"set": values or {}, **(extra or {})}, status=PENDING, submitted_at=clock.now(),
    ).on_conflict_do_nothing(index_elements=["key"]).returning(inbox.c.id)
    # Not rowcount: with RETURNING, psycopg reports -1 for it on PostgreSQL.
    inserted = conn.execute(statement).first() is not None
    row = conn.execute(select(inbox.c.id, inbox.c.instance).where(inbox.c.key == key)).one()
    return Submission(row.id, key, row.instance, inserted)


def status(conn: Connection, inbox_id: int) -> tuple[str, str | None]:
    """(status, outcome) of one inbox row."""
    row = conn.execute(select(inbox.c.status, inbox.c.outcome).where(inbox.c.id == inbox_id)).one()
    return row.status, row.outcome


def next_pending(conn: Connection, after_id: int = 0):
    """The oldest pending row (locked on PostgreSQL, skipping rows other executors hold).

    Per-instance order holds: a row is only returned if no older pending row exists for its
    instance (an older one locked by another executor makes us skip this instance for now).
    """
    query = select(inbox).where(inbox.c.status == PENDING, inbox.c.id > after_id).order_by(inbox.c.id).limit(1)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    row = conn.execute(query).mappings().first()
    if row is None:
        return None
    older = conn.execute(
        select(inbox.c.id).where(inbox.c.instance == row["instance"], inbox.c.status == PENDING, inbox.c.id < row["id"]).limit(1)
    ).first()
    if older is not None:
        return next_pending(conn, row["id"])
    return row
