"""The batch write path (engine/store/batch.py, Executor.apply_batch) on SQLite and PostgreSQL.

Several events of one instance in one batch see each other's changes; a refusal in the middle of
a batch leaves nothing but its refusal; text the store rejects makes only its own event refused;
a batch writes each table once; on PostgreSQL a connection killed under the pool is replaced
after the one failure (no pre-ping per transaction).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event, select, text

from engine.execution.executor import Executor
from engine.policy.loader import load_policy
from engine.store import audit, history, inbox
from engine.store.database import SqlStore, StoreError, instances, outbox, timers
from engine.store.database import history as history_table

REQUESTER, RECIPIENT = "dic.focal_point", "police.focal_point"
REQUEST = {"requester": "dic", "recipient": "police", "subject": "Danh sách tên miền vi phạm", "dispatch_no": "12/STTTT"}


@pytest.fixture
def executor(shipped_policy: Path, store: SqlStore) -> Executor:
    return Executor(store, load_policy(shipped_policy))


def queue(store: SqlStore, *events: tuple) -> list[int]:
    """Submit events in one transaction without applying them: (kind, instance, trigger, actor, values)."""
    ids = []
    with store.transaction() as conn:
        for kind, instance, trigger, actor, values in events:
            ids.append(inbox.submit(conn, kind, instance=instance, workflow="information_exchange" if kind == inbox.START else None,
                                    trigger=trigger, actor=actor, values=values).inbox_id)
    return ids


def history_of(store: SqlStore, inbox_id: int) -> list[dict]:
    with store.reading() as conn:
        return [dict(r) for r in conn.execute(select(history_table).where(history_table.c.inbox_id == inbox_id)).mappings()]


def test_one_batch_sees_its_own_changes_and_a_refusal_leaves_only_itself(executor: Executor, store: SqlStore) -> None:
    ids = queue(store, (inbox.START, "information_exchange-b1", None, REQUESTER, REQUEST),
                (inbox.FIRE, "information_exchange-b1", "send", REQUESTER, {}),
                (inbox.FIRE, "information_exchange-b1", "answer", RECIPIENT, {"answer": "too early"}),  # refused: state sent
                (inbox.FIRE, "information_exchange-b1", "acknowledge", RECIPIENT, {}),
                (inbox.START, "information_exchange-b1", None, REQUESTER, REQUEST))  # refused: exists (in this batch)
    outcomes = executor.apply_batch(100)
    assert [o.status for o in outcomes] == ["applied", "applied", "refused", "applied", "refused"]
    assert "not allowed from state 'sent'" in outcomes[2].text
    assert outcomes[4].text == "instance 'information_exchange-b1' already exists"
    with store.reading() as conn:
        row = conn.execute(select(instances).where(instances.c.id == "information_exchange-b1")).mappings().one()
        assert (row["state"], row["seq"]) == ("in_progress", 3)
        assert "answer" not in row["fields"] or row["fields"]["answer"] in (None, "")
        armed = {r.id: r.status for r in conn.execute(select(timers))}
        assert armed == {"information_exchange-b1:2": "disarmed", "information_exchange-b1:3": "armed"}
        assert history.verify(conn) == (5, None)
        assert [inbox.status(conn, i)[0] for i in ids] == ["applied", "applied", "refused", "applied", "refused"]
    refused = history_of(store, ids[2])
    assert len(refused) == 1 and refused[0]["outcome"] == "refused" and refused[0]["to_state"] == "sent"
    assert audit.verify(store).ok, audit.verify(store).problems


def test_text_the_store_rejects_refuses_only_its_own_event(executor: Executor, store: SqlStore) -> None:
    """A field name with a NUL byte (the door stops it; here it comes straight into the inbox) ends up in the
    refusal's text: PostgreSQL rejects it when the batch is written, and the batch is applied again
    event by event. SQLite takes it as it is."""
    ids = queue(store, (inbox.START, "information_exchange-b2", None, REQUESTER, REQUEST),
                (inbox.FIRE, "information_exchange-b2", "send", REQUESTER, {"no\x00such": "x"}),
                (inbox.FIRE, "information_exchange-b2", "send", REQUESTER, {}))
    outcomes = executor.apply_batch(100)
    assert [o.status for o in outcomes] == ["applied", "refused", "applied"]
    with store.reading() as conn:
        status, outcome = inbox.status(conn, ids[1])
        assert status == "refused"
        assert ("\\x00" in outcome) if store.dialect == "postgresql" else ("\x00" in outcome)
        assert conn.execute(select(instances.c.state).where(instances.c.id == "information_exchange-b2")).scalar_one() == "sent"
        assert history.verify(conn) == (3, None)


def test_a_batch_writes_each_table_once(executor: Executor, store: SqlStore) -> None:
    events = []
    for n in range(25):
        instance = f"information_exchange-c{n}"
        events += [(inbox.START, instance, None, REQUESTER, {**REQUEST, "subject": f"Yêu cầu {n}"}),
                   (inbox.FIRE, instance, "send", REQUESTER, {}),
                   (inbox.FIRE, instance, "acknowledge", RECIPIENT, {}),
                   (inbox.FIRE, instance, "answer", RECIPIENT, {"answer": f"Trả lời {n}"})]
    queue(store, *events[:4])
    executor.apply_batch(100)  # the workflow version is stored once, before the measured batch
    queue(store, *events[4:])
    statements: list[str] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def count(conn, cursor, statement, params, context, executemany):
        statements.append(statement.split()[0].upper() + " " + statement.split()[2 if statement.startswith("INSERT") else 1])

    outcomes = executor.apply_batch(100)
    event.remove(store.engine, "before_cursor_execute", count)
    assert len(outcomes) == 96 and all(o.applied for o in outcomes)
    writes = [s for s in statements if not s.startswith(("SELECT", "BEGIN", "SAVEPOINT", "RELEASE"))]
    assert len(writes) == len(set(writes)), writes  # one statement per table and kind
    assert len(statements) <= 12, statements
    with store.reading() as conn:
        assert conn.execute(select(outbox.c.id)).all() and history.verify(conn) == (100, None)


def test_postgres_connection_killed_under_the_pool_is_replaced_after_one_failure(shipped_policy: Path, store: SqlStore) -> None:
    if store.dialect != "postgresql":
        pytest.skip("a PostgreSQL pool")
    victim = store.engine.connect()
    with store.engine.connect() as admin:  # a second connection of the same pool kills the first
        pid = victim.execute(text("SELECT pg_backend_pid()")).scalar_one()
        victim.rollback()
        victim.close()  # back in the pool, first in line
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.commit()
    with pytest.raises(StoreError):  # the dead connection comes out of the pool once, unpinged
        with store.transaction() as conn:
            conn.execute(text("SELECT 1"))
    with store.transaction() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1


JSON_VALUES = [
    {"subject": "Yêu cầu số 12", "n": 3, "x": 1.5, "none": None, "list": [1, "á", {"b": True, "a": False}]},
    {"z": {"y": {"x": ["\ud800 lone surrogate", "tab\tquote\"back\\slash"]}}, "a": float("inf"), "b": float("nan")},
    "plain string", 12, None, [], {},
]


@pytest.mark.parametrize("value", JSON_VALUES, ids=range(len(JSON_VALUES)))
def test_json_text_is_json_dumps_text(value) -> None:
    """The encoders built once give json.dumps's text, byte for byte (the chain's hashes depend on it)."""
    import json
    from datetime import UTC, datetime

    from engine.store import jsontext

    assert jsontext.plain(value) == json.dumps(value)
    with_time = {"at": datetime(2026, 12, 3, 14, 0, tzinfo=UTC), "value": value}
    assert jsontext.canonical(with_time) == json.dumps(with_time, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def test_prepared_writes_bind_what_conn_execute_binds(store: SqlStore) -> None:
    """One instant given in two time zones is stored as the same UTC value by a prepared write and by
    SQLAlchemy's own execute, in every column it fills; JSON the same text; a naive datetime is refused each time."""
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import Text as SqlText
    from sqlalchemy import bindparam, cast, insert

    from engine.store.prepared import Prepared

    instant = datetime(2026, 12, 3, 14, 0, 0, 123456, tzinfo=UTC)
    local = instant.astimezone(timezone(timedelta(hours=7)))
    payload = {"source": {"subject": "Công văn số 5", "n": 1}}
    rows = [{"instance": "x-1", "kind": "notify", "payload": payload, "status": "pending", "attempts": 0, "next_at": instant, "created_at": local},
            {"instance": "x-2", "kind": "notify", "payload": payload, "status": "pending", "attempts": 0, "next_at": local, "created_at": instant}]
    statement = Prepared(outbox.insert().values({c: bindparam(c) for c in rows[0]}))
    with store.transaction() as conn:
        statement.run(conn, rows)
        conn.execute(insert(outbox), [{**rows[0], "instance": "x-3"}])
        with pytest.raises(Exception, match="naive"):
            with conn.begin_nested():
                statement.run(conn, [{**rows[0], "next_at": instant.replace(tzinfo=None)}])
        with pytest.raises(Exception, match="naive"):  # not remembered as a good value
            with conn.begin_nested():
                statement.run(conn, [{**rows[0], "next_at": instant.replace(tzinfo=None)}])
    with store.reading() as conn:
        stored = conn.execute(select(outbox.c.instance, cast(outbox.c.payload, SqlText), cast(outbox.c.next_at, SqlText),
                                     cast(outbox.c.created_at, SqlText)).order_by(outbox.c.instance)).all()
    assert [r[0] for r in stored] == ["x-1", "x-2", "x-3"]
    assert len({r[1:] for r in stored}) == 1, stored  # payload text, next_at and created_at alike in all three
    assert len({r[2] for r in stored} | {r[3] for r in stored}) == 1, stored


def test_many_rows_are_inserted_in_chunks_of_statements(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL inserts many rows with one statement (VALUES (...), (...)), chunked to bound its
    parameters; SQLite with one executemany. Either way every row arrives, in order, once."""
    from datetime import UTC, datetime

    from sqlalchemy import bindparam

    from engine.store import prepared

    monkeypatch.setattr(prepared, "MAX_PARAMS", 16)  # 7 columns: 2 rows per statement
    columns = ("instance", "kind", "payload", "status", "attempts", "next_at", "created_at")
    statement = prepared.Prepared(outbox.insert().values({c: bindparam(c) for c in columns}))
    now = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)
    rows = [{"instance": f"x-{n}", "kind": "notify", "payload": {"n": n}, "status": "pending", "attempts": n,
             "next_at": now, "created_at": now} for n in range(5)]
    sent: list[tuple[str, bool]] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def count(conn, cursor, sql, params, context, executemany):
        if sql.startswith("INSERT"):
            sent.append((sql.split(" VALUES ")[1].count("("), executemany))

    with store.transaction() as conn:
        statement.run(conn, rows)
    event.remove(store.engine, "before_cursor_execute", count)
    assert sent == ([(2, False), (2, False), (1, False)] if store.dialect == "postgresql" else [(1, True)])
    with store.reading() as conn:
        stored = conn.execute(select(outbox.c.instance, outbox.c.payload, outbox.c.attempts).order_by(outbox.c.id)).all()
    assert [tuple(r) for r in stored] == [(f"x-{n}", {"n": n}, n) for n in range(5)]


def test_prepared_reads_give_what_conn_execute_gives(store: SqlStore) -> None:
    """A read on the driver's cursor (prepared.Query) gives the rows SQLAlchemy's own execute gives:
    JSON decoded, instants aware in UTC, an insert-or-ignore's RETURNING empty when the key is taken;
    listeners see it, and a statement the store rejects comes out as SQLAlchemy's error."""
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import bindparam, literal_column
    from sqlalchemy.exc import DBAPIError

    from engine.store import inbox as inbox_rows
    from engine.store.database import inbox
    from engine.store.prepared import Query

    local = datetime(2026, 12, 3, 21, 0, 0, 123456, tzinfo=timezone(timedelta(hours=7)))
    read = Query(select(inbox).where(inbox.c.key == bindparam("key")))
    seen: list[str] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def _seen(conn, cursor, statement, params, context, executemany):
        seen.append(statement.split()[0])

    with store.transaction() as conn:
        first = inbox_rows.submit(conn, inbox_rows.FIRE, instance="x-1", trigger="send", actor="dic.focal_point",
                                  values={"subject": "Công văn số 5", "n": [1, None]}, key="user:k1")
        again = inbox_rows.submit(conn, inbox_rows.FIRE, instance="x-1", trigger="send", actor="dic.focal_point", key="user:k1")
        conn.execute(inbox.update().where(inbox.c.id == first.inbox_id).values(applied_at=local))
        prepared = read.rows(conn, {"key": "user:k1"})
        expected = [dict(r) for r in conn.execute(select(inbox).where(inbox.c.key == "user:k1")).mappings()]
        assert read.rows(conn, {"key": "user:none"}) == []
        with pytest.raises(DBAPIError), conn.begin_nested():
            Query(select(literal_column("no_such_column")).select_from(inbox)).rows(conn)
    event.remove(store.engine, "before_cursor_execute", _seen)
    assert first.new and not again.new and again.inbox_id == first.inbox_id
    assert prepared == expected and len(prepared) == 1
    assert prepared[0]["payload"] == {"set": {"subject": "Công văn số 5", "n": [1, None]}}
    assert prepared[0]["applied_at"] == local and prepared[0]["applied_at"].tzinfo == UTC
    assert seen.count("SELECT") >= 3 and "INSERT" in seen
