"""The durable inbox: every request to move a workflow is a row here before anything happens.

Submitting is idempotent by key: a key submitted twice yields the first row (and, once applied,
its first outcome).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from engine import clock
from engine.store.database import inbox, insert_or_ignore

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
    new = insert_or_ignore(
        conn, inbox, ["key"], returning="id", key=key, kind=kind, instance=instance, workflow=workflow, trigger=trigger,
        actor=actor, payload={"set": values or {}, **(extra or {})}, status=PENDING, submitted_at=clock.now(),
    ).first()
    if new is not None:
        return Submission(new.id, key, instance, True)
    row = conn.execute(select(inbox.c.id, inbox.c.instance).where(inbox.c.key == key)).one()
    return Submission(row.id, key, row.instance, False)


def status(conn: Connection, inbox_id: int) -> tuple[str, str | None]:
    """(status, outcome) of one inbox row."""
    row = conn.execute(select(inbox.c.status, inbox.c.outcome).where(inbox.c.id == inbox_id)).one()
    return row.status, row.outcome


_OLDEST_PENDING = select(inbox).where(inbox.c.status == PENDING).order_by(inbox.c.id).limit(1)
_OLDEST_PENDING_AFTER = (
    select(inbox).where(inbox.c.status == PENDING, inbox.c.id > bindparam("after")).order_by(inbox.c.id).limit(1)
    .with_for_update(skip_locked=True)
)
_OLDER_PENDING = select(inbox.c.id).where(
    inbox.c.instance == bindparam("instance"), inbox.c.status == PENDING, inbox.c.id < bindparam("id")).limit(1)


def next_pending(conn: Connection):
    """The oldest pending row; per-instance order always holds.

    On SQLite the write transaction holds the whole database, so the oldest pending row is
    simply the next one. On PostgreSQL several executors may run: rows held by another are
    skipped (SKIP LOCKED), and a row is only taken when no older pending row of its instance
    exists (one locked by another executor makes us leave that instance alone for now).
    """
    if conn.dialect.name != "postgresql":
        return conn.execute(_OLDEST_PENDING).mappings().first()
    after = 0
    while True:
        row = conn.execute(_OLDEST_PENDING_AFTER, {"after": after}).mappings().first()
        if row is None:
            return None
        if conn.execute(_OLDER_PENDING, {"instance": row["instance"], "id": row["id"]}).first() is None:
            return row
        after = row["id"]
