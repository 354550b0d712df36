"""The consents table: which parties have consented to which trigger of an instance.

Who still owes a step is counted from these (`given`). The executor writes them at once, not
with its batch (engine.store.batch), inside a savepoint of the event's own, because the quorum
is counted from this table: `parties` (expired ones dropped first), `record`, `clear` once the
quorum is met, `withdraw`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, insert, select

from engine.store import Tx
from engine.store.database import consents

_OF_INSTANCE = select(consents.c.trigger, consents.c.party).where(consents.c.instance == bindparam("instance"))


def given(conn: Tx, instance: str) -> dict[str, list[str]]:
    """Trigger -> parties that have already consented to it, for one instance."""
    out: dict[str, list[str]] = {}
    for trigger, party in conn.execute(_OF_INSTANCE, {"instance": instance}):
        out.setdefault(trigger, []).append(party)
    return out


def _of(instance: str, trigger: str):
    return consents.c.instance == instance, consents.c.trigger == trigger


def parties(conn: Tx, instance: str, trigger: str, now: datetime) -> list[str]:
    """The parties whose consent to (instance, trigger) stands; expired ones are deleted first."""
    conn.execute(delete(consents).where(*_of(instance, trigger), consents.c.expires_at.is_not(None), consents.c.expires_at <= now))
    return list(conn.execute(select(consents.c.party).where(*_of(instance, trigger))).scalars())


def record(conn: Tx, instance: str, trigger: str, party: str, actor: str, at: datetime, expires_at: datetime | None) -> None:
    conn.execute(insert(consents).values(instance=instance, trigger=trigger, party=party, actor=actor, at=at, expires_at=expires_at))


def clear(conn: Tx, instance: str, trigger: str) -> None:
    """Forget every consent to (instance, trigger): its quorum was met and the step taken."""
    conn.execute(delete(consents).where(*_of(instance, trigger)))


def withdraw(conn: Tx, instance: str, trigger: str, party: str) -> bool:
    """Remove the party's consent; whether there was one."""
    return bool(conn.execute(delete(consents).where(*_of(instance, trigger), consents.c.party == party)).rowcount)
