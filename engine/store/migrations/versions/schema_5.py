"""Schema 5: an index on history (actor, kind).

The status overview's overdue set (engine.store.reads: `_overdue_ids`, `overdue_reasons`) looks
for the lateness transitions fired by a deadline: history rows with `actor = 'system'` and
`kind = 'fire'`. Without an index that read went through the whole history table on every
`coopflow status` (bench/README.md section 5); with it, through the system's fires only.
Created only when missing, like schema 4's table.
"""

from __future__ import annotations

from alembic import op
from loguru import logger
from sqlalchemy import inspect

from engine.store.migrations import set_schema_version

revision = "schema_5"
down_revision = "schema_4"
branch_labels = None
depends_on = None
schema_version = 5

INDEX, TABLE, COLUMNS = "ix_history_actor_kind", "history", ["actor", "kind"]


def upgrade() -> None:
    bind = op.get_bind()
    if INDEX not in {index["name"] for index in inspect(bind).get_indexes(TABLE)}:
        op.create_index(INDEX, TABLE, COLUMNS)
        logger.info("schema 5: created index {} on {} ({})", INDEX, TABLE, ", ".join(COLUMNS))
    set_schema_version(bind, schema_version)


def downgrade() -> None:
    raise NotImplementedError("coopflow stores are never downgraded: restore the backup taken before the upgrade")
