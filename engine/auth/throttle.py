"""Sign-in throttling: every attempt is recorded in `login_attempts`; repeated failures lock.

`MAX_FAILURES` failed password sign-ins within `WINDOW` lock the person for `LOCKOUT` after the
last of them (a successful sign-in or `coopflow user unlock` starts the count again); the same
number of failures of any kind (password or token) from one client address locks that address.
Attempts refused because of a lock are recorded as `locked` and do not extend it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from engine.store import Tx, logins
from engine.store.logins import CLIENT_CAP, PERSON_CAP, record  # noqa: F401 (the throttle's API)
from engine.store.statuses import LoginOutcome

MAX_FAILURES = 5
WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)

OK, FAILED, LOCKED, DISABLED, UNLOCKED = (LoginOutcome.OK, LoginOutcome.FAILED, LoginOutcome.LOCKED,
                                          LoginOutcome.DISABLED, LoginOutcome.UNLOCKED)
PASSWORD, TOKEN, ADMIN = "password", "token", "admin"


def _lock_end(failures: list[datetime], now: datetime) -> datetime | None:
    """MAX_FAILURES failures (newest first) within WINDOW lock until LOCKOUT after the last of them."""
    if len(failures) < MAX_FAILURES or failures[0] - failures[-1] > WINDOW:
        return None
    until = failures[0] + LOCKOUT
    return until if now < until else None


def person_locked_until(conn: Tx, person: str, now: datetime) -> datetime | None:
    """When the person's lock ends (None: not locked). Counts password failures since the last success."""
    found = logins.failures(conn, now - WINDOW - LOCKOUT, MAX_FAILURES, person=person, method=PASSWORD,
                            after_id=logins.last_reset(conn, person))
    return _lock_end(found, now)


def client_locked_until(conn: Tx, client: str, now: datetime) -> datetime | None:
    """When the client address's lock ends (None: not locked)."""
    return _lock_end(logins.failures(conn, now - WINDOW - LOCKOUT, MAX_FAILURES, client=client), now)


def locked_until(conn: Tx, person: str | None, client: str, now: datetime) -> datetime | None:
    """The later of the person's and the client's lock ends, or None."""
    ends = [client_locked_until(conn, client, now)]
    if person is not None:
        ends.append(person_locked_until(conn, person, now))
    found = [e for e in ends if e is not None]
    return max(found) if found else None
