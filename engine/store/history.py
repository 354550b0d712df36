"""The append-only, hash-chained history: every applied or refused event, in order.

Each row's hash is sha256(previous row's hash + the row's canonical JSON content), so editing,
deleting or inserting a row by hand breaks the chain from that row on. The head of the chain
(last seq and hash) is also kept in coopflow_meta, so cutting rows off the end is caught too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from engine.store.database import history, meta

GENESIS = "0" * 64
HEAD_KEY = "history_head"
CONTENT = ("seq", "instance", "inbox_id", "at", "kind", "workflow", "trigger", "from_state", "to_state",
           "actor", "outcome", "reason", "data")
ADVISORY_LOCK_ID = 0x636F6F70  # "coop": serialises appends on PostgreSQL


_SELECT_HEAD = select(meta.c.value).where(meta.c.key == HEAD_KEY)
_UPDATE_HEAD = meta.update().where(meta.c.key == HEAD_KEY)
_INSERT_ROW = history.insert()


def row_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """The hash of one history row given the previous row's hash."""
    content = {k: row.get(k) for k in CONTENT}
    at = content["at"]
    content["at"] = at.isoformat() if isinstance(at, datetime) else at
    blob = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + blob).encode()).hexdigest()


def append(conn: Connection, **row: Any) -> int:
    """Append one row (inside the caller's transaction); returns its seq."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_ID})
    head = conn.execute(_SELECT_HEAD).scalar()
    last_seq, prev = (int(head.split(":")[0]), head.split(":")[1]) if head else (0, GENESIS)
    row.setdefault("data", {})
    row = {**row, "seq": last_seq + 1}
    row["at"] = row["at"].astimezone(timezone.utc)  # hashed exactly as the store gives it back
    digest = row_hash(prev, row)
    conn.execute(_INSERT_ROW, {**row, "prev_hash": prev, "hash": digest})
    value = f"{row['seq']}:{digest}"
    if head:
        conn.execute(_UPDATE_HEAD, {"value": value})
    else:
        conn.execute(meta.insert().values(key=HEAD_KEY, value=value))
    return row["seq"]


@dataclass(frozen=True)
class Break:
    """Where the chain first fails, and why."""

    seq: int
    reason: str

    def __str__(self) -> str:
        return f"history row {self.seq}: {self.reason}"


def verify(conn: Connection) -> tuple[int, Break | None]:
    """Walk the whole chain; returns (rows checked, first break or None)."""
    prev, expected_seq, count = GENESIS, 1, 0
    for row in _rows(conn):
        if row["seq"] != expected_seq:
            missing = "deleted" if row["seq"] > expected_seq else "out of order"
            return count, Break(expected_seq, f"row {missing} (next row found is {row['seq']})")
        if row["prev_hash"] != prev:
            return count, Break(row["seq"], "its link to the previous row does not match (a row before it was changed, removed or inserted)")
        if row_hash(prev, row) != row["hash"]:
            return count, Break(row["seq"], "its content does not match its hash (edited by hand)")
        prev, expected_seq, count = row["hash"], expected_seq + 1, count + 1
    head = conn.execute(select(meta.c.value).where(meta.c.key == HEAD_KEY)).scalar()
    if head is None and count:
        return count, Break(count, "the chain head record is missing")
    if head is not None:
        head_seq, head_hash = int(head.split(":")[0]), head.split(":")[1]
        if count > head_seq:  # name the first row past the recorded end, not the last genuine one
            return count, Break(head_seq + 1, f"the chain should end at row {head_seq} but goes on to row {count} (rows added at the end, or the head edited)")
        if count < head_seq:
            return count, Break(count + 1, f"the chain should end at row {head_seq} but ends at row {count} (rows removed from the end, or the head edited)")
        if head_hash != prev:
            return count, Break(count, "it does not match the chain head (the last row rewritten by hand, or the head edited)")
    return count, None


def _rows(conn: Connection) -> Iterator[dict[str, Any]]:
    result = conn.execute(select(history).order_by(history.c.seq)).mappings()
    for row in result:
        yield dict(row)
