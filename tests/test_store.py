"""Tests for engine.store.database: schema creation and migration, version refusal, UTC timestamps, URLs.

The `store` / `store_url` fixtures (tests/conftest.py) run every store test on SQLite and on
PostgreSQL (each PostgreSQL test in a schema of its own).
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import inspect, select, text, update
from sqlalchemy.exc import StatementError

from engine.execution.runtime import open_runtime
from engine.store.database import (
    SCHEMA_VERSION,
    STORE_ENV,
    SqlStore,
    StoreError,
    instances,
    meta,
    metadata,
    resolve_url,
)

ICT = ZoneInfo("Asia/Ho_Chi_Minh")


def insert_instance(store: SqlStore, instance_id: str, moment: datetime) -> None:
    """Write one instance row whose timestamps are all `moment`."""
    with store.transaction() as conn:
        conn.execute(instances.insert().values(
            id=instance_id, workflow="w", version="v1", state="s", fields={"note": "Hồ sơ"}, final=0, seq=1,
            created_at=moment, updated_at=moment, state_entered_at=moment,
        ))


def test_schema_created_on_first_use(store):
    """Opening an empty database creates every table and records the schema version."""
    with store.reading() as conn:
        names = set(inspect(conn).get_table_names())
    assert set(metadata.tables) <= names
    assert store.meta_value("schema_version") == str(SCHEMA_VERSION)
    assert store.meta_value("created_at") is not None


def test_reopening_is_a_noop(store_url, store, log_records):
    """Opening an up-to-date store again migrates nothing and keeps its data and metadata."""
    created = store.meta_value("created_at")
    moment = datetime(2025, 6, 2, 9, 0, tzinfo=ICT)
    insert_instance(store, "kept-1", moment)
    log_records.clear()
    again = SqlStore(store_url)
    try:
        assert again.meta_value("schema_version") == str(SCHEMA_VERSION)
        assert again.meta_value("created_at") == created
        with again.reading() as conn:
            assert conn.execute(select(instances.c.id)).scalars().all() == ["kept-1"]
            assert conn.execute(select(meta.c.key).where(meta.c.key == "schema_version")).scalars().all() == ["schema_version"]
    finally:
        again.dispose()
    assert not [r for r in log_records if "upgraded" in r["message"]]


def test_schema_1_store_is_upgraded_keeping_its_data(store_url, store, log_records):
    """A store at schema 1 (before the timer index, before Alembic) is upgraded in place by the
    baseline revision and those after it: the index and the tables of release 0.2, the reminders
    table, the history index and the timers index by state created, data kept, both versions stamped."""
    moment = datetime(2025, 6, 2, 9, 0, tzinfo=ICT)
    insert_instance(store, "old-1", moment)
    with store.transaction() as conn:
        conn.execute(text("DROP INDEX ix_timers_instance_status"))
        conn.execute(text("DROP INDEX ix_history_actor_kind"))
        conn.execute(text("DROP INDEX ix_timers_state_due"))
        for table in ("users", "tokens", "login_attempts", "sessions", "deliveries", "reminders", "alembic_version"):
            conn.execute(text(f"DROP TABLE {table}"))
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="1"))
    store.dispose()
    log_records.clear()
    upgraded = SqlStore(store_url)
    try:
        with upgraded.reading() as conn:
            indexes = {ix["name"] for table in ("timers", "history") for ix in inspect(conn).get_indexes(table)}
            tables = set(inspect(conn).get_table_names())
            kept = conn.execute(select(instances.c.id)).scalars().all()
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert {"ix_timers_instance_status", "ix_history_actor_kind", "ix_timers_state_due"} <= indexes
        assert set(metadata.tables) <= tables
        assert kept == ["old-1"]
        assert upgraded.meta_value("schema_version") == str(SCHEMA_VERSION)
        assert revision == "schema_6"
    finally:
        upgraded.dispose()
    assert [r["message"] for r in log_records if "schema" in r["message"]] == [
        "schema 3 baseline: created table deliveries, table login_attempts, table sessions, "
        "index ix_timers_instance_status, table tokens, table users",
        "schema 4: created table reminders",
        "schema 5: created index ix_history_actor_kind on history (actor, kind)",
        "schema 6: created index ix_timers_state_due on timers (status, workflow, state, due_at)",
        "store schema upgraded from 1 to 6 (revision schema_6)"]


def test_store_written_by_newer_coopflow_is_refused(store_url, store):
    """A store whose coopflow_meta says schema_version 999 is refused with a clear StoreError and left untouched."""
    with store.transaction() as conn:
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="999"))
    store.dispose()
    with pytest.raises(StoreError, match="written by a newer coopflow") as caught:
        SqlStore(store_url)
    assert "999" in str(caught.value) and "upgrade coopflow" in str(caught.value)
    assert store.meta_value("schema_version") == "999"
    store.dispose()


def test_foreign_tables_are_refused(store_url):
    """A database holding an `instances` table that coopflow did not create is refused, not adopted."""
    from sqlalchemy import create_engine

    url = store_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE instances (id INTEGER PRIMARY KEY)"))
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match="did not create"):
        SqlStore(store_url)


def test_timestamps_come_back_aware_utc(store):
    """A datetime written with a +07:00 offset is read back as the same instant, aware, in UTC."""
    moment = datetime(2025, 6, 2, 9, 30, 15, 123456, tzinfo=ICT)
    insert_instance(store, "tz-1", moment)
    with store.reading() as conn:
        row = conn.execute(select(instances).where(instances.c.id == "tz-1")).mappings().one()
    for column in ("created_at", "updated_at", "state_entered_at"):
        value = row[column]
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
        assert value == moment
        assert value.hour == 2
    assert row["fields"] == {"note": "Hồ sơ"}


def test_naive_datetime_is_refused(store):
    """Writing a naive datetime is an error rather than a silent guess at its zone."""
    with pytest.raises(StatementError, match="naive datetime"):
        insert_instance(store, "naive-1", datetime(2025, 6, 2, 9, 0))
    with store.reading() as conn:
        assert conn.execute(select(instances.c.id)).first() is None


def test_transaction_rolls_back_on_error(store):
    """An exception inside transaction() leaves nothing of what it wrote."""
    with pytest.raises(RuntimeError):
        with store.transaction() as conn:
            conn.execute(instances.insert().values(
                id="gone-1", workflow="w", version="v", state="s", fields={}, final=0, seq=1,
                created_at=datetime.now(UTC), updated_at=datetime.now(UTC),
                state_entered_at=datetime.now(UTC)))
            raise RuntimeError("boom")
    with store.reading() as conn:
        assert conn.execute(select(instances.c.id)).first() is None


def test_unusable_store_raises_store_error(tmp_path: Path):
    """A SQLite path that cannot be opened gives a StoreError naming the store, not a driver traceback."""
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'store.db'}"
    with pytest.raises(StoreError, match="unavailable"):
        SqlStore(url)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///coopflow.db", "sqlite:///{base}/coopflow.db"),
        ("sqlite:///data/run/coopflow.db", "sqlite:///{base}/data/run/coopflow.db"),
        ("sqlite:///../shared.db", "sqlite:///{parent}/shared.db"),
        ("sqlite:////var/lib/coopflow/coopflow.db", "sqlite:////var/lib/coopflow/coopflow.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql://coopflow@db.example/coopflow", "postgresql://coopflow@db.example/coopflow"),
    ],
    ids=["relative", "relative-subdir", "relative-parent", "absolute", "memory", "postgres"],
)
def test_resolve_url_relative_sqlite_paths(monkeypatch, tmp_path: Path, given: str, expected: str):
    """A relative SQLite path is taken relative to the config's folder; other URLs pass through unchanged."""
    monkeypatch.delenv(STORE_ENV, raising=False)
    base = (tmp_path / "policy").resolve()
    assert resolve_url(given, base) == expected.format(base=base, parent=base.parent)


def test_store_url_env_wins_over_config(monkeypatch, tmp_path: Path):
    """COOPFLOW_STORE_URL replaces the config's store URL."""
    env_url = f"sqlite:///{tmp_path / 'from-env.db'}"
    monkeypatch.setenv(STORE_ENV, env_url)
    assert resolve_url("sqlite:///coopflow.db", tmp_path) == env_url
    assert resolve_url("postgresql://coopflow@db.example/coopflow", tmp_path) == env_url


def test_open_runtime_uses_env_store(monkeypatch, shipped_policy: Path, store_url: str):
    """open_runtime on a policy whose config names a relative SQLite file opens COOPFLOW_STORE_URL instead."""
    monkeypatch.setenv(STORE_ENV, store_url)
    runtime = open_runtime(shipped_policy, create=True)
    try:
        assert runtime.store.url == store_url
        assert runtime.store.meta_value("schema_version") == str(SCHEMA_VERSION)
    finally:
        runtime.store.dispose()
    assert not (shipped_policy.parent / "coopflow.db").exists()


def test_many_threads_share_one_sqlite_store(tmp_path: Path):
    """The web console serves from a thread pool of dozens of threads beside the daemon. Each
    thread must get a connection of its own that no other thread closes (SQLAlchemy's default
    pool for a "sqlite://" URL closed them beyond five threads, and the process died SIGSEGV)."""
    import threading

    store = SqlStore(f"sqlite:///{tmp_path / 'threads.db'}")
    insert_instance(store, "i-1", datetime(2027, 1, 4, tzinfo=UTC))
    errors: list[BaseException] = []
    barrier = threading.Barrier(24)

    def read() -> None:
        try:
            barrier.wait()
            for _ in range(40):
                with store.reading() as conn:
                    assert conn.execute(select(instances.c.id)).scalar_one() == "i-1"
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.engine.dispose()
    assert errors == []


def test_store_error_during_apply_is_retried_not_refused(shipped_policy: Path, store: SqlStore, monkeypatch):
    """A StoreError raised while an event is applied (here: the history write, as the store going
    away mid-event would) propagates out of the batch: the event stays pending with no refusal in
    history, and is applied once the store answers again."""
    from engine.execution.executor import Executor
    from engine.policy.loader import load_policy
    from engine.store import history as history_rows
    from engine.store import inbox
    from engine.store.database import history

    policy = load_policy(shipped_policy)
    executor = Executor(store, policy)
    sub = executor.submit_start("information_exchange", "dic.focal_point",
                                {"requester": "dic", "recipient": "police", "subject": "Xin thông tin"})
    real_append, failures = history_rows.append_many, []  # the batch writes its history rows at once

    def store_gone(*args, **kwargs):  # fails once: a refusal written after it would succeed
        if not failures:
            failures.append(args)
            raise StoreError("store is unavailable: connection lost (simulated)")
        return real_append(*args, **kwargs)

    monkeypatch.setattr(history_rows, "append_many", store_gone)
    with pytest.raises(StoreError, match="simulated"):
        executor.apply_batch(10)
    with store.reading() as conn:
        assert inbox.status(conn, sub.inbox_id) == (inbox.PENDING, None)
        assert conn.execute(select(history.c.outcome)).scalars().all() == []
    outcomes = executor.apply_batch(10)
    assert [o.status for o in outcomes] == [inbox.APPLIED]


# Modules outside engine/store/ that still import SQLAlchemy (issue #9, "Storage owns its SQL"):
# none is left; this set may only stay empty.
SQL_OUTSIDE_THE_STORE: set[str] = set()


def sqlalchemy_importers(root: Path) -> set[str]:
    """The modules under engine/ whose code imports SQLAlchemy anywhere (at the top, inside a
    function, or under TYPE_CHECKING), read with `ast`, not by text."""
    found = set()
    for path in (root / "engine").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            if any(name == "sqlalchemy" or name.startswith("sqlalchemy.") for name in names):
                found.add(path.relative_to(root).as_posix())
                break
    return found


def test_sqlalchemy_stays_in_the_store():
    """No module outside engine/store/ imports SQLAlchemy, but those still listed above."""
    root = Path(__file__).resolve().parent.parent
    importing = sqlalchemy_importers(root)
    outside = {name for name in importing if not name.startswith("engine/store/")}
    assert outside <= SQL_OUTSIDE_THE_STORE, f"SQLAlchemy imported outside engine/store/: {sorted(outside - SQL_OUTSIDE_THE_STORE)}"
    assert SQL_OUTSIDE_THE_STORE <= importing, f"no longer importing SQLAlchemy, drop from the list: {sorted(SQL_OUTSIDE_THE_STORE - importing)}"
    assert "engine/store/database.py" in importing  # the walk does see an import


def test_the_import_walk_finds_every_form_of_import(tmp_path):
    """`import sqlalchemy`, `from sqlalchemy.x import y` and one inside a function are each found;
    a name merely containing the word, and a relative import, are not."""
    cases = {"plain.py": "import sqlalchemy as sa\n", "dotted.py": "from sqlalchemy.engine import Connection\n",
             "nested.py": "def f():\n    import sqlalchemy.orm\n", "word.py": "import sqlalchemy_utils\nLOG = 'sqlalchemy'\n",
             "relative.py": "from .sqlalchemy import x\n"}
    (tmp_path / "engine").mkdir()
    for name, source in cases.items():
        (tmp_path / "engine" / name).write_text(source, encoding="utf-8")
    assert sqlalchemy_importers(tmp_path) == {"engine/plain.py", "engine/dotted.py", "engine/nested.py"}
