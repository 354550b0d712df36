"""Reads of the consents table: which parties have consented to which trigger of an instance
(the executor writes and withdraws them; who still owes a step is counted from these)."""

from __future__ import annotations

from sqlalchemy import bindparam, select

from engine.store import Tx
from engine.store.database import consents

_OF_INSTANCE = select(consents.c.trigger, consents.c.party).where(consents.c.instance == bindparam("instance"))


def given(conn: Tx, instance: str) -> dict[str, list[str]]:
    """Trigger -> parties that have already consented to it, for one instance."""
    out: dict[str, list[str]] = {}
    for trigger, party in conn.execute(_OF_INSTANCE, {"instance": instance}):
        out.setdefault(trigger, []).append(party)
    return out
