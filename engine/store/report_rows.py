"""The review report's reads of the history (engine/views/report/figures.py aggregates them as they stream).

One `SELECT` ordered by seq, fetched in batches (`yield_per`: a server-side cursor on PostgreSQL).
The database extracts per row, in one JSON pass, the few values the report reads from `data`
(`json_extract(data, p1, p2…)` on SQLite, `json_build_array(data #> …)` on PostgreSQL), and skips
the rows of instances that reached a final state before the period. SQLite's times come back as
their stored text (the caller parses the few it needs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import String, false, func, literal_column, select, tuple_, type_coerce
from sqlalchemy.engine import Connection

from engine.store.database import history, instances, workflow_versions
from engine.store.statuses import EventKind, Outcome

BATCH = 2000  # rows per round trip
CHUNK = 500   # ids per IN list
EXTRA = ("timer", "transition", "rule", "due_at", "audit.version", "audit.timer.due_at", "audit.seq")


def stored_versions(conn: Connection) -> dict[str, dict]:
    return {v: s for v, s in conn.execute(select(workflow_versions.c.version, workflow_versions.c.spec))}


def _extra(dialect: str, names: tuple[str, ...]):
    paths = [p.split(".") for p in EXTRA] + [["audit", "fields", n] for n in names]
    if dialect == "sqlite":
        return func.json_extract(history.c.data, *("$." + ".".join(p) for p in paths))
    # The paths are these constants and policy ids (^[a-z][a-z0-9_]*$): safe as literal text[] values.
    return func.json_build_array(*(history.c.data.op("#>")(literal_column("'{" + ",".join(p) + "}'::text[]")) for p in paths))


def applied_rows(conn: Connection, start: datetime, end: datetime, finals: Iterable[tuple[str, str]],
                 names: tuple[str, ...]) -> Iterator[tuple]:
    """(seq, instance, at, kind, workflow, trigger, from_state, to_state, actor, extra) of every applied row before `end`,
    by seq, but those of instances that reached one of the `finals` (workflow, state) before `start`. `extra` is the
    JSON array of EXTRA's values, then the audit record's fields `names`."""
    finals = sorted(finals)
    over = (select(history.c.instance).where(history.c.outcome == Outcome.APPLIED, history.c.kind == EventKind.FIRE, history.c.at < start,
                                             tuple_(history.c.workflow, history.c.to_state).in_(finals))
            if finals else select(history.c.instance).where(false()))
    dialect = conn.dialect.name
    at = type_coerce(history.c.at, String) if dialect == "sqlite" else history.c.at
    query = (select(history.c.seq, history.c.instance, at, history.c.kind, history.c.workflow, history.c.trigger,
                    history.c.from_state, history.c.to_state, history.c.actor, type_coerce(_extra(dialect, names), String))
             .where(history.c.outcome == Outcome.APPLIED, history.c.at < end, history.c.instance.not_in(over.scalar_subquery()))
             .order_by(history.c.seq))
    yield from conn.execution_options(yield_per=BATCH).execute(query)


def instance_fields(conn: Connection, ids: list[str]) -> Iterator[tuple[str, str, int, dict]]:
    """(id, workflow, seq, fields) of these instances as stored now."""
    for i in range(0, len(ids), CHUNK):
        yield from conn.execute(select(instances.c.id, instances.c.workflow, instances.c.seq, instances.c.fields)
                                .where(instances.c.id.in_(ids[i:i + CHUNK])))


def audit_fields(conn: Connection, seqs: list[int]) -> Iterator[tuple[int, Any]]:
    """(seq, fields after that move) from the rows' audit records."""
    fields = history.c.data[("audit", "fields")]
    for i in range(0, len(seqs), CHUNK):
        yield from conn.execute(select(history.c.seq, fields).where(history.c.seq.in_(seqs[i:i + CHUNK])))


def head_before(conn: Connection, end: datetime) -> Any:
    """(seq, hash, at) of the last history row before `end`: the chain's head then, or None."""
    return conn.execute(select(history.c.seq, history.c.hash, history.c.at).where(history.c.at < end)
                        .order_by(history.c.seq.desc()).limit(1)).first()
