"""Personal API tokens: `cft_<id>_<secret>`, shown once; the store keeps only sha256(secret).

The id (12 hex digits) is public: listings show it and `coopflow token revoke ID` takes it.
The secret is 32 random bytes (URL-safe base64), so a plain sha256 is enough (no slow hash).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from loguru import logger

from engine import clock
from engine.auth import throttle
from engine.auth.people import Principal, grants, principal_for, require_person
from engine.exceptions import AuthError
from engine.policy.spec import ConfigSpec
from engine.store import Tx
from engine.store import accounts as rows_of
from engine.store.database import SqlStore

PREFIX = "cft_"
TOKEN_RE = re.compile(r"^cft_([0-9a-f]{12})_([A-Za-z0-9_\-]{43})$")
ID_RE = re.compile(r"^(?:cft_)?([0-9a-f]{12})$")
EXPIRES_RE = re.compile(r"^(\d+)([hdw])$")
UNITS = {"h": "hours", "d": "days", "w": "weeks"}
MAX_LIFETIME = timedelta(days=3650)
DEFAULT_EXPIRES = "90d"
_DUMMY = hashlib.sha256(b"coopflow: no such token").hexdigest()


def parse_expires(text: str) -> timedelta | None:
    """`90d`, `12h`, `4w` or `never` (None); ValueError with a clear message otherwise."""
    text = text.strip().lower()
    if text == "never":
        return None
    match = EXPIRES_RE.match(text)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"'{text}' is not a lifetime: use e.g. 90d, 12h, 4w or never")
    span = timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    if span > MAX_LIFETIME:
        raise ValueError(f"'{text}' is longer than the maximum lifetime of {MAX_LIFETIME.days} days")
    return span


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _account(conn: Tx, person: str):
    return rows_of.user(conn, person)


def issue(store: SqlStore, config: ConfigSpec, person: str, lifetime: timedelta | None,
          read_only: bool = False, name: str | None = None) -> tuple[str, str]:
    """Create a token for a person with an enabled account; (id, token). The token is not stored."""
    require_person(config, person)
    now = clock.now()
    with store.explained_errors(), store.transaction() as conn:
        account = _account(conn, person)
        if account is None:
            raise AuthError(f"{person} has no account; create it with: coopflow user add {person}")
        if account.disabled:
            raise AuthError(f"the account of {person} is disabled")
        while True:
            token_id = secrets.token_hex(6)
            if rows_of.token(conn, token_id) is None:
                break
        secret = secrets.token_urlsafe(32)
        rows_of.add_token(
            conn, id=token_id, person=person, name=name, secret_hash=_digest(secret), read_only=int(read_only),
            created_at=now, expires_at=now + lifetime if lifetime else None)
    logger.bind(person=person, token=token_id, read_only=read_only).info("token issued")
    return token_id, f"{PREFIX}{token_id}_{secret}"


def token_id(text: str) -> str:
    """The id in `ID` or `cft_ID` (AuthError when it is neither)."""
    match = ID_RE.match(text.strip())
    if not match:
        raise AuthError(f"'{text}' is not a token id (12 hex digits, as `coopflow token list` shows)")
    return match.group(1)


def revoke(store: SqlStore, text: str) -> bool:
    """Revoke a token; False when it already was."""
    tid = token_id(text)
    with store.explained_errors(), store.transaction() as conn:
        row = rows_of.token(conn, tid)
        if row is None:
            raise AuthError(f"no token {tid}")
        if row.revoked_at is not None:
            return False
        rows_of.update_token(conn, tid, revoked_at=clock.now())
    logger.bind(person=row.person, token=tid).info("token revoked")
    return True


def list_tokens(store: SqlStore, person: str | None = None) -> list[dict[str, Any]]:
    """Tokens (of one person), oldest first, with their state: active, expired or revoked."""
    now = clock.now()
    with store.explained_errors(), store.reading() as conn:
        rows = rows_of.tokens_of(conn, person)
    return [{
        "id": r.id, "person": r.person, "name": r.name, "created": r.created_at, "expires": r.expires_at,
        "last_used": r.last_used_at, "read_only": bool(r.read_only), "revoked": r.revoked_at,
        "state": _state(r, now),
    } for r in rows]


def _state(row, now: datetime) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def authenticate_token(store: SqlStore, token: str, client: str, *, config: ConfigSpec) -> Principal:
    """Check a token presented by `client`; the principal (`token:<id>`), or AuthError.

    Refused: malformed, unknown, wrong secret, revoked, expired, the person's account disabled or
    missing, the person no longer in config.yaml, or the client locked by too many failures.
    Failures are recorded against the client address (never against the person: token ids are public).
    """
    now = clock.now()
    match = TOKEN_RE.match(token.strip())
    tid, secret = match.groups() if match else ("", "")
    reason, row = None, None
    with store.explained_errors(), store.transaction() as conn:
        until = throttle.client_locked_until(conn, client, now)
        if until is not None:
            reason = "too many failed sign-ins from this address: try again later"
            outcome = throttle.LOCKED
        else:
            row = rows_of.token(conn, tid) if match else None
            if not hmac.compare_digest(row.secret_hash if row else _DUMMY, _digest(secret)) or row is None:
                reason = "invalid token"
            elif row.revoked_at is not None:
                reason = f"token {tid} was revoked"
            elif row.expires_at is not None and row.expires_at <= now:
                reason = f"token {tid} expired"
            else:
                account = _account(conn, row.person)
                if account is None or account.disabled:
                    reason = f"the account of {row.person} is disabled"
                elif not grants(config, row.person):
                    reason = f"{row.person} is no longer listed in config.yaml"
            outcome = throttle.FAILED if reason else throttle.OK
            if reason:
                throttle.record(conn, row.person if row else "-", client, throttle.TOKEN, outcome, now)
            else:
                rows_of.update_token(conn, tid, last_used_at=now)
    log = logger.bind(token=tid or "-", client=client, outcome=outcome)
    if reason or row is None:  # (no row: the reason was set)
        log.warning("token refused: {}", reason)
        raise AuthError(reason)
    log.debug("token accepted")
    return principal_for(config, row.person, f"token:{tid}", client, read_only=bool(row.read_only))
