"""Schema 3, the baseline: every table and index of the store as coopflow 0.2 left it.

A frozen copy (tests/test_migrations.py checks that a store built by the revisions matches
engine/store/tables.py): later revisions change the schema from here, so this file
never follows the tables' current definitions.

The baseline also upgrades the stores made before Alembic (coopflow_meta.schema_version 1 to
4, no alembic_version table): the only differences from schema 3 were missing tables (those of
release 0.2) and the index of timers by instance and status, so creating each table and index
that is missing brings any of them to schema 3, keeping every row (a store already at 3 or 4
gets nothing new here; schema_4.py then creates its table only if it is missing).
"""

from __future__ import annotations

from alembic import op
from loguru import logger
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
    inspect,
)

from engine.store.migrations import set_schema_version

revision = "schema_3"
down_revision = None
branch_labels = None
depends_on = None
schema_version = 3

frozen = MetaData()
Id = String(120)
Utc = DateTime(timezone=True)
Serial = BigInteger().with_variant(Integer, "sqlite")

Table("coopflow_meta", frozen, Column("key", String(60), primary_key=True), Column("value", Text, nullable=False))

Table(
    "workflow_versions", frozen,
    Column("version", String(32), primary_key=True),
    Column("workflow", Id, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("created_at", Utc, nullable=False),
)

Table(
    "instances", frozen,
    Column("id", Id, primary_key=True),
    Column("workflow", Id, nullable=False),
    Column("version", String(32), nullable=False),
    Column("state", Id, nullable=False),
    Column("fields", JSON, nullable=False),
    Column("final", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("created_at", Utc, nullable=False),
    Column("updated_at", Utc, nullable=False),
    Column("state_entered_at", Utc, nullable=False),
    Index("ix_instances_workflow_state", "workflow", "state"),
)

Table(
    "inbox", frozen,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("key", String(200), nullable=False, unique=True),
    Column("kind", String(20), nullable=False),
    Column("instance", Id, nullable=False),
    Column("workflow", Id),
    Column("trigger", Id),
    Column("actor", String(200), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(12), nullable=False),
    Column("outcome", Text),
    Column("submitted_at", Utc, nullable=False),
    Column("applied_at", Utc),
    Index("ix_inbox_pending", "status", "id"),
    Index("ix_inbox_instance", "instance", "id"),
)

Table(
    "history", frozen,
    Column("seq", Serial, primary_key=True, autoincrement=False),
    Column("instance", Id, nullable=False),
    Column("inbox_id", BigInteger),
    Column("at", Utc, nullable=False),
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
)

Table(
    "consents", frozen,
    Column("instance", Id, primary_key=True),
    Column("trigger", Id, primary_key=True),
    Column("party", Id, primary_key=True),
    Column("actor", String(200), nullable=False),
    Column("at", Utc, nullable=False),
    Column("expires_at", Utc),
)

Table(
    "timers", frozen,
    Column("id", String(200), primary_key=True),
    Column("instance", Id, nullable=False),
    Column("workflow", Id, nullable=False),
    Column("state", Id, nullable=False),
    Column("trigger", Id, nullable=False),
    Column("due_at", Utc, nullable=False),
    Column("status", String(12), nullable=False),
    Index("ix_timers_due", "status", "due_at"),
    Index("ix_timers_instance_status", "instance", "status"),
)



Table(
    "outbox", frozen,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("instance", Id, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_at", Utc, nullable=False),
    Column("last_error", Text),
    Column("created_at", Utc, nullable=False),
    Column("done_at", Utc),
    Index("ix_outbox_pending", "status", "next_at"),
)

Table(
    "deliveries", frozen,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("key", String(300), nullable=False, unique=True),
    Column("instance", Id),
    Column("kind", String(20), nullable=False),
    Column("channel", String(12), nullable=False),
    Column("recipient", String(200), nullable=False),
    Column("address", Text, nullable=False),
    Column("message", JSON, nullable=False),
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_at", Utc, nullable=False),
    Column("last_error", Text),
    Column("created_at", Utc, nullable=False),
    Column("sent_at", Utc),
    Index("ix_deliveries_due", "status", "next_at"),
)

Table(
    "occurrences", frozen,
    Column("schedule", Id, nullable=False),
    Column("nominal_at", Utc, nullable=False),
    Column("fired_at", Utc, nullable=False),
    Column("host", Id),
    Column("instance", Id),
    UniqueConstraint("schedule", "nominal_at", name="uq_occurrence"),
)

Table(
    "leases", frozen,
    Column("name", String(60), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", Utc, nullable=False),
)

Table(
    "users", frozen,
    Column("person", Id, primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("disabled", Integer, nullable=False),
    Column("created_at", Utc, nullable=False),
    Column("updated_at", Utc, nullable=False),
    Column("password_changed_at", Utc, nullable=False),
    Column("data", JSON, nullable=False),
)

Table(
    "tokens", frozen,
    Column("id", String(32), primary_key=True),
    Column("person", Id, nullable=False),
    Column("name", String(200)),
    Column("secret_hash", String(64), nullable=False),
    Column("read_only", Integer, nullable=False),
    Column("created_at", Utc, nullable=False),
    Column("expires_at", Utc),
    Column("last_used_at", Utc),
    Column("revoked_at", Utc),
    Index("ix_tokens_person", "person"),
)

Table(
    "login_attempts", frozen,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("person", Id, nullable=False),
    Column("client", String(200), nullable=False),
    Column("method", String(40), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("at", Utc, nullable=False),
    Index("ix_login_attempts_person", "person", "at"),
    Index("ix_login_attempts_client", "client", "at"),
)

Table(
    "sessions", frozen,
    Column("id_hash", String(64), primary_key=True),
    Column("person", Id, nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("client", String(200), nullable=False),
    Column("created_at", Utc, nullable=False),
    Column("last_seen_at", Utc, nullable=False),
    Column("expires_at", Utc, nullable=False),
    Column("data", JSON, nullable=False),
    Index("ix_sessions_person", "person"),
)


def upgrade() -> None:
    bind = op.get_bind()
    present = inspect(bind)
    tables = set(present.get_table_names()) - {"alembic_version"}  # Alembic made that one just now
    created: list[str] = []
    for table in frozen.sorted_tables:
        if table.name not in tables:
            table.create(bind)  # with its indexes
            created.append(f"table {table.name}")
            continue
        indexes = {ix["name"] for ix in present.get_indexes(table.name)}
        for index in sorted(table.indexes, key=lambda ix: ix.name or ""):
            if index.name not in indexes:
                index.create(bind)
                created.append(f"index {index.name}")
    if tables and created:  # a store from before Alembic, not a new one
        logger.info("schema 3 baseline: created {}", ", ".join(created))
    set_schema_version(bind, schema_version)


def downgrade() -> None:
    raise NotImplementedError("coopflow stores are never downgraded: restore the backup taken before the upgrade")
