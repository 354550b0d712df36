"""Accounts: one `users` row per person of config.yaml who may sign in with a password."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from loguru import logger

from engine import clock
from engine.auth import passwords, throttle
from engine.auth.people import PASSWORD_SESSION, Principal, grants, known_people, principal_for, require_person
from engine.exceptions import AuthError
from engine.policy.spec import ConfigSpec
from engine.store import Tx
from engine.store import accounts as rows_of
from engine.store.database import SqlStore

BAD_CREDENTIALS = "unknown person or wrong password"


def _row(conn: Tx, person: str):
    return rows_of.user(conn, person)


def _require_row(conn: Tx, person: str):
    row = _row(conn, person)
    if row is None:
        raise AuthError(f"{person} has no account; create it with: coopflow user add {person}")
    return row


def add_user(store: SqlStore, config: ConfigSpec, person: str, password: str) -> None:
    """Create the account of a person config.yaml lists."""
    require_person(config, person)
    passwords.check_policy(person, password)
    digest = passwords.hash_password(password)
    now = clock.now()
    with store.explained_errors(), store.transaction() as conn:
        if _row(conn, person) is not None:
            raise AuthError(f"{person} already has an account (change its password with: coopflow user passwd {person})")
        rows_of.add_user(conn, person, digest, now)
    logger.bind(person=person).info("account created")


def set_password(store: SqlStore, person: str, password: str) -> None:
    passwords.check_policy(person, password)
    digest = passwords.hash_password(password)
    now = clock.now()
    with store.explained_errors(), store.transaction() as conn:
        _require_row(conn, person)
        rows_of.update_user(conn, person, password_hash=digest, updated_at=now, password_changed_at=now)
    logger.bind(person=person).info("password changed")


def set_disabled(store: SqlStore, person: str, disabled: bool) -> bool:
    """Disable or enable an account; False when it already was so."""
    now = clock.now()
    with store.explained_errors(), store.transaction() as conn:
        row = _require_row(conn, person)
        if bool(row.disabled) == disabled:
            return False
        rows_of.update_user(conn, person, disabled=int(disabled), updated_at=now)
    logger.bind(person=person).info("account disabled" if disabled else "account enabled")
    return True


def unlock(store: SqlStore, person: str, client: str) -> None:
    """Clear a person's lockout (their failed attempts stay recorded)."""
    with store.explained_errors(), store.transaction() as conn:
        _require_row(conn, person)
        throttle.record(conn, person, client, throttle.ADMIN, throttle.UNLOCKED, clock.now())
    logger.bind(person=person).info("account unlocked")


def list_users(store: SqlStore, config: ConfigSpec) -> list[dict[str, Any]]:
    """Every person of config.yaml and every account, with status `enabled`, `disabled`, `locked`,
    `no account` (listed, never added) or `not in config` (an account whose person was removed)."""
    now = clock.now()
    with store.explained_errors(), store.reading() as conn:
        rows = {r.person: r for r in rows_of.all_users(conn)}
        locks = {p: throttle.person_locked_until(conn, p, now) for p in rows}
    out = []
    for person in sorted(set(known_people(config)) | set(rows)):
        row = rows.get(person)
        roles = list(grants(config, person))
        if row is None:
            status = "no account"
        elif not roles:
            status = "not in config"
        elif row.disabled:
            status = "disabled"
        elif locks.get(person):
            status = "locked"
        else:
            status = "enabled"
        out.append({
            "person": person, "roles": roles, "admin": person in config.administrators, "status": status,
            "locked_until": locks.get(person), "created": row.created_at if row else None,
            "password_changed": row.password_changed_at if row else None,
        })
    return out


def authenticate_password(store: SqlStore, person: str, password: str, client: str, *, config: ConfigSpec) -> Principal:
    """Check a person's password from `client` (an address); the principal, or AuthError.

    Every attempt is recorded; a locked person or client is refused without checking the
    password. Unknown person and wrong password get the same message and the same work.
    """
    now = clock.now()
    outcome, reason, until = throttle.FAILED, BAD_CREDENTIALS, None
    with store.explained_errors(), store.transaction() as conn:
        until = throttle.locked_until(conn, person, client, now)
        if until is not None:
            outcome = throttle.LOCKED
        else:
            row = _row(conn, person)
            if passwords.verify(row.password_hash if row else None, password) and grants(config, person):
                if row.disabled:
                    outcome, reason = throttle.DISABLED, f"the account of {person} is disabled"
                else:
                    outcome = throttle.OK
                    if passwords.needs_rehash(row.password_hash):
                        rows_of.update_user(conn, person, password_hash=passwords.hash_password(password), updated_at=now)
        throttle.record(conn, person, client, throttle.PASSWORD, outcome, now)
    log = logger.bind(person=person[:throttle.PERSON_CAP], client=client, outcome=outcome)
    if outcome == throttle.OK:
        log.info("signed in")
        return principal_for(config, person, PASSWORD_SESSION, client)
    log.warning("sign-in refused")
    if outcome == throttle.LOCKED and until is not None:  # (locked: `until` is when the lock ends)
        raise AuthError(f"too many failed sign-ins: locked until {_local(until, config)}")
    raise AuthError(reason)


def _local(moment: datetime, config: ConfigSpec) -> str:
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo(config.timezone)).strftime("%Y-%m-%d %H:%M %Z")
