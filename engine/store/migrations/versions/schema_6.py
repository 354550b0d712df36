"""Schema 6: an index on timers (status, workflow, state, due_at).

`coopflow upcoming` and the calendar count the armed deadlines due by a horizon except those of
the meetings (shown once, as the meeting: engine.store.reads `deadline_count`). With only
`ix_timers_due` (status, due_at) that count read every due timer's row to look at its workflow
and state (1,000,000 armed timers: ~0.3 s, bench/README.md section 5); with this index it is the
count of all due timers (on `ix_timers_due` alone) less the count of each meeting state's
(a short range of this one). Created only when missing, like schema 5's index.
"""

from __future__ import annotations

from engine.store.migrations import add_index

revision = "schema_6"
down_revision = "schema_5"
branch_labels = None
depends_on = None
schema_version = 6

INDEX, TABLE, COLUMNS = "ix_timers_state_due", "timers", ["status", "workflow", "state", "due_at"]


def upgrade() -> None:
    add_index(schema_version, INDEX, TABLE, COLUMNS)


def downgrade() -> None:
    raise NotImplementedError("coopflow stores are never downgraded: restore the backup taken before the upgrade")
