"""The append-only, hash-chained history: every applied or refused event, in order.

Each row's hash is HMAC-sha256(key, previous row's hash + the row's canonical JSON content), the
key being kept in a file outside the database (engine.store.anchors), so editing, deleting or
inserting a row by hand breaks the chain from that row on, and without the key nobody can
recompute a consistent chain. Rows written before a store got its key (seq < keyed_from) are
plain sha256. The head of the chain (last seq and hash) is also kept in coopflow_meta, so
cutting rows off the end is caught too (and, with a forged head, by the anchors).
"""

from __future__ import annotations

import hashlib
import hmac
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, bindparam, func, or_, select
from sqlalchemy.engine import Connection, Engine

from engine.store import jsontext
from engine.store.database import history, meta
from engine.store.prepared import Prepared, Query

GENESIS = "0" * 64
HEAD_KEY = "history_head"
KEY_FILE_KEY = "audit_key_file"  # where the key file is (not the key): for processes that open the store raw
CONTENT = ("seq", "instance", "inbox_id", "at", "kind", "workflow", "trigger", "from_state", "to_state",
           "actor", "outcome", "reason", "data")
ADVISORY_LOCK_ID = 0x636F6F70  # "coop": serialises appends on PostgreSQL


_SELECT_HEAD = select(meta.c.value).where(meta.c.key == HEAD_KEY)
_SELECT_HEAD_AND_KEY = select(meta.c.key, meta.c.value).where(or_(meta.c.key == HEAD_KEY, meta.c.key == KEY_FILE_KEY))  # no IN list to expand


@dataclass(frozen=True)
class Keying:
    """The secret key of a store's chain, and the first row it keys (older rows are plain sha256)."""

    key: bytes
    keyed_from: int


_KEYS: weakref.WeakKeyDictionary[Engine, Keying] = weakref.WeakKeyDictionary()


def use_key(engine: Engine, keying: Keying) -> None:
    """Key every row this engine appends (engine.store.anchors.attach calls it when a store opens)."""
    _KEYS[engine] = keying


def keying_of(conn: Connection, key_file: str | None = None) -> Keying | None:
    """The engine's registered key, else the key file the store names in coopflow_meta (if any)."""
    registered = _KEYS.get(conn.engine)
    if registered is not None:
        return registered
    if key_file is None:
        key_file = conn.execute(select(meta.c.value).where(meta.c.key == KEY_FILE_KEY)).scalar()
    if key_file is None:
        return None
    from engine.store.anchors import read_key_file  # the key file's format lives with the anchors

    return read_key_file(key_file).keying


_UPDATE_HEAD = Prepared(meta.update().where(meta.c.key == HEAD_KEY).values(value=bindparam("value")))
_INSERT_ROW = Prepared(history.insert())
_ADVISORY_LOCK = Query(select(func.pg_advisory_xact_lock(bindparam("k", ADVISORY_LOCK_ID, type_=BigInteger))))
_READ_HEAD_AND_KEY = Query(_SELECT_HEAD_AND_KEY)  # the lock and the head on the driver's cursor


def row_hash(prev_hash: str, row: dict[str, Any], key: bytes | None = None) -> str:
    """The hash of one history row given the previous row's hash (HMAC with `key` when given).

    Never raises on text: any Python str (lone surrogates included) is encoded the same way.
    """
    content = {k: row.get(k) for k in CONTENT}
    at = content["at"]
    if isinstance(at, datetime):
        content["at"] = at.isoformat()
    raw = (str(prev_hash) + jsontext.canonical(content)).encode("utf-8", "surrogatepass")
    if key is None:
        return hashlib.sha256(raw).hexdigest()
    return hmac.digest(key, raw, "sha256").hex()


def _key_for(keying: Keying | None, seq: int) -> bytes | None:
    return keying.key if keying is not None and seq >= keying.keyed_from else None


def append(conn: Connection, **row: Any) -> int:
    """Append one row (inside the caller's transaction); returns its seq."""
    return append_many(conn, [row])


def append_many(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Append rows in order (inside the caller's transaction), chained in memory from the head
    read once under the append lock, written with one statement; returns the last seq."""
    if conn.dialect.name == "postgresql":
        _ADVISORY_LOCK.rows(conn)
    found = {r["key"]: r["value"] for r in _READ_HEAD_AND_KEY.rows(conn)}
    head = found.get(HEAD_KEY)
    seq, prev = head_of(head)
    keying = keying_of(conn, found[KEY_FILE_KEY]) if KEY_FILE_KEY in found else _KEYS.get(conn.engine)
    chained = []
    for given in rows:
        seq += 1
        row = {"data": {}, **given, "seq": seq}
        row["at"] = row["at"].astimezone(UTC)  # hashed exactly as the store gives it back
        digest = row_hash(prev, row, _key_for(keying, seq))
        row["prev_hash"], row["hash"] = prev, digest
        chained.append(row)
        prev = digest
    _INSERT_ROW.run(conn, chained)
    value = f"{seq}:{prev}"
    if head:
        _UPDATE_HEAD.run(conn, [{"value": value}])
    else:
        conn.execute(meta.insert().values(key=HEAD_KEY, value=value))
    return seq


@dataclass(frozen=True)
class Break:
    """Where the chain first fails, and why."""

    seq: int
    reason: str

    def __str__(self) -> str:
        return f"history row {self.seq}: {self.reason}"


def verify(conn: Connection, keying: Keying | None = None) -> tuple[int, Break | None]:
    """Walk the whole chain; returns (rows checked, first break or None).

    `keying` defaults to the key the store was opened with (or the one its meta names).
    """
    keying = keying or keying_of(conn)
    return check(_rows(conn), conn.execute(_SELECT_HEAD).scalar(), keying)


def head_of(value: str | None) -> tuple[int, str]:
    """(seq, hash) of a stored head value; (0, GENESIS) for none."""
    if not value:
        return 0, GENESIS
    seq, _, digest = value.partition(":")
    return int(seq), digest


def check(rows: Iterable[dict[str, Any]], head: str | None, keying: Keying | None) -> tuple[int, Break | None]:
    """Walk rows (in seq order) against the stored head; returns (rows checked, first break or None)."""
    prev, expected_seq, count = GENESIS, 1, 0
    for row in rows:
        if row["seq"] != expected_seq:
            missing = "deleted" if row["seq"] > expected_seq else "out of order"
            return count, Break(expected_seq, f"row {missing} (next row found is {row['seq']})")
        if row["prev_hash"] != prev:
            return count, Break(row["seq"], "its link to the previous row does not match (a row before it was changed, removed or inserted)")
        if row_hash(prev, row, _key_for(keying, row["seq"])) != row["hash"]:
            return count, Break(row["seq"], "its content does not match its hash (edited by hand)")
        prev, expected_seq, count = row["hash"], expected_seq + 1, count + 1
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


def rows(conn: Connection) -> list[dict[str, Any]]:
    """Every history row, in seq order."""
    return list(_rows(conn))


def _rows(conn: Connection) -> Iterator[dict[str, Any]]:
    result = conn.execute(select(history).order_by(history.c.seq)).mappings()
    for row in result:
        yield dict(row)
