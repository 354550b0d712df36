"""Sign-in attempt rows (`login_attempts`): recorded, and read back for the throttle's decisions.

What counts as locked is decided in engine/auth/throttle.py; this module only stores and reads.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from engine.store.database import login_attempts
from engine.store.statuses import LoginOutcome

PERSON_CAP = 120  # column widths: a person id typed at a sign-in form may be anything
CLIENT_CAP = 200


def record(conn: Connection, person: str, client: str, method: str, outcome: str, now: datetime) -> None:
    conn.execute(login_attempts.insert().values(
        person=person[:PERSON_CAP], client=client[:CLIENT_CAP], method=method, outcome=outcome, at=now))


def last_reset(conn: Connection, person: str) -> int | None:
    """The id of the person's last successful sign-in or unlock (None: never)."""
    return conn.execute(select(func.max(login_attempts.c.id)).where(
        login_attempts.c.person == person[:PERSON_CAP],
        login_attempts.c.outcome.in_((LoginOutcome.OK, LoginOutcome.UNLOCKED)))).scalar()


def failures(conn: Connection, after: datetime, limit: int, *, person: str | None = None, method: str | None = None,
             client: str | None = None, after_id: int | None = None) -> list[datetime]:
    """When the latest `limit` failed attempts after `after` happened, newest first (filtered as given)."""
    where = [login_attempts.c.outcome == LoginOutcome.FAILED, login_attempts.c.at > after]
    if person is not None:
        where.append(login_attempts.c.person == person[:PERSON_CAP])
    if method is not None:
        where.append(login_attempts.c.method == method)
    if client is not None:
        where.append(login_attempts.c.client == client[:CLIENT_CAP])
    if after_id is not None:
        where.append(login_attempts.c.id > after_id)
    query = select(login_attempts.c.at).where(*where).order_by(login_attempts.c.at.desc()).limit(limit)
    return list(conn.execute(query).scalars())
