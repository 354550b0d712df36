"""Outbox rows: after-commit actions (emit, start, notify) due, done, or retried later.

The executor's batch writes them (engine.store.batch); engine.execution.outbox runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update

from engine.store import Tx
from engine.store.database import outbox
from engine.store.statuses import OutboxStatus


@dataclass(frozen=True)
class Action:
    """One outbox row as its runner needs it."""

    id: int
    instance: str
    kind: str  # an ActionKind; one this coopflow does not know is refused by the runner, not here
    payload: dict[str, Any]
    attempts: int


_DUE = (select(outbox.c.id, outbox.c.instance, outbox.c.kind, outbox.c.payload, outbox.c.attempts)
        .where(outbox.c.status == OutboxStatus.PENDING, outbox.c.next_at <= bindparam("now"))
        .order_by(outbox.c.id).limit(bindparam("limit")))
_DUE_PG = _DUE.with_for_update(skip_locked=True)
_FINISH = update(outbox).where(outbox.c.id == bindparam("row_id"))
_DONE = _FINISH.values(status=OutboxStatus.DONE, attempts=bindparam("attempts"), done_at=bindparam("done_at"))
_RETRY = _FINISH.values(status=bindparam("status"), attempts=bindparam("attempts"), last_error=bindparam("last_error"),
                        next_at=bindparam("next_at"))


def due(conn: Tx, now: datetime, limit: int) -> list[Action]:
    """Up to `limit` pending actions due by `now`, oldest first (on PostgreSQL, those another
    dispatcher holds are skipped)."""
    query = _DUE_PG if conn.dialect.name == "postgresql" else _DUE
    return [Action(r.id, r.instance, r.kind, r.payload, r.attempts) for r in conn.execute(query, {"now": now, "limit": limit})]


def mark_done(conn: Tx, action: Action, at: datetime) -> None:
    """The action ran: done at `at`, one attempt more."""
    conn.execute(_DONE, {"row_id": action.id, "attempts": action.attempts + 1, "done_at": at})


def mark_retry(conn: Tx, action: Action, error: str, next_at: datetime, failed: bool) -> None:
    """The action failed (one attempt more): due again at `next_at`, or `failed` for good."""
    conn.execute(_RETRY, {"row_id": action.id, "status": OutboxStatus.FAILED if failed else OutboxStatus.PENDING,
                          "attempts": action.attempts + 1, "last_error": error, "next_at": next_at})
