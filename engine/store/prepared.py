"""Write statements of the hot path, compiled once per dialect and run on the driver's cursor.

SQLAlchemy Core costs some 40–60 µs of Python per `execute` (execution context, result set-up,
events) before the driver sees the statement; on the executor's path that was most of an
event's CPU. A `Prepared` statement is compiled once per dialect by SQLAlchemy itself (so the
SQL, the bind casts and every type's bind processing — JSON, UTC datetimes — are exactly those
of `conn.execute`), then run with `executemany` on the connection's DBAPI cursor, inside the
same transaction and savepoints. Driver errors come out as SQLAlchemy's `DBAPIError` subclasses
(a lost connection is invalidated), as from `conn.execute`, and `before_cursor_execute`
listeners see each statement. Only for writes whose result is not
read (INSERT and UPDATE without RETURNING).

An event's `now` fills several columns of several tables (applied_at, history's at, updated_at,
created_at, the outbox's next_at), so UtcDateTime values are converted once per instant and
dialect (a small memo), and JSON columns are encoded by engine.store.jsontext (the engines'
`json_serializer`: `json.dumps`'s text, its encoder built once). On PostgreSQL, many rows of a
plain INSERT, or of an UPDATE keyed by equalities, go as ONE statement (`_MultiRow`) instead of
psycopg's executemany, which executes each row as a statement of its own.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, ResourceClosedError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from engine.store.tables import UtcDateTime


class Prepared:
    """One write statement; `run(conn, rows)` executes it once for all rows (executemany)."""

    def __init__(self, statement: ClauseElement):
        self.statement = statement
        self._compiled: dict[str, _Plan] = {}

    def _for(self, conn: Connection) -> _Plan:
        dialect = conn.dialect
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            if not isinstance(compiled, SQLCompiler):  # an INSERT or UPDATE compiles to the dialect's SQLCompiler
                raise TypeError(f"not a DML statement: {self.statement!r}")
            fixed = dict(compiled.construct_params(_check=False))  # literal values (`status = 'armed'`); None for the rest
            literal = {name for name, b in compiled.binds.items() if b.value is not None or b.callable is not None}
            positional = compiled.positiontup is not None
            names = tuple(compiled.positiontup) if compiled.positiontup is not None else tuple(fixed)
            processors = []
            for name, bind in compiled.binds.items():
                process = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if process is not None:
                    processors.append((name, _memoized(dialect.name, process) if isinstance(bind.type, UtcDateTime) else process))
            found = self._compiled[dialect.name] = _Plan(compiled.string, names, operator.itemgetter(*names), positional,
                                                         fixed, frozenset(fixed) - literal, processors,
                                                         _multirow(compiled.string, names) if dialect.name == "postgresql" else None)
        return found

    def run(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        plan = self._for(conn)
        sql, names, fixed, processors = plan.sql, plan.names, plan.fixed, plan.processors
        missing = plan.required - rows[0].keys()
        if missing:
            raise ValueError(f"no value for {', '.join(sorted(missing))} in {sql.split()[0]} {sql.split()[2]}")
        processed: list[dict[str, Any]] = []
        for row in rows:
            bound = {**fixed, **row}
            for name, process in processors:
                bound[name] = process(bound[name])
            processed.append(bound)
        driver = conn.connection.driver_connection
        if driver is None:  # the pooled connection was invalidated
            raise ResourceClosedError("the store connection has no driver connection (invalidated)")
        statements: list[tuple[str, Any, bool]]  # (SQL, parameters, executemany?)
        cursor: Any
        multirow = plan.multirow.statements(processed) if plan.multirow is not None and len(processed) > 1 else None
        if multirow is not None:
            from psycopg import RawCursor  # multirow: PostgreSQL only

            statements, cursor = multirow, RawCursor(driver)
        else:
            cursor = driver.cursor()
            values = plan.values if len(names) > 1 else lambda params: (params[names[0]],)
            prepared = [values(p) if plan.positional else dict(zip(names, values(p), strict=True)) for p in processed]
            statements = [(sql, prepared if len(prepared) > 1 else prepared[0], len(prepared) > 1)]
        try:
            for sql, params, many in statements:
                if conn.dispatch.before_cursor_execute:  # listeners (a statement counter) see it too
                    conn.dispatch.before_cursor_execute(conn, cursor, sql, params, None, many)
                if many:
                    cursor.executemany(sql, params)
                else:
                    cursor.execute(sql, params)
        except conn.dialect.loaded_dbapi.Error as exc:
            if conn.dialect.is_disconnect(exc, conn.connection, cursor):
                conn.invalidate(exc)
            raise DBAPIError.instance(sql, processed[:1], exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect) from exc
        finally:
            cursor.close()


class _Plan(NamedTuple):
    """A statement compiled for one dialect."""

    sql: str
    names: tuple[str, ...]  # bind names in the order the driver takes them
    values: Callable[[dict[str, Any]], tuple]  # a row's bind values in that order
    positional: bool
    fixed: dict[str, Any]  # literal values (None for the bound ones)
    required: frozenset[str]
    processors: list[tuple[str, Callable[[Any], Any]]]  # (bind name, the type's bind processor)
    multirow: _MultiRow | None  # PostgreSQL INSERT or UPDATE: many rows in one statement


MAX_PARAMS = 30_000  # bind values in one multi-row statement (PostgreSQL takes at most 65,535)
_CAST = r"(?:::(?:TIMESTAMP WITH(?:OUT)? TIME ZONE|[A-Z][A-Z_]*))?"
_BIND = re.compile(r"%\((\w+)\)s" + _CAST)
_EQUALITIES = re.compile(r"[\w.]+ = %\(\w+\)s" + _CAST + r"(?: AND [\w.]+ = %\(\w+\)s" + _CAST + ")*")


class _MultiRow:
    """A PostgreSQL INSERT or UPDATE of many rows as ONE statement, in chunks: `INSERT ... VALUES
    (...), (...)`, `UPDATE t SET c = _v.c FROM (VALUES (...), (...)) AS _v(...) WHERE t.k = _v.k`.

    psycopg's executemany sends one Bind/Execute per row (pipelined): the server still executes
    each row as a statement of its own, and the client prepares and reads a result for each. An
    UPDATE is only sent this way when its rows' keys (the WHERE's values) are distinct, so that
    each stored row is updated by one of them, as the executemany would. The statement uses
    PostgreSQL's own `$n` placeholders on a psycopg `RawCursor` (psycopg parses a `%s` query
    this long again on every execute), its text built once per number of rows.
    """

    def __init__(self, before: str, casts: tuple[str, ...], after: str, order: tuple[str, ...], keys: tuple[str, ...] = ()):
        self.before, self.casts, self.after, self.order, self.keys = before, casts, after, order, keys
        self.take = operator.itemgetter(*order)
        self.chunk = max(1, MAX_PARAMS // len(order))
        self._sql: dict[int, str] = {}

    def sql(self, rows: int) -> str:
        found = self._sql.get(rows)
        if found is None:
            width = len(self.casts)
            groups = ("(" + ", ".join(f"${i * width + j + 1}{cast}" for j, cast in enumerate(self.casts)) + ")" for i in range(rows))
            if len(self._sql) >= 64:
                self._sql.clear()
            found = self._sql[rows] = f"{self.before}{', '.join(groups)}{self.after}"
        return found

    def statements(self, rows: list[dict[str, Any]]) -> list[tuple[str, Any, bool]] | None:
        """(SQL, parameters, False) per chunk; None when the rows' keys repeat (use executemany)."""
        if self.keys and len({tuple(row[k] for k in self.keys) for row in rows}) < len(rows):
            return None
        out = []
        for start in range(0, len(rows), self.chunk):
            part = rows[start:start + self.chunk]
            flat: list[Any] = []
            for row in part:
                flat.extend(self.take(row) if len(self.order) > 1 else (row[self.order[0]],))
            out.append((self.sql(len(part)), flat, False))
        return out


def _multirow(sql: str, names: tuple[str, ...]) -> _MultiRow | None:
    """The multi-row form of a plain `INSERT ... VALUES (%(a)s, ...)` or of an `UPDATE ... SET ...
    WHERE k = %(k)s [AND ...]` (None for any other statement)."""
    if sql.startswith("INSERT "):
        head, found, group = sql.partition(" VALUES ")
        group = group.split(" RETURNING ")[0]  # an implicit RETURNING of the serial key: never read here
        if not found or "%" in head or not (group.startswith("(") and group.endswith(")")) or " ON CONFLICT " in group:
            return None
        binds = _binds(group)
        order = tuple(n for n, _ in binds)
        if set(order) != set(names) or len(order) != len(names) or group.count("%") != len(order):
            return None
        return _MultiRow(head + " VALUES ", tuple(c for _, c in binds), "", order)
    setting, found, where = sql.partition(" WHERE ")
    if not sql.startswith("UPDATE ") or not found or " FROM " in setting or not _EQUALITIES.fullmatch(where):
        return None
    binds = _binds(sql)
    casts = dict(binds)
    order = tuple(casts)
    if set(order) != set(names) or sql.count("%") != len(binds):
        return None
    alias = lambda text: _BIND.sub(lambda m: f'_v."{m.group(1)}"', text)  # noqa: E731
    columns = ", ".join(f'"{n}"' for n in order)
    return _MultiRow(f"{alias(setting)} FROM (VALUES ", tuple(casts.values()), f") AS _v({columns}) WHERE {alias(where)}",
                     order, tuple(_BIND.findall(where)))


def _binds(sql: str) -> list[tuple[str, str]]:
    """(name, its cast: `::VARCHAR` or '') of each `%(name)s` in the SQL, in order."""
    return [(m.group(1), m.group(0)[m.end(1) + 2 - m.start(0):]) for m in _BIND.finditer(sql)]


MEMO_SIZE = 4096
_MEMOS: dict[str, dict[Any, Any]] = {}  # dialect -> instant -> its bind value, shared by every UtcDateTime column


def _memoized(dialect: str, process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A UtcDateTime bind processor that converts each instant once per dialect: an event's `now`
    fills several columns of several tables. Equal aware datetimes are the same instant, so they
    give the same bind value (UtcDateTime binds the instant in UTC, whatever its time zone)."""
    memo = _MEMOS.setdefault(dialect, {})

    def processed(value: Any) -> Any:
        try:
            return memo[value]
        except KeyError:
            pass
        out = process(value)  # a naive datetime raises here, and is never kept
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        memo[value] = out
        return out

    return processed
