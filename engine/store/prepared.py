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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, ResourceClosedError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


class Prepared:
    """One write statement; `run(conn, rows)` executes it once for all rows (executemany)."""

    def __init__(self, statement: ClauseElement):
        self.statement = statement
        self._compiled: dict[str, tuple] = {}  # dialect -> (SQL, bind names in order, positional?, fixed values, required, processors)

    def _for(self, conn: Connection):
        dialect = conn.dialect
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            if not isinstance(compiled, SQLCompiler):  # an INSERT or UPDATE compiles to the dialect's SQLCompiler
                raise TypeError(f"not a DML statement: {self.statement!r}")
            fixed = compiled.construct_params(_check=False)  # literal values (`status = 'armed'`); None for the rest
            literal = {name for name, b in compiled.binds.items() if b.value is not None or b.callable is not None}
            names = tuple(compiled.positiontup) if compiled.positiontup is not None else tuple(fixed)
            processors = [(name, bind.type.dialect_impl(dialect).bind_processor(dialect)) for name, bind in compiled.binds.items()]
            found = self._compiled[dialect.name] = (compiled.string, names, compiled.positiontup is not None, fixed,
                                                    frozenset(fixed) - literal, [(n, p) for n, p in processors if p is not None])
        return found

    def run(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        sql, names, positional, fixed, required, processors = self._for(conn)
        missing = required - rows[0].keys()
        if missing:
            raise ValueError(f"no value for {', '.join(sorted(missing))} in {sql.split()[0]} {sql.split()[2]}")
        prepared = []
        for row in rows:
            params = {**fixed, **row}
            for name, process in processors:
                params[name] = process(params[name])
            prepared.append(tuple([params[n] for n in names]) if positional else {n: params[n] for n in names})
        driver = conn.connection.driver_connection
        if driver is None:  # the pooled connection was invalidated
            raise ResourceClosedError("the store connection has no driver connection (invalidated)")
        cursor = driver.cursor()
        many = len(prepared) > 1
        if conn.dispatch.before_cursor_execute:  # listeners (a statement counter) see it too
            conn.dispatch.before_cursor_execute(conn, cursor, sql, prepared if many else prepared[0], None, many)
        try:
            if many:
                cursor.executemany(sql, prepared)
            else:
                cursor.execute(sql, prepared[0])
        except conn.dialect.loaded_dbapi.Error as exc:
            if conn.dialect.is_disconnect(exc, conn.connection, cursor):
                conn.invalidate(exc)
            raise DBAPIError.instance(sql, prepared[:1], exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect) from exc
        finally:
            cursor.close()
