"""Tests for engine/store/migrations (Alembic): the revisions build exactly the tables of
engine/store/database.py, an upgrade is one transaction, and newer stores are refused.

Each test runs on SQLite and on PostgreSQL (the `store` / `store_url` fixtures).
"""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text, update

from engine.store import migrations
from engine.store.database import SCHEMA_VERSION, SqlStore, StoreError, StoreRefused, meta, metadata


def test_revisions_build_the_tables_the_code_uses(store):
    """Alembic's own comparison finds no difference between a migrated store and database.py's tables:
    the frozen baseline (and every later revision) agrees with the code."""
    with store.reading() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def test_head_constants_name_the_newest_revision():
    """HEAD and SCHEMA_VERSION (read without loading Alembic on every open) match versions/."""
    config = Config()
    config.set_main_option("script_location", str(migrations.HERE))
    script = ScriptDirectory.from_config(config)
    head = script.get_revision(script.get_current_head())
    assert head.revision == migrations.HEAD
    assert head.module.schema_version == migrations.SCHEMA_VERSION == SCHEMA_VERSION
    assert migrations.known(migrations.HEAD) and not migrations.known("schema_999")


def test_store_records_both_versions(store):
    """A new store is stamped with the head revision and the matching schema number."""
    with store.reading() as conn:
        assert migrations.current_revision(conn) == migrations.HEAD
    assert store.meta_value("schema_version") == str(SCHEMA_VERSION)


def test_revision_from_a_newer_coopflow_is_refused(store_url, store):
    """A store stamped with a revision this coopflow does not have is refused, and left as it is."""
    with store.transaction() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'schema_999'"))
    store.dispose()
    with pytest.raises(StoreRefused, match="newer coopflow.*schema_999.*upgrade coopflow"):
        SqlStore(store_url)
    with store.reading() as conn:
        assert migrations.current_revision(conn) == "schema_999"
    store.dispose()


def test_failed_upgrade_leaves_the_store_as_it_was(store_url, store, monkeypatch):
    """The upgrade runs in the open transaction: a failure after the baseline created tables
    rolls every one of them back, and the store keeps its old schema number."""
    with store.transaction() as conn:
        conn.execute(text("DROP TABLE users"))
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="2"))
    store.dispose()

    def fail(_conn, _number):
        raise StoreError("disk full (simulated after the tables were created)")

    monkeypatch.setattr(migrations, "set_schema_version", fail)  # the revision file imports it when Alembic loads it
    with pytest.raises(StoreError, match="simulated"):
        SqlStore(store_url)
    with store.reading() as conn:
        names = set(inspect(conn).get_table_names())
    assert "users" not in names and "alembic_version" not in names
    assert store.meta_value("schema_version") == "2"
    monkeypatch.undo()
    again = SqlStore(store_url)
    try:
        with again.reading() as conn:
            assert "users" in set(inspect(conn).get_table_names())
        assert again.meta_value("schema_version") == str(SCHEMA_VERSION)
    finally:
        again.dispose()
        store.dispose()


def test_empty_database_is_refused_without_create(store_url):
    """`create=False` (every command but `init`) refuses a database holding no store, creating nothing."""
    with pytest.raises(StoreError, match="coopflow init"):
        SqlStore(store_url, create=False)
    probe = SqlStore(store_url)  # creating it now works, so nothing half-made was left behind
    try:
        assert probe.meta_value("schema_version") == str(SCHEMA_VERSION)
    finally:
        probe.dispose()
