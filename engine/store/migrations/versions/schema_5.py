"""Schema 5: an index on history (actor, kind).

The status overview's overdue set (engine.store.reads: `_overdue_ids`, `overdue_reasons`) looks
for the lateness transitions fired by a deadline: history rows with `actor = 'system'` and
`kind = 'fire'`. Without an index that read went through the whole history table on every
`coopflow status` (bench/README.md section 5); with it, through the system's fires only.
Created only when missing, like schema 4's table.
"""

from __future__ import annotations

from engine.store.migrations import add_index

revision = "schema_5"
down_revision = "schema_4"
branch_labels = None
depends_on = None
schema_version = 5

INDEX, TABLE, COLUMNS = "ix_history_actor_kind", "history", ["actor", "kind"]


def upgrade() -> None:
    add_index(schema_version, INDEX, TABLE, COLUMNS)


def downgrade() -> None:
    raise NotImplementedError("coopflow stores are never downgraded: restore the backup taken before the upgrade")
