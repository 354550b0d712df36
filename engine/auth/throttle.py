"""Sign-in throttling: every attempt is recorded in `login_attempts`; repeated failures lock.

`MAX_FAILURES` failed password sign-ins within `WINDOW` lock the person for `LOCKOUT` after the
last of them (a successful sign-in or `coopflow user unlock` starts the count again); the same
number of failures of any kind (password or token) from one client address locks that address.
Attempts refused because of a lock are recorded as `locked` and do not extend it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from engine.store.database import login_attempts

MAX_FAILURES = 5
WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)

OK, FAILED, LOCKED, DISABLED, UNLOCKED = "ok", "failed", "locked", "disabled", "unlocked"
PASSWORD, TOKEN, ADMIN = "password", "token", "admin"
PERSON_CAP = 120  # column width: a person id typed at a sign-in form may be anything
CLIENT_CAP = 200


def record(conn: Connection, person: str, client: str, method: str, outcome: str, now: datetime) -> None:
    conn.execute(login_attempts.insert().values(
        person=person[:PERSON_CAP], client=client[:CLIENT_CAP], method=method, outcome=outcome, at=now))


def _locked_until(conn: Connection, where, now: datetime) -> datetime | None:
    query = (select(login_attempts.c.at).where(*where, login_attempts.c.outcome == FAILED,
                                               login_attempts.c.at > now - WINDOW - LOCKOUT)
             .order_by(login_attempts.c.at.desc()).limit(MAX_FAILURES))
    failures = list(conn.execute(query).scalars())
    if len(failures) < MAX_FAILURES or failures[0] - failures[-1] > WINDOW:
        return None
    until = failures[0] + LOCKOUT
    return until if now < until else None


def person_locked_until(conn: Connection, person: str, now: datetime) -> datetime | None:
    """When the person's lock ends (None: not locked). Counts password failures since the last success."""
    person = person[:PERSON_CAP]
    reset = conn.execute(select(func.max(login_attempts.c.id)).where(
        login_attempts.c.person == person, login_attempts.c.outcome.in_((OK, UNLOCKED)))).scalar()
    where = [login_attempts.c.person == person, login_attempts.c.method == PASSWORD]
    if reset is not None:
        where.append(login_attempts.c.id > reset)
    return _locked_until(conn, where, now)


def client_locked_until(conn: Connection, client: str, now: datetime) -> datetime | None:
    """When the client address's lock ends (None: not locked)."""
    return _locked_until(conn, [login_attempts.c.client == client[:CLIENT_CAP]], now)


def locked_until(conn: Connection, person: str | None, client: str, now: datetime) -> datetime | None:
    """The later of the person's and the client's lock ends, or None."""
    ends = [client_locked_until(conn, client, now)]
    if person is not None:
        ends.append(person_locked_until(conn, person, now))
    ends = [e for e in ends if e is not None]
    return max(ends) if ends else None
