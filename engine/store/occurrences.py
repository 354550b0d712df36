"""Schedule occurrence rows: each (schedule, nominal instant) claimed once, under a unique key.

When an occurrence is due, and who hosts it, is decided in engine/scheduling/schedules.py.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine import clock
from engine.store.database import SqlStore, insert_or_ignore, meta, occurrences


def since(store: SqlStore, schedule_id: str) -> datetime:
    """Occurrences after this instant are due: when the store first saw the schedule."""
    key = f"schedule_since:{schedule_id}"
    with store.reading() as conn:  # the common case, without taking the write lock
        value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
    if value is not None:
        return datetime.fromisoformat(value)
    with store.transaction() as conn:
        value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
        if value is None:
            # Two daemons may get here at once (PostgreSQL does not serialise this transaction):
            # the first insert wins and both read it back.
            insert_or_ignore(conn, meta, ["key"], key=key, value=clock.now().isoformat())
            value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar_one()
    return datetime.fromisoformat(value)


def last_fired(conn: Connection, schedule_id: str):
    """The schedule's latest occurrence row (nominal_at, host, instance, ...), or None."""
    return conn.execute(
        select(occurrences).where(occurrences.c.schedule == schedule_id).order_by(occurrences.c.nominal_at.desc()).limit(1)
    ).mappings().first()


def claim(conn: Connection, schedule_id: str, nominal: datetime, fired_at: datetime, host: str | None) -> bool:
    """Record the occurrence; False when it was recorded before (by this or another daemon)."""
    return insert_or_ignore(conn, occurrences, ["schedule", "nominal_at"], schedule=schedule_id, nominal_at=nominal,
                            fired_at=fired_at, host=host, instance=None).first() is not None


def set_instance(conn: Connection, schedule_id: str, nominal: datetime, instance: str) -> None:
    """Name the instance the occurrence started."""
    conn.execute(occurrences.update().where(occurrences.c.schedule == schedule_id, occurrences.c.nominal_at == nominal)
                 .values(instance=instance))
