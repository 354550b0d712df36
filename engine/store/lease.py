"""Leader lease in the store: at most one daemon per store runs the scheduler and the executor.

A lease is a row (name, holder, expires_at). The holder renews it well before it expires; when
the holder dies, another daemon takes it once it has expired. The same row tells the CLI that a
daemon is running, so that the CLI hands its events over instead of applying them itself.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from engine import clock, settings
from engine.store.database import SqlStore, insert_or_ignore, leases

DAEMON = "daemon"
TTL_ENV = settings.LEASE_TTL
DEFAULT_TTL = timedelta(seconds=float(settings.SETTINGS[TTL_ENV].default))


def ttl_from_env() -> timedelta:
    """The lease TTL: COOPFLOW_LEASE_TTL seconds (tests and drills shorten it), else 15 s.

    The holder renews every third of it, so a standby takes over at most one TTL after the
    leader dies. Raises SettingError (a setting, not a store fault) on a value that is not a positive number of seconds.
    """
    return settings.lease_ttl()


def holder_id() -> str:
    """A name for this process, unique on the machine: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Lease:
    """One named lease held (or wanted) by this process."""

    def __init__(self, store: SqlStore, name: str = DAEMON, holder: str | None = None, ttl: timedelta | None = None):
        self.store, self.name, self.holder = store, name, holder or holder_id()
        self.ttl = ttl if ttl is not None else ttl_from_env()
        self.held = False

    def acquire(self) -> bool:
        """Take the lease if free or expired, or renew it if ours; returns whether we hold it."""
        self.store.check_file()  # a deleted SQLite file stops the holder (StoreGone), never a new store
        now = clock.now()
        with self.store.transaction() as conn:
            insert_or_ignore(conn, leases, ["name"], name=self.name, holder=self.holder, expires_at=now + self.ttl)
            taken = conn.execute(
                update(leases)
                .where(leases.c.name == self.name, (leases.c.holder == self.holder) | (leases.c.expires_at < now))
                .values(holder=self.holder, expires_at=now + self.ttl)
            ).rowcount
        self.held = taken == 1
        return self.held

    def release(self) -> None:
        """Give the lease up at once (a clean shutdown), so a standby takes over without waiting."""
        with self.store.transaction() as conn:
            conn.execute(delete(leases).where(leases.c.name == self.name, leases.c.holder == self.holder))
        self.held = False


def current_holder(store: SqlStore, name: str = DAEMON) -> tuple[str, datetime] | None:
    """(holder, expires_at) of a live lease, or None when nobody holds it."""
    with store.reading() as conn:
        row = conn.execute(select(leases.c.holder, leases.c.expires_at).where(leases.c.name == name)).first()
    if row is None or row.expires_at < clock.now():
        return None
    return row.holder, row.expires_at
