"""Tests for engine/store/migrations (Alembic): the revisions build exactly the tables of
engine/store/tables.py, an upgrade is one transaction, and newer stores are refused.

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


def test_revisions_build_the_tables_the_code_uses(store_url):
    """Alembic's own comparison finds no difference between tables.py and a store built
    by running every revision from an empty database (what an old store goes through): the frozen
    baseline and every later revision agree with the code that creates new stores directly."""
    from sqlalchemy import create_engine

    engine = create_engine(store_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            migrations.upgrade(conn)
        with engine.connect() as conn:
            assert migrations.current_revision(conn) == migrations.HEAD
            assert conn.execute(text("SELECT value FROM coopflow_meta WHERE key = 'schema_version'")).scalar() \
                == str(SCHEMA_VERSION)
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()


def test_new_store_has_the_tables_the_code_uses(store):
    """A new store (created from tables.py and stamped at HEAD) shows no difference either."""
    with store.reading() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


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


# --------------------------------------------------------------------------- pinned workflow versions


def test_pinned_version_is_stored_with_its_format(shipped_policy, store):
    """Starting an instance pins its workflow version as JSON carrying `format`, and reads back equal."""
    from sqlalchemy import select

    from engine.execution.executor import Executor
    from engine.policy.loader import load_policy
    from engine.policy.spec import workflows as spec_module
    from engine.store.database import workflow_versions

    policy = load_policy(shipped_policy)
    executor = Executor(store, policy)
    executor.submit_start("information_exchange", "dic.focal_point",
                          {"requester": "dic", "recipient": "police", "subject": "Xin thông tin"}, apply=True)
    with store.reading() as conn:
        stored = conn.execute(select(workflow_versions.c.spec)).scalar_one()
    assert stored["format"] == spec_module.STORED_FORMAT
    assert spec_module.WorkflowSpec.from_stored(stored) == policy.workflows["information_exchange"]


def test_old_pinned_version_with_a_renamed_key_still_loads(shipped_policy, monkeypatch):
    """When the language renames a key, the step from the previous format reads versions pinned
    before the rename: here a format 3 that renamed `started_by` (stored by format 2 as `starters`),
    on top of the real format 1 -> 2 step (transitions without `accepts`)."""
    from engine.policy.loader import load_policy
    from engine.policy.spec import workflows as spec_module

    current = load_policy(shipped_policy).workflows["information_exchange"]

    def renamed_started_by(stored):
        stored = dict(stored)
        stored["started_by"] = stored.pop("starters")
        return stored

    monkeypatch.setattr(spec_module, "STORED_FORMAT", 3)
    monkeypatch.setitem(spec_module.STORED_UPGRADES, 2, renamed_started_by)
    old = current.model_dump(mode="json", by_alias=True)
    old["starters"] = old.pop("started_by")
    for t in old["transitions"]:
        del t["accepts"]  # format 1: before `accepts`
    loaded = spec_module.WorkflowSpec.from_stored(old)
    assert loaded.started_by == current.started_by
    answer = next(t for t in loaded.transitions if t.trigger == "answer")
    assert "answer" in answer.accepts and "recipient" not in answer.accepts
    assert spec_module.WorkflowSpec.from_stored({**old, "format": 2}).started_by == current.started_by


def test_version_pinned_by_a_newer_coopflow_is_refused_clearly(shipped_policy):
    from engine.policy.loader import load_policy
    from engine.policy.spec import workflows as spec_module

    stored = load_policy(shipped_policy).workflows["information_exchange"].to_stored()
    with pytest.raises(ValueError, match="stored in format 99; this coopflow reads formats 1 to 2 .upgrade coopflow"):
        spec_module.WorkflowSpec.from_stored({**stored, "format": 99})


@pytest.mark.parametrize("alembic", [False, True], ids=["before-alembic", "alembic"])
def test_schema_4_store_gets_the_history_index(store_url, store, log_records, alembic):
    """A schema-4 store (made by the last release before Alembic, without alembic_version, or
    stamped schema_4 by Alembic) is upgraded to schema 6: the index on history (actor, kind) is
    created (schema 6's index on timers is there already: it is left as it is), nothing else
    changes, and both records say 6."""
    with store.transaction() as conn:
        conn.execute(text("DROP INDEX ix_history_actor_kind"))
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="4"))
        if alembic:
            conn.execute(text("UPDATE alembic_version SET version_num = 'schema_4'"))
        else:
            conn.execute(text("DROP TABLE alembic_version"))
    with store.reading() as conn:
        assert "ix_history_actor_kind" not in {i["name"] for i in inspect(conn).get_indexes("history")}
    store.dispose()
    log_records.clear()
    _upgraded_to_head_with(store_url, "history", "ix_history_actor_kind", ["actor", "kind"])
    assert [r["message"] for r in log_records if "schema" in r["message"]] == [
        "schema 5: created index ix_history_actor_kind on history (actor, kind)",
        "store schema upgraded from 4 to 6 (revision schema_6)"]


def _upgraded_to_head_with(store_url: str, table: str, index: str, columns: list[str]) -> None:
    """Opening the store upgrades it to HEAD: the tables match today's metadata, `index` is on
    `table` (`columns`), and both records (Alembic's and coopflow_meta) say schema 6."""
    again = SqlStore(store_url)
    try:
        with again.reading() as conn:
            assert migrations.current_revision(conn) == migrations.HEAD == "schema_6"
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
            found = next(i for i in inspect(conn).get_indexes(table) if i["name"] == index)
            assert {"name": index, "column_names": columns}.items() <= found.items()
        assert again.meta_value("schema_version") == "6"
    finally:
        again.dispose()


def test_schema_5_store_gets_the_timers_index(store_url, store, log_records):
    """A schema-5 store is upgraded to schema 6: the index on timers (status, workflow, state,
    due_at) is created, nothing else changes, and both records say 6."""
    with store.transaction() as conn:
        conn.execute(text("DROP INDEX ix_timers_state_due"))
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="5"))
        conn.execute(text("UPDATE alembic_version SET version_num = 'schema_5'"))
    store.dispose()
    log_records.clear()
    _upgraded_to_head_with(store_url, "timers", "ix_timers_state_due", ["status", "workflow", "state", "due_at"])
    assert [r["message"] for r in log_records if "schema" in r["message"]] == [
        "schema 6: created index ix_timers_state_due on timers (status, workflow, state, due_at)",
        "store schema upgraded from 5 to 6 (revision schema_6)"]


def test_schema_6_store_from_an_earlier_run_is_left_alone(store_url, store, log_records):
    """Opening a store already at schema 6 runs no revision and logs no upgrade."""
    store.dispose()
    log_records.clear()
    again = SqlStore(store_url)
    again.dispose()
    assert [r["message"] for r in log_records if "schema" in r["message"]] == []
