"""The store's tables (SQLAlchemy Core), as the code uses them today.

A change here needs a revision in engine/store/migrations/versions/ (tests/test_migrations.py
fails until the revisions build the same schema). Every timestamp is stored in UTC and comes
back timezone-aware (UtcDateTime).
"""

from __future__ import annotations

from datetime import UTC

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

from engine.store.statuses import DeliveryStatus, InboxStatus, OutboxStatus, ReminderStatus, TimerStatus


class UtcDateTime(TypeDecorator):
    """An aware datetime stored as UTC; SQLite keeps it naive, PostgreSQL as timestamptz."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()
Id = String(120)

meta = Table("coopflow_meta", metadata, Column("key", String(60), primary_key=True), Column("value", Text, nullable=False))

workflow_versions = Table(
    "workflow_versions", metadata,
    Column("version", String(32), primary_key=True),
    Column("workflow", Id, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

instances = Table(
    "instances", metadata,
    Column("id", Id, primary_key=True),
    Column("workflow", Id, nullable=False),
    Column("version", String(32), nullable=False),
    Column("state", Id, nullable=False),
    Column("fields", JSON, nullable=False),
    Column("final", Integer, nullable=False, default=0),
    Column("seq", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("state_entered_at", UtcDateTime, nullable=False),
    Index("ix_instances_workflow_state", "workflow", "state"),
)

inbox = Table(
    "inbox", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False, unique=True),
    Column("kind", String(20), nullable=False),
    Column("instance", Id, nullable=False),
    Column("workflow", Id),
    Column("trigger", Id),
    Column("actor", String(200), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(12), nullable=False, default=InboxStatus.PENDING),
    Column("outcome", Text),
    Column("submitted_at", UtcDateTime, nullable=False),
    Column("applied_at", UtcDateTime),
    Index("ix_inbox_pending", "status", "id"),
    Index("ix_inbox_instance", "instance", "id"),
)

history = Table(
    "history", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("instance", Id, nullable=False),
    Column("inbox_id", BigInteger),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("workflow", Id),
    Column("trigger", Id),
    Column("from_state", Id),
    Column("to_state", Id),
    Column("actor", String(200)),
    Column("outcome", String(20), nullable=False),
    Column("reason", Text),
    Column("data", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_history_instance", "instance", "seq"),
    Index("ix_history_actor_kind", "actor", "kind"),  # the lateness reads: system fires (engine.store.reads)
)

consents = Table(
    "consents", metadata,
    Column("instance", Id, primary_key=True),
    Column("trigger", Id, primary_key=True),
    Column("party", Id, primary_key=True),
    Column("actor", String(200), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime),
)

timers = Table(
    "timers", metadata,
    Column("id", String(200), primary_key=True),
    Column("instance", Id, nullable=False),
    Column("workflow", Id, nullable=False),
    Column("state", Id, nullable=False),
    Column("trigger", Id, nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("status", String(12), nullable=False, default=TimerStatus.ARMED),
    Index("ix_timers_due", "status", "due_at"),
    Index("ix_timers_state_due", "status", "workflow", "state", "due_at"),  # deadlines due per state (schema 6)
)
# Disarming looks timers up by instance and status; without this index SQLite (which keeps no
# statistics) walks every armed timer instead.
timers_by_instance = Index("ix_timers_instance_status", timers.c.instance, timers.c.status)

outbox = Table(
    "outbox", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("instance", Id, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(12), nullable=False, default=OutboxStatus.PENDING),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", UtcDateTime, nullable=False),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("done_at", UtcDateTime),
    Index("ix_outbox_pending", "status", "next_at"),
)

# One row per recipient and channel of a notification (engine/notify): created once from its
# outbox row (`key` = outbox id + recipient + channel), sent after commit, retried, then dead.
deliveries = Table(
    "deliveries", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("key", String(300), nullable=False, unique=True),
    Column("instance", Id),
    Column("kind", String(20), nullable=False),
    Column("channel", String(12), nullable=False),
    Column("recipient", String(200), nullable=False),
    Column("address", Text, nullable=False),
    Column("message", JSON, nullable=False),
    Column("status", String(12), nullable=False, default=DeliveryStatus.PENDING),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", UtcDateTime, nullable=False),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
    Index("ix_deliveries_due", "status", "next_at"),
)

# Reminders before a deadline (engine/notify/reminders.py): armed with the deadline's timer, disarmed
# with it when the state is left; firing one writes its deliveries (keys timer:<reminder id>:...).
reminders = Table(
    "reminders", metadata,
    Column("id", String(220), primary_key=True),   # <timer id>:remind:<n>
    Column("timer", String(200), nullable=False),
    Column("instance", Id, nullable=False),
    Column("workflow", Id, nullable=False),
    Column("state", Id, nullable=False),
    Column("due_at", UtcDateTime, nullable=False),        # when the reminder is sent
    Column("deadline_at", UtcDateTime, nullable=False),   # when the deadline expires
    Column("status", String(12), nullable=False, default=ReminderStatus.ARMED),
    Index("ix_reminders_due", "status", "due_at"),
    Index("ix_reminders_instance_status", "instance", "status"),
)

occurrences = Table(
    "occurrences", metadata,
    Column("schedule", Id, nullable=False),
    Column("nominal_at", UtcDateTime, nullable=False),
    Column("fired_at", UtcDateTime, nullable=False),
    Column("host", Id),
    Column("instance", Id),
    UniqueConstraint("schedule", "nominal_at", name="uq_occurrence"),
)

leases = Table(
    "leases", metadata,
    Column("name", String(60), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

# Accounts (engine/auth): one row per person of config.yaml who may sign in; secrets only hashed.
users = Table(
    "users", metadata,
    Column("person", Id, primary_key=True),
    Column("password_hash", Text, nullable=False),  # argon2id, PHC string
    Column("disabled", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("password_changed_at", UtcDateTime, nullable=False),
    Column("data", JSON, nullable=False),
)

tokens = Table(
    "tokens", metadata,
    Column("id", String(32), primary_key=True),  # the public part of the token, shown in listings
    Column("person", Id, nullable=False),
    Column("name", String(200)),
    Column("secret_hash", String(64), nullable=False),  # sha256 hex of the secret part
    Column("read_only", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime),
    Column("last_used_at", UtcDateTime),
    Column("revoked_at", UtcDateTime),
    Index("ix_tokens_person", "person"),
)

login_attempts = Table(
    "login_attempts", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("person", Id, nullable=False),
    Column("client", String(200), nullable=False),
    Column("method", String(40), nullable=False),
    Column("outcome", String(20), nullable=False),  # statuses.LoginOutcome
    Column("at", UtcDateTime, nullable=False),
    Index("ix_login_attempts_person", "person", "at"),
    Index("ix_login_attempts_client", "client", "at"),
)

sessions = Table(  # web console sign-ins (engine/server/auth.py); only sha256 of the session id is kept
    "sessions", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("person", Id, nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("client", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("data", JSON, nullable=False),
    Index("ix_sessions_person", "person"),
)
