"""Delivery rows: one message to one recipient on one channel, written once by key, claimed,
marked sent or retried, dead-lettered (the states are engine.notify.deliveries's to decide).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update

from engine.store import Tx
from engine.store.database import deliveries, insert_or_ignore
from engine.store.statuses import DeliveryStatus


@dataclass(frozen=True)
class Delivery:
    """One deliveries row. `message` is the rendered message: subject and text (e-mail), or the
    webhook's JSON."""

    id: int
    key: str
    instance: str | None
    kind: str          # a MessageKind
    channel: str       # engine.notify.channels.EMAIL or WEBHOOK
    recipient: str
    address: str
    message: dict[str, Any]
    status: str        # a DeliveryStatus
    attempts: int
    next_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


def _rows(result) -> list[Delivery]:
    return [Delivery(**r) for r in result.mappings()]


def insert(conn: Tx, key: str, instance: str | None, kind: str, channel: str, recipient: str, address: str,
           message: dict[str, Any], now: datetime) -> bool:
    """Write a pending delivery unless its key is taken; whether it was new."""
    new = insert_or_ignore(conn, deliveries, ["key"], returning="id", key=key, instance=instance, kind=kind, channel=channel,
                           recipient=recipient, address=address, message=message, status=DeliveryStatus.PENDING,
                           attempts=0, next_at=now, last_error=None, created_at=now, sent_at=None).first()
    return new is not None


_DUE = (select(deliveries).where(deliveries.c.status.in_((DeliveryStatus.PENDING, DeliveryStatus.SENDING)),
                                 deliveries.c.next_at <= bindparam("now"))
        .order_by(deliveries.c.next_at, deliveries.c.id).limit(bindparam("limit")))
_DUE_PG = _DUE.with_for_update(skip_locked=True)
_CLAIM = (update(deliveries).where(deliveries.c.id == bindparam("delivery_id"))
          .values(status=DeliveryStatus.SENDING, attempts=bindparam("attempts"), next_at=bindparam("until")))


def claim_due(conn: Tx, now: datetime, until: datetime, limit: int) -> list[Delivery]:
    """Mark up to `limit` deliveries due by `now` `sending` until `until` (the claim's expiry),
    one attempt more, and return them so (on PostgreSQL, rows another sender holds are skipped)."""
    query = _DUE_PG if conn.dialect.name == "postgresql" else _DUE
    claimed = [Delivery(**{**r, "status": DeliveryStatus.SENDING, "attempts": r["attempts"] + 1, "next_at": until})
               for r in conn.execute(query, {"now": now, "limit": limit}).mappings().all()]
    for d in claimed:
        conn.execute(_CLAIM, {"delivery_id": d.id, "attempts": d.attempts, "until": until})
    return claimed


def mark(conn: Tx, delivery_id: int, status: DeliveryStatus, last_error: str | None = None,
         next_at: datetime | None = None, sent_at: datetime | None = None) -> None:
    """A sending attempt's outcome: sent (at `sent_at`), due again (at `next_at`), or dead."""
    values: dict[str, Any] = {"status": status, "last_error": last_error}
    if next_at is not None:
        values["next_at"] = next_at
    if sent_at is not None:
        values["sent_at"] = sent_at
    conn.execute(update(deliveries).where(deliveries.c.id == delivery_id), values)


def release_claims(conn: Tx, now: datetime) -> int:
    """Make every delivery left `sending` due at `now`; how many there were."""
    return conn.execute(update(deliveries).where(deliveries.c.status == DeliveryStatus.SENDING).values(next_at=now)).rowcount


def listing(conn: Tx, status: str | None = None) -> list[Delivery]:
    """Every delivery (or those in `status`), oldest first."""
    query = select(deliveries).order_by(deliveries.c.id)
    if status:
        query = query.where(deliveries.c.status == status)
    return _rows(conn.execute(query))


def dead_count(conn: Tx) -> int:
    return conn.execute(select(func.count()).select_from(deliveries)
                        .where(deliveries.c.status == DeliveryStatus.DEAD)).scalar_one()


def requeue_dead(conn: Tx, now: datetime, delivery_id: int | None = None) -> int:
    """Dead letters (one by id, or all when None) pending again from `now`, attempts reset; how many."""
    query = update(deliveries).where(deliveries.c.status == DeliveryStatus.DEAD)
    if delivery_id is not None:
        query = query.where(deliveries.c.id == bindparam("delivery_id"))
    params = {"delivery_id": delivery_id} if delivery_id is not None else {}
    return conn.execute(query.values(status=DeliveryStatus.PENDING, attempts=0, next_at=now), params).rowcount
