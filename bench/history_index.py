"""Benchmark: schema 5's index on history (actor, kind), with and without it, on the same store.

The store is bench/reads.py's `live` store (N live information_exchange requests, 10 history
rows each, a quarter of the in-progress ones late by a fired `deemed_received`: the system's
fires are 1 history row in 40). On that store, in the same run, first with the index (a store
`coopflow init` made has it), then after `DROP INDEX` (a schema-4 store):

* in process: `engine.store.reads.overdue_instances` (the overview's overdue set) and the whole
  `overview.build_overview` (one page of 20), each the best of 3;
* raw SQL with the bare driver: the lateness rows alone (`actor = 'system' AND kind = 'fire'`),
  best of 3, and the database's plan for it.

    .venv/bin/python bench/history_index.py [--live 50000] [--no-pg]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reads as live_store  # noqa: E402  (bench/reads.py: the same rows, written the same way)
from common import environment, pg_available, table  # noqa: E402

INDEX = "ix_history_actor_kind"
LATENESS_SQL = "SELECT count(*) FROM history WHERE actor = 'system' AND kind = 'fire'"
TRIES = 3


def best(call) -> float:
    times = []
    for _ in range(TRIES):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def in_process(config: Path) -> list[tuple[str, float]]:
    from engine.execution.runtime import open_runtime
    from engine.store import reads
    from engine.views import overview

    runtime = open_runtime(config)
    try:
        store, policy = runtime.store, runtime.policy

        def overdue() -> None:
            with store.reading() as conn:
                specs = overview.Specs(conn, policy)
                lateness = overview.lateness_transitions({v: specs.get(w, v) for w, v in reads.open_versions(conn)})
                reads.overdue_instances(conn, datetime.now(UTC), lateness)

        return [("in process: reads.overdue_instances", best(overdue)),
                ("in process: build_overview (one page of 20)", best(lambda: overview.build_overview(store, policy)))]
    finally:
        store.dispose()


def raw_sqlite(path: Path) -> tuple[float, str]:
    conn = sqlite3.connect(path)
    try:
        plan = "; ".join(r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + LATENESS_SQL))
        return best(lambda: conn.execute(LATENESS_SQL).fetchall()), plan
    finally:
        conn.close()


def raw_pg(conninfo: str, schema: str) -> tuple[float, str]:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        conn.execute(f"SET search_path TO {schema}")
        plan = conn.execute("EXPLAIN " + LATENESS_SQL).fetchall()
        node = next(line for (line,) in plan if "Scan" in line).strip().lstrip("-> ").split("  ")[0]
        return best(lambda: conn.execute(LATENESS_SQL).fetchall()), node


def drop_index(url: str, pg) -> None:
    if pg:
        import psycopg

        with psycopg.connect(pg[1], autocommit=True) as conn:
            conn.execute(f"DROP INDEX {pg[2]}.{INDEX}")
            conn.execute(f"ANALYZE {pg[2]}.history")
    else:
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.execute(f"DROP INDEX {INDEX}")
        conn.execute("ANALYZE")
        conn.commit()
        conn.close()


def scenario(kind: str, count: int) -> list[list]:
    out = []
    with tempfile.TemporaryDirectory() as tmp, live_store.built_store(Path(tmp), kind, count, True, timedelta(days=30)) as built:
        pg = built.pg
        for label in ("with the index (schema 5)", "without it (schema 4)"):
            if label.startswith("without"):
                drop_index(built.url, pg)
            raw, plan = raw_pg(pg[1], pg[2]) if pg else raw_sqlite(Path(tmp) / "store.db")
            for name, seconds in in_process(built.config):
                out.append([kind, label, name, f"{seconds:.3f}", ""])
            out.append([kind, label, "raw SQL: the system's fires (count)", f"{raw:.3f}", plan])
            print(f"  {kind}, {label}: done", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--live", type=int, default=50_000, help="live instances (10 history rows each)")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    print(environment(), flush=True)
    print(f"{args.live:,} live instances, {args.live * live_store.HISTORY_PER_INSTANCE:,} history rows", flush=True)
    out = scenario("sqlite", args.live)
    if not args.no_pg and pg_available():
        out += scenario("postgresql", args.live)
    print(table(["database", "store", "read", "best of 3, s", "plan"], out))


if __name__ == "__main__":
    main()
