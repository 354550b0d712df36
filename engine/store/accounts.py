"""Account rows: `users` (one per person who may sign in), their API `tokens`, web console `sessions`.

Who may have an account, passwords and token secrets are engine/auth's; this module only
reads and writes the rows (secrets arrive here already hashed).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine.store.database import sessions, tokens, users


def user(conn: Connection, person: str):
    """The person's `users` row, or None."""
    return conn.execute(select(users).where(users.c.person == person)).first()


def all_users(conn: Connection) -> list:
    return list(conn.execute(select(users)))


def add_user(conn: Connection, person: str, password_hash: str, now: datetime) -> None:
    conn.execute(users.insert().values(person=person, password_hash=password_hash, disabled=0, created_at=now,
                                       updated_at=now, password_changed_at=now, data={}))


def update_user(conn: Connection, person: str, **values) -> None:
    """Set columns of the person's row (password_hash, disabled, updated_at, password_changed_at)."""
    conn.execute(users.update().where(users.c.person == person).values(**values))


def token(conn: Connection, token_id: str):
    """The `tokens` row with this id, or None."""
    return conn.execute(select(tokens).where(tokens.c.id == token_id)).first()


def add_token(conn: Connection, **values) -> None:
    conn.execute(tokens.insert().values(**values))


def update_token(conn: Connection, token_id: str, **values) -> None:
    """Set columns of a token's row (revoked_at, last_used_at)."""
    conn.execute(tokens.update().where(tokens.c.id == token_id).values(**values))


def tokens_of(conn: Connection, person: str | None = None) -> list:
    """Tokens (of one person, or all), oldest first."""
    query = select(tokens).order_by(tokens.c.created_at, tokens.c.id)
    if person:
        query = query.where(tokens.c.person == person)
    return list(conn.execute(query))


# ---- web console sessions (engine/server/auth.py): only sha256 of the session id is kept


def session(conn: Connection, id_hash: str):
    """The `sessions` row, or None."""
    return conn.execute(select(sessions).where(sessions.c.id_hash == id_hash)).first()


def open_session(conn: Connection, now: datetime, **values) -> None:
    """Insert a session row, removing every expired one first (housekeeping)."""
    conn.execute(sessions.delete().where(sessions.c.expires_at <= now))
    conn.execute(sessions.insert().values(**values))


def close_session(conn: Connection, id_hash: str) -> bool:
    """Delete a session; False when there was none."""
    return bool(conn.execute(sessions.delete().where(sessions.c.id_hash == id_hash)).rowcount)


def touch_session(conn: Connection, id_hash: str, now: datetime) -> None:
    conn.execute(sessions.update().where(sessions.c.id_hash == id_hash).values(last_seen_at=now))
