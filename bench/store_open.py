"""Opening a store: new, up to date, and upgraded through Alembic, beside raw sqlite3 creating the same tables.

Each case runs in a fresh Python process (a daemon or a CLI command pays its imports once, at
start), five rounds interleaved, median (min-max) of the time the open itself takes and of the
imports it needed first. Run by hand: `/tmp/v/bin/python bench/store_open.py`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO, environment

ROUNDS = 5

CASE = r'''
import json, sys, time
t0 = time.perf_counter()
case, path = sys.argv[1], sys.argv[2]
if case == "raw_sqlite3":
    import sqlite3
    ddl = open(sys.argv[3], encoding="utf-8").read()
    t1 = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript("BEGIN IMMEDIATE;" + ddl + "COMMIT;")
    conn.close()
else:
    from engine.store.database import SqlStore
    from engine.store import migrations
    t1 = time.perf_counter()
    if case == "all_revisions":  # what a new store would cost if it ran the revisions (not done)
        from sqlalchemy import create_engine
        engine = create_engine(f"sqlite:///{path}")
        with engine.begin() as conn:
            migrations.upgrade(conn)
        engine.dispose()
    else:
        SqlStore(f"sqlite:///{path}").dispose()
t2 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "open": t2 - t1}))
'''


def ddl_text() -> str:
    sys.path.insert(0, str(REPO))
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    from engine.store.tables import metadata

    parts = []
    for table in metadata.sorted_tables:
        parts.append(str(CreateTable(table).compile(dialect=sqlite.dialect())).strip() + ";")
        parts.extend(str(CreateIndex(ix).compile(dialect=sqlite.dialect())).strip() + ";" for ix in table.indexes)
    return "\n".join(parts)


def legacy_copy(source: Path, target: Path) -> None:
    """A schema-1 store (before Alembic): the new store with its 0.2 tables, one index and alembic_version dropped."""
    import sqlite3

    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    src.backup(dst)
    src.close()
    dst.executescript("DROP INDEX ix_timers_instance_status; DROP TABLE users; DROP TABLE tokens; "
                      "DROP TABLE login_attempts; DROP TABLE sessions; DROP TABLE deliveries; DROP TABLE alembic_version; "
                      "UPDATE coopflow_meta SET value = '1' WHERE key = 'schema_version';")
    dst.close()


def run(case: str, path: Path, ddl: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CASE, case, str(path), str(ddl)], capture_output=True, text=True,
                          cwd=REPO, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{statistics.median(ms):.1f} ({min(ms):.1f}-{max(ms):.1f})"


def main() -> None:
    print(environment())
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        ddl = tmpdir / "schema.sql"
        ddl.write_text(ddl_text(), encoding="utf-8")
        for round_no in range(ROUNDS):
            base = tmpdir / f"r{round_no}"
            base.mkdir()
            cases = [("raw_sqlite3", base / "raw.db"), ("new_store", base / "new.db"),
                     ("all_revisions", base / "rev.db")]
            for case, path in cases:
                results.setdefault(case, []).append(run(case, path, ddl))
            results.setdefault("reopen", []).append(run("reopen", base / "new.db", ddl))
            legacy_copy(base / "new.db", base / "old.db")
            results.setdefault("upgrade_from_1", []).append(run("upgrade_from_1", base / "old.db", ddl))
    labels = {
        "raw_sqlite3": "raw sqlite3: the same CREATE statements in one transaction",
        "new_store": "SqlStore, new store (create_all + stamp at head, Alembic not loaded)",
        "all_revisions": "every Alembic revision on an empty database (not used for new stores)",
        "reopen": "SqlStore, store already at head (Alembic not loaded)",
        "upgrade_from_1": "SqlStore, schema-1 store upgraded through Alembic",
    }
    print("| case | imports before the open, ms | the open, ms |")
    print("| --- | --- | --- |")
    for case, label in labels.items():
        rows = results[case]
        print(f"| {label} | {fmt([r['imports'] for r in rows])} | {fmt([r['open'] for r in rows])} |")


if __name__ == "__main__":
    main()
