"""The durable inbox: every request to move a workflow is a row here before anything happens.

Submitting is idempotent by key: a key submitted twice yields the first row (and, once applied,
its first outcome). Keys live in namespaces that never meet: `user:<key>` for operators' keys
(engine.execution.intake.user_key), `timer:`, `schedule:`, `outbox:` and `auto:` for the
engine's own (`engine_key`). A user key reused for a different request is refused (KeyReused).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from engine import clock
from engine.exceptions import CoopflowError, UserError
from engine.store.database import _insert_or_ignore, inbox, instances
from engine.store.prepared import Query
from engine.store.statuses import EventKind, InboxStatus, Outcome

START, FIRE, WITHDRAW = EventKind.START, EventKind.FIRE, EventKind.WITHDRAW
PENDING, APPLIED, REFUSED, CANCELLED = InboxStatus.PENDING, InboxStatus.APPLIED, InboxStatus.REFUSED, InboxStatus.CANCELLED
STATUSES = tuple(s.value for s in InboxStatus)  # plain strings (click.Choice shows an enum by its names)
ENGINE_NAMESPACES = ("timer", "schedule", "outbox", "auto")


class KeyReused(UserError):
    """An idempotency key already taken by a different request."""


def engine_key(namespace: str, *parts: object) -> str:
    """An idempotency key of the engine's own (`namespace:part:part`); operators' keys are user:..."""
    if namespace not in ENGINE_NAMESPACES:
        raise ValueError(f"unknown key namespace {namespace!r}")
    return ":".join([namespace, *(str(p) for p in parts)])


@dataclass(frozen=True)
class Submission:
    """What submit() accepted: the inbox row, the instance it concerns, and whether it is new."""

    inbox_id: int
    key: str
    instance: str
    new: bool


def new_instance_id(workflow: str) -> str:
    return f"{workflow}-{secrets.token_hex(4)}"


SUBMIT_COLUMNS = ("key", "kind", "instance", "workflow", "trigger", "actor", "payload", "status", "submitted_at")
_SUBMIT = Query(lambda dialect: _insert_or_ignore(dialect, inbox, ("key",), "id").values(
    {c: bindparam(c) for c in SUBMIT_COLUMNS}))  # on the driver's cursor: the hot path of every event


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
    same_request: bool = False,
) -> Submission:
    """Insert an event unless its key is already there; returns the row that holds the key.

    With `same_request`, a key already held by a different request (kind, workflow, instance of
    a fire, trigger, actor or values) raises KeyReused naming the first request.
    """
    key = key or engine_key("auto", secrets.token_hex(12))
    new = _SUBMIT.rows(conn, {
        "key": key, "kind": kind, "instance": instance, "workflow": workflow, "trigger": trigger, "actor": actor,
        "payload": {"set": values or {}, **(extra or {})}, "status": PENDING, "submitted_at": clock.now()})
    if new:
        return Submission(new[0]["id"], key, instance, True)
    row = conn.execute(select(inbox).where(inbox.c.key == key)).mappings().one()
    if same_request:
        asked = {"kind": kind, "workflow": workflow, "trigger": trigger, "actor": actor, "values": values or {}}
        first = {"kind": row["kind"], "workflow": row["workflow"], "trigger": row["trigger"], "actor": row["actor"],
                 "values": row["payload"].get("set", {})}
        if kind != START:
            asked["instance"], first["instance"] = instance, row["instance"]
        differs = [name for name in asked if asked[name] != first[name]]
        if differs:
            raise KeyReused(f"key {key.removeprefix('user:')!r} was already used for a different request "
                            f"({', '.join(differs)} differ): inbox #{row['id']}, {describe(row)}")
    return Submission(row["id"], key, row["instance"], False)


def describe(row) -> str:
    """One inbox row in a few words: `fire send on X as Y, submitted ..., refused: ...`."""
    what = f"start {row['workflow']}" if row["kind"] == START else f"{row['kind']} {row['trigger']}"
    text = f"{what} on {row['instance']} as {row['actor']}, submitted {row['submitted_at'].isoformat(timespec='seconds')}"
    return f"{text}, {row['outcome'] or row['status']}"


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



APPLY_COLUMNS = ("id", "key", "kind", "instance", "workflow", "trigger", "actor", "payload")  # what applying an event reads
_PENDING_BATCH = (select(*(inbox.c[name] for name in APPLY_COLUMNS))
                  .where(inbox.c.status == PENDING, inbox.c.id > bindparam("after"), inbox.c.id <= bindparam("upto"))
                  .order_by(inbox.c.id).limit(bindparam("limit")))
_PENDING_BATCH_PG = _PENDING_BATCH.with_for_update(skip_locked=True)
_READ_PENDING = {False: Query(_PENDING_BATCH), True: Query(_PENDING_BATCH_PG)}  # on the driver's cursor
_PENDING_OF = select(inbox.c.id, inbox.c.instance).where(
    inbox.c.status == PENDING, inbox.c.instance.in_(bindparam("instances", expanding=True)), inbox.c.id < bindparam("below"))
_READ_PENDING_OF_ONE = Query(select(inbox.c.id, inbox.c.instance).where(
    inbox.c.status == PENDING, inbox.c.instance == bindparam("instance"), inbox.c.id < bindparam("below")))
NO_LIMIT = 2**62


def next_pending_batch(conn: Connection, limit: int, upto: int | None = None, after: int = 0) -> tuple[list[dict[str, Any]], bool]:
    """Up to `limit` oldest pending rows with ids in (`after`, `upto`], in id order, read at once
    (their `APPLY_COLUMNS`); and whether more may follow (`limit` rows were found).

    The same order as `next_pending`: on PostgreSQL rows held by another executor are skipped,
    and so is every row of ours that has an older pending row of its instance that is not ours
    (held by another executor): that instance is left alone for now.
    """
    params = {"limit": limit, "after": after, "upto": NO_LIMIT if upto is None else upto}
    if conn.dialect.name != "postgresql":
        rows = _READ_PENDING[False].rows(conn, params)
        return rows, len(rows) == limit
    taken = _READ_PENDING[True].rows(conn, params)
    if not taken:
        return taken, False
    ours = {r["id"] for r in taken}
    first_foreign: dict[str, int] = {}
    instances_of = sorted({r["instance"] for r in taken})
    if len(instances_of) == 1:  # the one event of a submit-and-apply: no IN list to expand, on the driver's cursor
        others = _READ_PENDING_OF_ONE.rows(conn, {"instance": instances_of[0], "below": taken[-1]["id"]})
    else:
        others = [r._asdict() for r in conn.execute(_PENDING_OF, {"instances": instances_of, "below": taken[-1]["id"]})]
    for other in others:
        if other["id"] not in ours and other["id"] < first_foreign.get(other["instance"], NO_LIMIT):
            first_foreign[other["instance"]] = other["id"]
    return [r for r in taken if r["id"] < first_foreign.get(r["instance"], NO_LIMIT)], len(taken) == limit


def rows(conn: Connection, statuses: tuple[str, ...] = (PENDING, REFUSED), instance: str | None = None,
         workflow: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Inbox rows with these statuses (optionally of one instance or workflow), newest first."""
    query = select(inbox).where(inbox.c.status.in_(statuses)).order_by(inbox.c.id.desc()).limit(limit)
    if instance is not None:
        query = query.where(inbox.c.instance == instance)
    if workflow is not None:
        known = select(instances.c.id).where(instances.c.workflow == workflow)
        query = query.where((inbox.c.workflow == workflow) | inbox.c.instance.in_(known))
    return [dict(r) for r in conn.execute(query).mappings()]


def cancel(conn: Connection, inbox_id: int, by: str, now=None) -> dict[str, Any]:
    """Cancel a pending event: it will never be applied; history records who cancelled it.

    Raises CoopflowError when there is no such event or it is no longer pending.
    """
    from engine.scheduling import timers
    from engine.store import history

    now = now or clock.now()
    text = f"cancelled by {by}"
    done = conn.execute(update(inbox).where(inbox.c.id == inbox_id, inbox.c.status == PENDING)
                        .values(status=CANCELLED, outcome=text, applied_at=now)).rowcount
    row = conn.execute(select(inbox).where(inbox.c.id == inbox_id)).mappings().first()
    if row is None:
        raise CoopflowError(f"no inbox event #{inbox_id}")
    if not done:
        raise CoopflowError(f"inbox #{inbox_id} is not pending: {row['outcome'] or row['status']}")
    current = conn.execute(select(instances.c.workflow, instances.c.state).where(instances.c.id == row["instance"])).first()
    state = current.state if current else None
    history.append(conn, instance=row["instance"], inbox_id=row["id"], at=now, kind=row["kind"],
                   workflow=current.workflow if current else row["workflow"], trigger=row["trigger"], from_state=state,
                   to_state=state, actor=by, outcome=Outcome.CANCELLED, reason=f"{text}; submitted by {row['actor']}",
                   data={"set": row["payload"].get("set", {}), "submitted_by": row["actor"],
                         **{k: v for k, v in row["payload"].items() if k != "set"}})
    if row["payload"].get("timer"):
        timers.mark_fired(conn, row["payload"]["timer"])  # the deadline's one event is gone: never re-queue it
    return dict(row)
