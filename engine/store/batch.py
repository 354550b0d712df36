"""The batch write path: the writes of a transaction's events, kept in memory, one statement per table.

The executor decides each event of a batch against `Batch.view` (the instances of the batch as
they stand, those changed earlier in the same batch included) and gathers what the event writes
in an `EventWrites`. An accepted event's writes join the batch (`Batch.accept`), a refused one's
are simply dropped: that is the savepoint semantics without a savepoint. `Batch.flush` then
writes each table once (`executemany`): workflow versions, new instances, instance updates,
timers (and their reminders) disarmed, armed and fired, outbox rows, history rows (hash-chained in memory from the
head read once, under the append lock) and the inbox outcomes.

`careful` batches write each event as soon as it is accepted, inside its own savepoint: the
executor falls back to one when a whole-batch flush was rejected by the store (text a store
refuses), so that only the offending event is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError, DBAPIError

from engine.exceptions import InfrastructureError
from engine.store import history
from engine.store.database import inbox, insert_or_ignore, instances, outbox, reminders, timers, workflow_versions
from engine.store.prepared import Prepared, Query

ARMED, DISARMED, FIRED = "armed", "disarmed", "fired"

_SELECT_INSTANCES = select(instances).where(instances.c.id.in_(bindparam("ids", expanding=True)))
_SELECT_INSTANCE = select(instances).where(instances.c.id == bindparam("ids"))  # one: no IN list to expand
_FOR_UPDATE = {False: _SELECT_INSTANCES, True: _SELECT_INSTANCES.with_for_update()}
_READ_ONE = {False: Query(_SELECT_INSTANCE), True: Query(_SELECT_INSTANCE.with_for_update())}  # on the driver's cursor
_INSERT_INSTANCE = Prepared(instances.insert())
_UPDATE_INSTANCE = Prepared(update(instances).where(instances.c.id == bindparam("instance_id")).values(
    {c: bindparam(c) for c in ("state", "fields", "seq", "updated_at", "state_entered_at", "final")}))
_DISARM = Prepared(update(timers).where(timers.c.instance == bindparam("instance_id"), timers.c.status == ARMED)
                   .values(status=DISARMED))
_DISARM_REMINDERS = Prepared(update(reminders).where(reminders.c.instance == bindparam("instance_id"), reminders.c.status == ARMED)
                             .values(status=DISARMED))
_ARM = Prepared(timers.insert())
_ARM_REMINDERS = Prepared(reminders.insert())
_MARK_FIRED = Prepared(update(timers).where(timers.c.id == bindparam("timer_id")).values(status=FIRED))
_INSERT_OUTBOX = Prepared(outbox.insert().values(
    {c: bindparam(c) for c in ("instance", "kind", "payload", "status", "attempts", "next_at", "created_at")}))
_MARK_INBOX = Prepared(update(inbox).where(inbox.c.id == bindparam("inbox_id")).values(
    {c: bindparam(c) for c in ("status", "outcome", "applied_at")}))


@dataclass
class EventWrites:
    """What one event writes, in the order it wrote it; nothing reaches the store before `Batch.accept`."""

    ops: list[tuple[str, Any]] = field(default_factory=list)

    def start(self, row: dict[str, Any]) -> None:
        """A new instance (every column)."""
        self.ops.append(("start", row))

    def move(self, instance: str, values: dict[str, Any]) -> None:
        """An instance's new state, fields, seq and times."""
        self.ops.append(("move", (instance, values)))

    def disarm(self, instance: str) -> None:
        self.ops.append(("disarm", instance))

    def arm(self, row: dict[str, Any]) -> None:
        self.ops.append(("arm", row))

    def remind(self, rows: list[dict[str, Any]]) -> None:
        """The reminders armed with a deadline's timer (engine.notify.reminders)."""
        for row in rows:
            self.ops.append(("arm", {**row, "reminder": True}))

    def fired(self, timer_id: str) -> None:
        self.ops.append(("fired", timer_id))

    def outbox(self, row: dict[str, Any]) -> None:
        self.ops.append(("outbox", row))

    def history(self, **row: Any) -> None:
        """A history row without seq and hashes: the chain is computed when the batch is written."""
        self.ops.append(("history", row))

    def mark(self, inbox_id: int, status: str, outcome: str, at) -> None:
        self.ops.append(("mark", {"inbox_id": inbox_id, "status": status, "outcome": outcome, "applied_at": at}))

    def version(self, version: str, workflow: str, spec: dict, at) -> None:
        """Pin a workflow version (written at most once per store)."""
        self.ops.append(("version", {"version": version, "workflow": workflow, "spec": spec, "created_at": at}))


class _Tables:
    """Rows waiting to be written, one buffer per table; later writes to one row replace earlier ones."""

    def __init__(self) -> None:
        self.versions: dict[str, dict] = {}
        self.starts: dict[str, dict] = {}
        self.moves: dict[str, dict] = {}
        self.disarms: dict[str, None] = {}  # instances stored before this buffer: disarm their timers in the store
        self.arms: dict[str, dict] = {}
        self.armed_of: dict[str, list[dict]] = {}  # instance -> its rows in `arms`
        self.fired: dict[str, None] = {}  # timers stored before this buffer
        self.outbox: list[dict] = []
        self.history: list[dict] = []
        self.marks: list[dict] = []

    def add(self, writes: EventWrites) -> None:
        for op, arg in writes.ops:
            _ADD[op](self, arg)

    def _start(self, row: dict) -> None:
        self.starts[row["id"]] = dict(row)

    def _move(self, arg: tuple[str, dict]) -> None:
        instance, values = arg
        if instance in self.starts:
            self.starts[instance].update(values)
        else:
            self.moves[instance] = {"instance_id": instance, **values}

    def _disarm(self, instance: str) -> None:
        for row in self.armed_of.pop(instance, ()):
            if row["status"] == ARMED:
                row["status"] = DISARMED
        if instance not in self.starts:
            self.disarms[instance] = None

    def _arm(self, row: dict) -> None:
        self.arms[row["id"]] = armed = {**row, "status": ARMED}
        self.armed_of.setdefault(row["instance"], []).append(armed)

    def _fired(self, timer_id: str) -> None:
        if timer_id in self.arms:
            self.arms[timer_id]["status"] = FIRED
        else:
            self.fired[timer_id] = None

    def _outbox(self, row: dict) -> None:
        self.outbox.append(row)

    def _history(self, row: dict) -> None:
        self.history.append(row)

    def _mark(self, row: dict) -> None:
        self.marks.append(row)

    def _version(self, row: dict) -> None:
        self.versions.setdefault(row["version"], row)

    def write(self, conn: Connection) -> None:
        """One statement per table (disarms before the new timers, which carry their own status)."""
        for row in self.versions.values():
            insert_or_ignore(conn, workflow_versions, ["version"], **row)
        for statement, rows in ((_INSERT_INSTANCE, list(self.starts.values())), (_UPDATE_INSTANCE, list(self.moves.values())),
                                (_DISARM, [{"instance_id": i} for i in self.disarms]),
                                (_DISARM_REMINDERS, [{"instance_id": i} for i in self.disarms]),
                                (_ARM, [r for r in self.arms.values() if not r.get("reminder")]),
                                (_ARM_REMINDERS, [{k: v for k, v in r.items() if k != "reminder"} for r in self.arms.values() if r.get("reminder")]),
                                (_MARK_FIRED, [{"timer_id": t} for t in self.fired]), (_INSERT_OUTBOX, self.outbox)):
            statement.run(conn, rows)
        if self.history:
            history.append_many(conn, self.history)
        _MARK_INBOX.run(conn, self.marks)


_ADD = {op: getattr(_Tables, "_" + op) for op in ("start", "move", "disarm", "arm", "fired", "outbox", "history", "mark", "version")}


class Batch:
    """One transaction's events: the instances they touch (`view`) and the writes not yet made."""

    def __init__(self, conn: Connection, careful: bool = False):
        self.conn = conn
        self.careful = careful
        self.view: dict[str, dict | None] = {}
        self.versions: set[str] = set()  # pinned by this batch (known to the store once it commits)
        self._tables = _Tables()

    def load(self, instance_ids) -> None:
        """Read (on PostgreSQL, lock) the stored instances of the next events, once for all of them."""
        wanted = sorted({i for i in instance_ids if i not in self.view})
        if not wanted:
            return
        locking = self.conn.dialect.name == "postgresql"
        if len(wanted) == 1:  # the one event of a submit-and-apply
            found = {r["id"]: r for r in _READ_ONE[locking].rows(self.conn, {"ids": wanted[0]})}
        else:
            found = {r.id: r._asdict() for r in self.conn.execute(_FOR_UPDATE[locking], {"ids": wanted})}
        for instance in wanted:
            self.view[instance] = found.get(instance)

    def accept(self, writes: EventWrites) -> None:
        """Keep an event's writes. A careful batch writes them now, in a savepoint: if the store
        rejects them the exception propagates and neither the store nor `view` keeps any of it."""
        if self.careful:
            tables = _Tables()
            tables.add(writes)
            with self.conn.begin_nested():
                tables.write(self.conn)
        else:
            self._tables.add(writes)
        for op, arg in writes.ops:
            if op == "start":
                self.view[arg["id"]] = dict(arg)
            elif op == "move":
                instance, values = arg
                current = self.view[instance]
                if current is None:  # a move of an instance neither stored nor started in this batch
                    raise LookupError(f"instance {instance} is not in the batch")
                self.view[instance] = {**current, **values}
            elif op == "version":
                self.versions.add(arg["version"])

    def flush(self) -> None:
        """Write everything accepted so far, one statement per table."""
        tables, self._tables = self._tables, _Tables()
        tables.write(self.conn)


def store_failure(exc: Exception) -> bool:
    """A store that is down, busy or lost (retry later), as opposed to data it rejects (refuse the event)."""
    return isinstance(exc, InfrastructureError) or (isinstance(exc, DBAPIError) and not isinstance(exc, DataError))
