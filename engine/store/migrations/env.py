"""Alembic's environment: run the revisions on the connection `engine.store.migrations.upgrade` gave.

Only the online mode on a shared connection: coopflow always migrates the store it opens, inside
the transaction SqlStore.migrate began (Alembic then begins none of its own).
"""

from __future__ import annotations

from alembic import context

from engine.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("coopflow migrations run from SqlStore.migrate (engine.store.migrations.upgrade), not the alembic command")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite's ALTER TABLE: copy-and-move
)
with context.begin_transaction():
    context.run_migrations()
