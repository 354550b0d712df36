"""Schema 4: reminders before deadlines (engine/notify/reminders.py), armed and disarmed with their timer.

Stores made by the last release before Alembic may already be at schema 4 (coopflow_meta says
4, no alembic_version table): they run the baseline and this revision like any older store, so
the table is created only when it is missing.
"""

from __future__ import annotations

from alembic import op
from loguru import logger
from sqlalchemy import Column, DateTime, Index, MetaData, String, Table, inspect

from engine.store.migrations import set_schema_version

revision = "schema_4"
down_revision = "schema_3"
branch_labels = None
depends_on = None
schema_version = 4

frozen = MetaData()
Id = String(120)
Utc = DateTime(timezone=True)

reminders = Table(
    "reminders", frozen,
    Column("id", String(220), primary_key=True),
    Column("timer", String(200), nullable=False),
    Column("instance", Id, nullable=False),
    Column("workflow", Id, nullable=False),
    Column("state", Id, nullable=False),
    Column("due_at", Utc, nullable=False),
    Column("deadline_at", Utc, nullable=False),
    Column("status", String(12), nullable=False),
    Index("ix_reminders_due", "status", "due_at"),
    Index("ix_reminders_instance_status", "instance", "status"),
)


def upgrade() -> None:
    bind = op.get_bind()
    if not inspect(bind).has_table(reminders.name):
        reminders.create(bind)
        logger.info("schema 4: created table reminders")
    set_schema_version(bind, schema_version)


def downgrade() -> None:
    raise NotImplementedError("coopflow stores are never downgraded: restore the backup taken before the upgrade")
