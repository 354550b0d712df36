"""The durable store: connections, transactions, opening (and migrating) a store, dialect differences.

One module serves SQLite (the embedded default, WAL) and PostgreSQL. The tables are in
engine/store/tables.py (re-exported here), the migrations in engine/store/migrations/. Write transactions on SQLite take the write lock at BEGIN
(`BEGIN IMMEDIATE`) so that two processes never interleave an instance's read and write.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from loguru import logger
from sqlalchemy import Table, create_engine, event, func, inspect, select, update
from sqlalchemy.engine import Connection, Engine  # other packages name a connection engine.store.Tx
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import QueuePool

from engine import clock, settings
from engine.exceptions import StoreError, StoreGone, StoreRefused  # noqa: F401 (re-exported: the store's errors)
from engine.store import jsontext, migrations
from engine.store.statuses import ClockMark
from engine.store.tables import (  # noqa: F401 (re-exported: the tables are imported from here)
    Id,
    UtcDateTime,
    consents,
    deliveries,
    history,
    inbox,
    instances,
    leases,
    login_attempts,
    meta,
    metadata,
    occurrences,
    outbox,
    reminders,
    sessions,
    timers,
    timers_by_instance,
    tokens,
    users,
    workflow_versions,
)

if TYPE_CHECKING:
    from engine.store.anchors import AuditContext

STORE_ENV = settings.STORE_URL
DRILL_ENV = settings.DRILL             # "allow-real-store": a drill may open a store with real history
PRIVATE_MODE = settings.PRIVATE_MODE   # the store, its -wal and -shm files (personal data)


# Migrations: engine/store/migrations (Alembic). SCHEMA_VERSION is the newest revision's number.
SCHEMA_VERSION = migrations.SCHEMA_VERSION


def resolve_url(url: str, base_dir: Path) -> str:
    """COOPFLOW_STORE_URL > config; a relative SQLite path is relative to the config's folder."""
    url = settings.store_url() or url
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != "sqlite:///:memory:":
        path = Path(url[len(prefix):])
        if not path.is_absolute():
            url = prefix + str((base_dir / path).resolve())
    return url


class SqlStore:
    """A connection pool on one SQLite file or PostgreSQL database, schema migrated on open."""

    audit: AuditContext  # set by engine.store.anchors.attach; absent before (read as getattr(store, "audit", None))

    def __init__(self, url: str, durable: bool = True, create: bool = True):
        """`durable=False` (the simulator's throwaway store) skips fsync on SQLite.

        `create=False` (every CLI command but `init`) refuses a store that does not exist yet
        instead of creating it: a typo in `store:` must not start a second, empty store.
        SQLite files are created 0600 and never in a missing folder; a 0-byte file is refused.
        """
        self.url = url
        self.path = sqlite_path(url)
        self.identity: tuple[int, int] | None = None
        if self.path is not None:
            self.identity = _prepare_sqlite_file(self.path, create)
        try:
            self.engine: Engine = _make_engine(url, durable)
        except Exception as exc:  # bad URL, missing driver
            raise StoreError(f"cannot use store {_safe(url)}: {exc}") from None
        self.dialect = self.engine.dialect.name
        try:
            self.migrate(create)
            self._guard_drill()
            if self.path is not None:
                tighten(self.path, _sqlite_companions(self.path))
        except BaseException:  # refused or unreachable: do not leak the pool's connections
            self.engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"SqlStore({_safe(self.url)})"

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on any exception.

        A store fault (disk full, read-only file, lost connection) comes out as a StoreError."""
        with self.explained_errors(), self.engine.connect() as conn:
            with conn.begin():
                yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read-only snapshot (on SQLite, a deferred transaction that does not block writers)."""
        with self.explained_errors(), self.engine.connect().execution_options(coopflow_read=True) as conn:
            with conn.begin():
                yield conn

    def migrate(self, create: bool = True) -> None:
        """Create or upgrade the schema (Alembic, engine/store/migrations) in one transaction;
        refuse a store written by a newer coopflow, tables coopflow did not create, and (with
        `create=False`) a database that holds no coopflow store yet."""
        with self.transaction() as conn:
            names = inspect(conn).get_table_names()
            current = 0
            if meta.name in names:
                row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
                current = int(row[0]) if row else 0
            elif names and "instances" in names:
                raise StoreError(f"{_safe(self.url)} holds tables that coopflow did not create")
            revision = migrations.current_revision(conn)
            if current > SCHEMA_VERSION or (revision is not None and not migrations.known(revision)):
                raise StoreRefused(
                    f"store {_safe(self.url)} was written by a newer coopflow (schema {current}, revision "
                    f"{revision}; this coopflow knows up to {SCHEMA_VERSION}): upgrade coopflow"
                )
            if current == SCHEMA_VERSION and revision == migrations.HEAD:
                return  # up to date: Alembic is not even loaded
            if current == 0 and not create:
                raise StoreError(f"store {_safe(self.url)} is unavailable: it holds no coopflow store yet (create "
                                 "it with `coopflow init` or the first `coopflow run`, or correct `store:` / COOPFLOW_STORE_URL)")
            if current == 0 and revision is None:  # a new store: today's tables at once, stamped at HEAD
                metadata.create_all(conn, checkfirst=True)
                migrations.stamp_new(conn)
            else:
                migrations.upgrade(conn)
            if current == 0:
                conn.execute(meta.insert().values(key="created_at", value=datetime.now(UTC).isoformat()))
                logger.info("store created at schema {}", SCHEMA_VERSION)
            elif current == SCHEMA_VERSION:  # made by the last release before Alembic: nothing to change
                logger.info("store at schema {} stamped with revision {} (it was made before Alembic)", current, migrations.HEAD)
            else:
                logger.info("store schema upgraded from {} to {} (revision {})", current, SCHEMA_VERSION, migrations.HEAD)

    def meta_value(self, key: str) -> str | None:
        with self.reading() as conn:
            return read_meta(conn, key)

    @contextmanager
    def explained_errors(self) -> Iterator[None]:
        """Turn driver errors into a clear StoreError."""
        try:
            yield
        except (OperationalError, DBAPIError) as exc:
            raise StoreError(f"store {_safe(self.url)} is unavailable: {exc.orig or exc}{self._file_hint()}") from None

    def _file_hint(self) -> str:
        """Why a SQLite file may not be written, in the operator's words ('' when nothing is known)."""
        if self.path is None:
            return ""
        try:
            if os.statvfs(self.path.parent).f_flag & os.ST_RDONLY:
                return " (its file system is read-only)"
            if not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK):
                return " (the file or its folder is read-only for this user)"
        except OSError:
            pass
        return ""

    def check_file(self) -> None:
        """Raise StoreGone when the SQLite file opened at start was deleted or replaced (its open
        connections would go on writing into a deleted file, new ones into a new empty store)."""
        if self.path is None or self.identity is None:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise StoreGone(f"store sqlite:///{self.path} is unavailable: the file was deleted while coopflow ran "
                            "(restore it from a backup; coopflow never recreates it)") from None
        if (st.st_dev, st.st_ino) != self.identity:
            raise StoreGone(f"store sqlite:///{self.path} is unavailable: the file was replaced while coopflow ran (restart)")

    def mark_real_clock(self) -> None:
        """Record that a daemon on the real clock runs this store: drills will refuse it."""
        if clock.drill_start() is not None:
            return
        with self.transaction() as conn:
            insert_or_ignore(conn, meta, ["key"], key="clock", value=ClockMark.REAL)

    def _guard_drill(self) -> None:
        """A drill (COOPFLOW_CLOCK_START) refuses a store whose history a real clock wrote, unless
        COOPFLOW_DRILL=allow-real-store; a drill on an empty store marks it as a drill store."""
        if clock.drill_start() is None:
            return
        with self.transaction() as conn:
            mark = conn.execute(select(meta.c.value).where(meta.c.key == "clock")).scalar()
            if mark == ClockMark.DRILL:
                return
            real = mark == ClockMark.REAL or conn.execute(select(func.count()).select_from(history)).scalar_one() > 0
            if not real:
                insert_or_ignore(conn, meta, ["key"], key="clock", value=ClockMark.DRILL)
                return
        if settings.drill_allows_real_store():
            logger.warning("drill clock on store {} that holds real history ({}=allow-real-store)", _safe(self.url), DRILL_ENV)
            return
        raise StoreRefused(f"store {_safe(self.url)} is unavailable to a drill: it holds history written by the real "
                           f"clock; run the drill ({clock.CLOCK_ENV}) on a copy, or set {DRILL_ENV}=allow-real-store")

    def dispose(self) -> None:
        self.engine.dispose()


def wait_for(store_factory: Callable[[], SqlStore], stop: threading.Event, log_every: float = 30) -> SqlStore | None:
    """Open a store, retrying with backoff (1 s doubling to 30 s) until it opens or `stop` is set."""
    delay, last_log = 1.0, float("-inf")
    while not stop.is_set():
        try:
            return store_factory()
        except StoreRefused:
            raise
        except StoreError as exc:
            if time.monotonic() - last_log > log_every:
                logger.warning("{}; retrying", exc)
                last_log = time.monotonic()
        stop.wait(delay)
        delay = min(delay * 2, 30)
    return None


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL and in-memory SQLite)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url in ("sqlite:///:memory:", prefix):
        return None
    return Path(url[len(prefix):].split("?", 1)[0])


def _sqlite_companions(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def tighten(path: Path, extra: Sequence[Path] = (), mode: int = PRIVATE_MODE) -> None:
    """Make files that hold personal data no more open than `mode`: a looser existing file is
    chmod-ed (logged), or warned about when this process may not change it."""
    for file in [path, *extra]:
        try:
            current = stat.S_IMODE(os.stat(file).st_mode)
        except FileNotFoundError:
            continue
        if current & ~mode:
            try:
                os.chmod(file, mode)
                logger.warning("{} was mode {:04o}; tightened to {:04o} (it holds personal data)", file, current, mode)
            except OSError as exc:
                logger.warning("{} is mode {:04o}, readable by others, and cannot be tightened: {}", file, current, exc)


def _prepare_sqlite_file(path: Path, create: bool) -> tuple[int, int]:
    """Check (or, when `create`, make) the SQLite file before SQLite sees it; its (dev, inode)."""
    folder = path.parent
    if not folder.is_dir():
        raise StoreRefused(f"store sqlite:///{path} is unavailable: folder {folder} does not exist (coopflow "
                           "does not create folders; correct `store:` / COOPFLOW_STORE_URL, or create the folder)")
    if not path.exists():
        if not create:
            raise StoreError(f"store sqlite:///{path} is unavailable: the file does not exist (create the store "
                             "with `coopflow init` or the first `coopflow run`, or correct `store:` / COOPFLOW_STORE_URL)")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_MODE))
        except FileExistsError:  # another process created it a moment ago
            pass
        except OSError as exc:
            raise StoreError(f"store sqlite:///{path} is unavailable: cannot create the file: {exc.strerror}") from None
        st = os.stat(path)
        return st.st_dev, st.st_ino
    st = os.stat(path)
    if st.st_size == 0 and not _sqlite_companions(path)[0].exists():
        raise StoreRefused(f"store sqlite:///{path} is unavailable: the file is empty (0 bytes), not a coopflow "
                           "store (restore it from a backup, or delete it and run `coopflow init`)")
    return st.st_dev, st.st_ino


def pg_connect_args() -> dict:
    """libpq settings bounding every wait: connect, statements, locks, idle transactions, and a
    silent peer (keepalives probe an idle socket; tcp_user_timeout drops one whose data goes unacknowledged)."""
    tcp = settings.seconds(settings.PG_TCP_TIMEOUT)
    ms = {name: int(settings.seconds(name) * 1000)
          for name in (settings.PG_STATEMENT_TIMEOUT, settings.PG_LOCK_TIMEOUT, settings.PG_IDLE_TIMEOUT)}
    return {
        "connect_timeout": max(1, round(settings.seconds(settings.PG_CONNECT_TIMEOUT))),
        "keepalives": 1,
        "keepalives_idle": max(1, round(tcp / 2)),
        "keepalives_interval": max(1, round(tcp / 6)),
        "keepalives_count": 3,
        "tcp_user_timeout": int(tcp * 1000),
        "_session": (f"SET statement_timeout = {ms[settings.PG_STATEMENT_TIMEOUT]}; "
                     f"SET lock_timeout = {ms[settings.PG_LOCK_TIMEOUT]}; "
                     f"SET idle_in_transaction_session_timeout = {ms[settings.PG_IDLE_TIMEOUT]}"),
    }


def _make_engine(url: str, durable: bool = True) -> Engine:
    path = sqlite_path(url)
    if url.startswith("sqlite"):
        if path is not None:
            # mode=rw: SQLite never creates the file (_prepare_sqlite_file did, 0600, when meant to);
            # a file deleted under a running process is not silently recreated by a new connection.
            target = f"file:{quote(str(path))}?mode=rw"
            # QueuePool, stated: the "sqlite://" URL would otherwise get SingletonThreadPool, which
            # closes the connections of other threads beyond five while they are in use (the web
            # console's thread pool made the serving process die with SIGSEGV).
            engine = create_engine("sqlite://", poolclass=QueuePool, pool_size=5, max_overflow=10, json_serializer=jsontext.plain,
                                   creator=lambda: sqlite3.connect(target, uri=True, timeout=60, check_same_thread=False))
        else:
            engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, json_serializer=jsontext.plain)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=OFF")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            read = conn.get_execution_options().get("coopflow_read")
            conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgres"):
        url = url.replace("postgresql://", "postgresql+psycopg://", 1).replace("postgres://", "postgresql+psycopg://", 1)
        args = pg_connect_args()
        session = args.pop("_session")
        # No pre-ping per checkout (a round trip per transaction): the keepalives and timeouts above
        # bound a dead peer, and a connection that fails is invalidated by SQLAlchemy (a disconnect
        # error discards it and the pool's older connections), the daemon retrying the transaction.
        engine = create_engine(url, pool_size=5, max_overflow=5, connect_args=args, json_serializer=jsontext.plain)

        @event.listens_for(engine, "connect")
        def _on_pg_connect(dbapi_conn, _record):
            autocommit = dbapi_conn.autocommit
            dbapi_conn.autocommit = True
            with dbapi_conn.cursor() as cursor:
                for statement in session.split("; "):
                    cursor.execute(statement)
            dbapi_conn.autocommit = autocommit

        return engine
    return create_engine(url)


def _safe(url: str) -> str:
    """A URL with any password hidden, fit for logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


safe_url = _safe


def read_meta(conn: Connection, key: str) -> str | None:
    """One coopflow_meta value (None when the key is not there)."""
    return conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()


def write_meta(conn: Connection, key: str, value: str) -> None:
    """Set one coopflow_meta value, inserting the key when it is new."""
    if insert_or_ignore(conn, meta, ["key"], key=key, value=value).first() is None:
        conn.execute(update(meta).where(meta.c.key == key).values(value=value))


def insert_or_ignore(conn: Connection, table: Table, index: list[str], returning: str | None = None, **values):
    """INSERT ... ON CONFLICT (index) DO NOTHING in the connection's dialect (SQLite or PostgreSQL).

    The statement RETURNs one column (`returning`, else the first index column): `.first()` on
    the result is None when the row already existed (rowcount is not reliable for this on psycopg).
    """
    statement = _insert_or_ignore(conn.dialect.name, table, tuple(index), returning or index[0])
    return conn.execute(statement, values)


@functools.lru_cache(maxsize=64)
def _insert_or_ignore(dialect: str, table: Table, index: tuple[str, ...], returning: str):
    """Built once per table: the values come as parameters, so SQLAlchemy reuses the compiled form."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=list(index)).returning(table.c[returning])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=list(index)).returning(table.c[returning])
