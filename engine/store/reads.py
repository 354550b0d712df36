"""The read model: the queries behind what people read (one instance, a filtered list, a history).

Every function takes a connection from `SqlStore.reading()` and returns plain dicts with
timezone-aware datetimes; rendering (tables, JSON, pages) is the caller's business.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine.store.database import consents, history, instances, timers


def instance(conn: Connection, instance_id: str) -> dict[str, Any] | None:
    """One instance with its armed deadline (`deadline`: due_at, fires) and its consents."""
    row = conn.execute(select(instances).where(instances.c.id == instance_id)).mappings().first()
    if row is None:
        return None
    armed = conn.execute(select(timers).where(timers.c.instance == instance_id, timers.c.status == "armed")).mappings().first()
    agreed = conn.execute(select(consents).where(consents.c.instance == instance_id).order_by(consents.c.at)).mappings()
    return {
        **row,
        "deadline": {"due_at": armed["due_at"], "fires": armed["trigger"]} if armed else None,
        "consents": [{"trigger": c["trigger"], "party": c["party"], "actor": c["actor"], "at": c["at"],
                      "expires_at": c["expires_at"]} for c in agreed],
    }


def instance_list(conn: Connection, workflow: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
    """Instances (filtered by workflow and state) with their armed deadline, newest first."""
    query = (select(instances, timers.c.due_at, timers.c.trigger.label("fires"))
             .outerjoin(timers, (timers.c.instance == instances.c.id) & (timers.c.status == "armed"))
             .order_by(instances.c.created_at.desc(), instances.c.id))
    if workflow:
        query = query.where(instances.c.workflow == workflow)
    if state:
        query = query.where(instances.c.state == state)
    rows = []
    for r in conn.execute(query).mappings():
        row = {k: v for k, v in r.items() if k not in ("due_at", "fires")}
        row["deadline"] = {"due_at": r["due_at"], "fires": r["fires"]} if r["due_at"] else None
        rows.append(row)
    return rows


def instance_history(conn: Connection, instance_id: str) -> list[dict[str, Any]]:
    """Every history row of one instance, in order."""
    query = select(history).where(history.c.instance == instance_id).order_by(history.c.seq)
    return [dict(r) for r in conn.execute(query).mappings()]
