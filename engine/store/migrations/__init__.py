"""Schema migrations, run by Alembic on the store's own connection and transaction.

No alembic.ini: `upgrade(conn)` builds Alembic's configuration here, points it at this folder
(env.py, versions/) and hands it the connection `SqlStore.migrate` opened, so the whole
upgrade is one transaction (SQLite's write lock, PostgreSQL's transactional DDL): a failed
upgrade leaves the store as it was.

Two records of where a store stands, both written by every revision:

* `alembic_version.version_num`: the last revision applied (`schema_3`, `schema_4`, ..., `schema_6`);
* `coopflow_meta.schema_version`: the same as a plain number. coopflow releases from before
  Alembic read only this one, and refuse a store whose number is higher than theirs: keeping
  it up to date is what stops an old coopflow from using a store a newer one has upgraded.

A new revision: copy the newest file in versions/ to versions/schema_N.py, set `revision`, `down_revision` and
`schema_version`, bump HEAD and SCHEMA_VERSION below, and end `upgrade()` with
`set_schema_version(op.get_bind(), schema_version)`.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, inspect, text
from sqlalchemy.engine import Connection

HEAD = "schema_6"          # the newest revision in versions/ (tests/test_migrations.py checks it)
SCHEMA_VERSION = 6         # its schema number, also kept in coopflow_meta.schema_version
VERSION_TABLE = "alembic_version"
HERE = Path(__file__).resolve().parent
# The table Alembic keeps its revision in, declared as Alembic declares it, for `stamp_new`.
version_table = Table(VERSION_TABLE, MetaData(), Column("version_num", String(32), nullable=False),
                      PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"))


def current_revision(conn: Connection) -> str | None:
    """The revision recorded in the store (None before Alembic first ran on it)."""
    if VERSION_TABLE not in inspect(conn).get_table_names():
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def known(revision: str) -> bool:
    """Whether this coopflow has the revision (a store upgraded by a newer coopflow has one it lacks).

    Each revision lives in versions/<revision>.py."""
    return revision in {path.stem for path in (HERE / "versions").glob("schema_*.py")}


def upgrade(conn: Connection) -> None:
    """Apply every revision the store lacks, up to HEAD, on `conn` (inside its transaction)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


def stamp_new(conn: Connection) -> None:
    """Mark a store just created from the current tables (`metadata.create_all`) as at HEAD.

    Alembic's recipe for a database built from scratch ("create_all, then stamp head"), done
    without loading Alembic: it costs a third of a second at start, and a new store needs none
    of the revisions. tests/test_migrations.py checks that the revisions build the same schema.
    """
    version_table.create(conn)
    conn.execute(version_table.insert().values(version_num=HEAD))
    set_schema_version(conn, SCHEMA_VERSION)


def add_index(schema: int, name: str, table: str, columns: list[str]) -> None:
    """A revision that adds one index: created only when missing (a store may have it already),
    logged, and `schema` recorded in coopflow_meta. Called from inside a revision's `upgrade`."""
    from alembic import op
    from loguru import logger
    from sqlalchemy import inspect

    bind = op.get_bind()
    if name not in {index["name"] for index in inspect(bind).get_indexes(table)}:
        op.create_index(name, table, columns)
        logger.info("schema {}: created index {} on {} ({})", schema, name, table, ", ".join(columns))
    set_schema_version(bind, schema)


def set_schema_version(conn: Connection, number: int) -> None:
    """Record `number` in coopflow_meta.schema_version (inserted on a new store)."""
    updated = conn.execute(text("UPDATE coopflow_meta SET value = :v WHERE key = 'schema_version'"), {"v": str(number)})
    if updated.rowcount == 0:
        conn.execute(text("INSERT INTO coopflow_meta (key, value) VALUES ('schema_version', :v)"), {"v": str(number)})
