"""Statements of the hot path, compiled once per dialect and run on the driver's cursor.

SQLAlchemy Core costs some 40–60 µs of Python per `execute` (execution context, result set-up,
events) before the driver sees the statement; on the executor's path that was most of an
event's CPU. A `Prepared` statement is compiled once per dialect by SQLAlchemy itself (so the
SQL, the bind casts and every type's bind processing — JSON, UTC datetimes — are exactly those
of `conn.execute`), then run with `executemany` on the connection's DBAPI cursor, inside the
same transaction and savepoints. Driver errors come out as SQLAlchemy's `DBAPIError` subclasses
(a lost connection is invalidated), as from `conn.execute`, and `before_cursor_execute`
listeners see each statement. `Prepared` is for writes whose result is not read (INSERT and
UPDATE without RETURNING); `Query` for reads (a SELECT, an INSERT ... RETURNING): its rows come
back as dicts through each column's result processor, as `conn.execute(...).mappings()` gives them.
On PostgreSQL both send PostgreSQL's own `$n` placeholders on a psycopg `RawCursor`: psycopg
converts a `%(name)s` query and its parameters again on every execute.

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
        found = self._compiled.get(conn.dialect.name)
        if found is None:
            found = self._compiled[conn.dialect.name] = _plan(self.statement, conn.dialect, multirow=True)[0]
        return found

    def run(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        plan = self._for(conn)
        processed = plan.bind(rows)
        driver = _driver(conn)
        statements: list[tuple[str, Any, bool]]  # (SQL, parameters, executemany?)
        cursor: Any
        multirow = plan.multirow.statements(processed) if plan.multirow is not None and len(processed) > 1 else None
        if multirow is not None:
            from psycopg import RawCursor  # multirow: PostgreSQL only

            statements, cursor = multirow, RawCursor(driver)
        else:
            cursor = plan.cursor(driver)
            prepared = [plan.driver_params(p) for p in processed]
            statements = [(plan.sql, prepared if len(prepared) > 1 else prepared[0], len(prepared) > 1)]
        try:
            _execute(conn, cursor, statements, processed)
        finally:
            cursor.close()


class Query:
    """A statement whose rows are read (a SELECT, an INSERT ... RETURNING), compiled once per
    dialect and run on the driver's cursor like `Prepared`: `rows(conn, params)` returns its rows
    as dicts keyed by column name, each value through its type's result processor (JSON, UTC
    datetimes), as `conn.execute(...).mappings()` gives them. `statement` may be a function of the
    dialect's name, for constructs that differ per dialect (INSERT ... ON CONFLICT)."""

    def __init__(self, statement: ClauseElement | Callable[[str], ClauseElement]):
        self.statement = statement
        self._compiled: dict[str, tuple[_Plan, tuple[str, ...], list[tuple[int, Callable[[Any], Any]]]]] = {}

    def _for(self, conn: Connection) -> tuple[_Plan, tuple[str, ...], list[tuple[int, Callable[[Any], Any]]]]:
        dialect = conn.dialect
        found = self._compiled.get(dialect.name)
        if found is None:
            statement = self.statement if isinstance(self.statement, ClauseElement) else self.statement(dialect.name)
            plan, compiled = _plan(statement, dialect, multirow=False)
            columns = tuple(c.keyname for c in compiled._result_columns)
            results: list[tuple[int, Callable[[Any], Any]]] = []
            for i, column in enumerate(compiled._result_columns):
                process = column.type._cached_result_processor(dialect, None)
                if process is not None:
                    results.append((i, process))
            found = self._compiled[dialect.name] = (plan, columns, results)
        return found

    def rows(self, conn: Connection, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        plan, columns, results = self._for(conn)
        processed = plan.bind([params or {}])
        cursor = plan.cursor(_driver(conn))
        try:
            fetched = _execute(conn, cursor, [(plan.sql, plan.driver_params(processed[0]), False)], processed, fetch=True)
        finally:
            cursor.close()
        out = []
        for raw in fetched:
            if results:
                raw = list(raw)
                for i, process in results:
                    raw[i] = process(raw[i])
            out.append(dict(zip(columns, raw, strict=True)))
        return out


def _driver(conn: Connection) -> Any:
    """The connection's driver connection, inside its transaction: begun first if it was not (as
    `conn.execute` begins one), so that a statement on the driver's cursor is never autocommitted."""
    if not conn.in_transaction():
        conn.begin()
    driver = conn.connection.driver_connection
    if driver is None:  # the pooled connection was invalidated
        raise ResourceClosedError("the store connection has no driver connection (invalidated)")
    return driver


def _execute(conn: Connection, cursor: Any, statements: list[tuple[str, Any, bool]], processed: list[dict[str, Any]],
             fetch: bool = False) -> list[Any]:
    """Run (SQL, parameters, executemany?) statements on the driver's cursor (with `fetch`, the
    last one's rows): listeners see each one, driver errors come out as SQLAlchemy's."""
    sql = ""
    try:
        for sql, params, many in statements:
            if (conn._has_events or conn.engine._has_events) and conn.dispatch.before_cursor_execute:  # listeners (a statement counter) see it too
                conn.dispatch.before_cursor_execute(conn, cursor, sql, params, None, many)
            if many:
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params)
        return cursor.fetchall() if fetch else []
    except conn.dialect.loaded_dbapi.Error as exc:
        if conn.dialect.is_disconnect(exc, conn.connection, cursor):
            conn.invalidate(exc)
        raise DBAPIError.instance(sql, processed[:1], exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect) from exc


def _plan(statement: ClauseElement, dialect: Any, multirow: bool) -> tuple[_Plan, SQLCompiler]:
    """Compile a statement for a dialect: its SQL, bind names, literal values and bind processors."""
    compiled = statement.compile(dialect=dialect)
    if not isinstance(compiled, SQLCompiler):  # a SELECT, INSERT or UPDATE compiles to the dialect's SQLCompiler
        raise TypeError(f"not a SQL statement: {statement!r}")
    fixed = dict(compiled.construct_params(_check=False))  # literal values (`status = 'armed'`); None for the rest
    literal = {name for name, b in compiled.binds.items() if b.value is not None or b.callable is not None}
    positional = compiled.positiontup is not None
    names = tuple(compiled.positiontup) if compiled.positiontup is not None else tuple(fixed)
    sql, raw = compiled.string, False
    if dialect.name == "postgresql":
        numbered = _numbered(sql)
        if numbered is not None:  # psycopg converts a `%(name)s` query and its parameters on every execute
            sql, names, positional, raw = numbered[0], numbered[1], True, True
    processors = []
    for name, bind in compiled.binds.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((name, _memoized(dialect.name, process) if isinstance(bind.type, UtcDateTime) else process))
    plan = _Plan(sql, names, operator.itemgetter(*names) if names else (lambda params: ()), positional,
                 fixed, frozenset(fixed) - literal, processors,
                 _multirow(compiled.string, names) if multirow and dialect.name == "postgresql" else None, raw)
    return plan, compiled


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
    raw: bool  # PostgreSQL's own `$n` placeholders, for a psycopg RawCursor

    def cursor(self, driver: Any) -> Any:
        if not self.raw:
            return driver.cursor()
        from psycopg import RawCursor  # PostgreSQL only

        return RawCursor(driver)

    def bind(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each row with the literal values added and every value through its bind processor."""
        missing = self.required - rows[0].keys()
        if missing:
            raise ValueError(f"no value for {', '.join(sorted(missing))} in {self.sql.split()[0]} {self.sql.split()[2]}")
        processed: list[dict[str, Any]] = []
        for row in rows:
            bound = {**self.fixed, **row}
            for name, process in self.processors:
                bound[name] = process(bound[name])
            processed.append(bound)
        return processed

    def driver_params(self, bound: dict[str, Any]) -> Any:
        """One row's parameters as the driver takes them: a tuple (qmark, `$n`) or a dict (pyformat)."""
        values = self.values(bound) if len(self.names) > 1 else tuple(bound[n] for n in self.names)
        return values if self.positional else dict(zip(self.names, values, strict=True))


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


def _numbered(sql: str) -> tuple[str, tuple[str, ...]] | None:
    """A `%(name)s` statement with PostgreSQL's `$n` placeholders instead (a name bound twice is
    one `$n`), and the names in `$n` order; None when the SQL holds a literal `%`."""
    order: dict[str, int] = {}
    text = re.sub(r"%\((\w+)\)s", lambda m: f"${order.setdefault(m.group(1), len(order) + 1)}", sql)
    return None if "%" in text else (text, tuple(order))


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
