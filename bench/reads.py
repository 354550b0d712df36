"""Benchmark: the read commands (`status`, `status --json`, `upcoming`) on big stores, beside raw SQL.

live    100,000 live `information_exchange` requests (half `sent`, half `in_progress`, each with
        its armed deadline, a quarter overdue by a fired lateness transition, a few hundred past
        their deadline) and 10 history rows each: 1,000,000 history rows.
timers  1,000,000 live requests in `sent`, each with its armed deadline, due over 60 days:
        1,000,000 armed timers (the size at which `upcoming` crashed on SQLite, 14× the size at
        which it crashed on PostgreSQL).

Rows are written with the database's own bulk path (sqlite3 executemany, PostgreSQL COPY) into a
store `coopflow init` created; the workflow version is the shipped one. Each command is a real
`coopflow` process on a tmp copy of the shipped policy: wall time and its own peak RSS (wait4).
A child reports its own peak RSS at exit (VmHWM; wait4's ru_maxrss would include this parent).
coopflow's modules are compiled to bytecode first, as an install does (bench/cli.py does the same).
Beside it, in the same run: the reads alone in this process (policy loaded), the raw SQL aggregates the command needs (GROUP BY per workflow and
state, COUNT of armed timers due), timed with the bare driver, and `coopflow status ID` (one
instance: the fixed cost of starting a command and loading the policy).

Aims (issue #9 item 5): every read command <= 2 s and <= 150 MB RSS.

    /tmp/v/bin/python bench/reads.py [--live 100000] [--timers 1000000] [--no-pg] [--pg-timers 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import COOPFLOW, compile_engine, copy_shipped_policy, environment, pg_available, pg_schema, table  # noqa: E402

HISTORY_PER_INSTANCE = 10
COMMANDS = [
    ("status", ["status"]),
    ("status --json", ["status", "--json"]),
    ("status --workflow (list page)", ["status", "--workflow", "information_exchange"]),
    ("upcoming (30 days)", ["upcoming"]),
    ("upcoming --json", ["upcoming", "--json"]),
]


# --------------------------------------------------------------------------- rows


def rows(count: int, now: datetime, version: str, history: bool, spread: timedelta):
    """(instance, timer, history rows) of `count` live requests, in the tables' column order."""
    fields_sent = {"requester": "dic", "recipient": "police", "kind": "simple"}
    seq = 0
    for i in range(count):
        iid = f"information_exchange-b{i:07d}"
        in_progress = history and i % 2 == 1
        state = "in_progress" if in_progress else "sent"
        entered = now - timedelta(minutes=count - i)
        fields = json.dumps({**fields_sent, "subject": f"Yêu cầu số {i}", "dispatch_no": f"{i}/STTTT"}, ensure_ascii=False)
        due = now + timedelta(days=5) if in_progress else now - timedelta(hours=6) + spread * (i / count)
        trigger = "overdue" if in_progress else "deemed_received"
        instance = (iid, "information_exchange", version, state, fields, 0, 3, entered, entered, entered)
        timer = (f"{iid}:3", iid, "information_exchange", state, trigger, due, "armed")
        hist = []
        if history:
            for k in range(HISTORY_PER_INSTANCE):
                seq += 1
                at = entered - timedelta(minutes=HISTORY_PER_INSTANCE - k)
                if k == 0:
                    h = ("start", None, None, "drafted", "dic.focal_point", "applied", {})
                elif k == 1:
                    h = ("fire", "send", "drafted", "sent", "dic.focal_point", "applied", {"transition": 0})
                elif k == 2 and in_progress and i % 4 == 1:  # the deadline fired: late until final
                    h = ("fire", "deemed_received", "sent", "in_progress", "system", "applied", {"timer": f"{iid}:2", "transition": 3})
                elif k == 2 and in_progress:
                    h = ("fire", "acknowledge", "sent", "in_progress", "police.focal_point", "applied", {"transition": 2})
                else:
                    h = ("fire", "answer", state, state, "police.staff", "refused", {})
                kind, trig, src, dest, actor, outcome, data = h
                hist.append((seq, iid, None, at, kind, "information_exchange", trig, src, dest, actor, outcome,
                             "refused for the bench" if outcome == "refused" else None, json.dumps(data), "0" * 64, "0" * 64))
        yield instance, timer, hist


INSTANCE_COLUMNS = "id, workflow, version, state, fields, final, seq, created_at, updated_at, state_entered_at"
TIMER_COLUMNS = "id, instance, workflow, state, trigger, due_at, status"
HISTORY_COLUMNS = ("seq, instance, inbox_id, at, kind, workflow, trigger, from_state, to_state, actor, outcome, reason, "
                   "data, prev_hash, hash")


def _sqlite_value(v):
    return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v


def fill_sqlite(path: Path, generated) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    batch: tuple[list, list, list] = ([], [], [])

    def flush():
        conn.executemany(f"INSERT INTO instances ({INSTANCE_COLUMNS}) VALUES ({','.join('?' * 10)})", batch[0])
        conn.executemany(f"INSERT INTO timers ({TIMER_COLUMNS}) VALUES ({','.join('?' * 7)})", batch[1])
        conn.executemany(f"INSERT INTO history ({HISTORY_COLUMNS}) VALUES ({','.join('?' * 15)})", batch[2])
        conn.commit()
        for b in batch:
            b.clear()

    for instance, timer, hist in generated:
        batch[0].append([_sqlite_value(v) for v in instance])
        batch[1].append([_sqlite_value(v) for v in timer])
        batch[2].extend([_sqlite_value(v) for v in h] for h in hist)
        if len(batch[0]) >= 20_000:
            flush()
    flush()
    conn.execute("ANALYZE")
    conn.close()


def fill_pg(conninfo: str, schema: str, make) -> None:
    """COPY each table in turn; `make()` gives a fresh (deterministic) generator of the rows each time."""
    import psycopg

    with psycopg.connect(conninfo) as conn:
        conn.execute(f"SET search_path TO {schema}")
        with conn.cursor() as cur:
            for columns, target, pick in ((INSTANCE_COLUMNS, "instances", lambda r: [r[0]]), (TIMER_COLUMNS, "timers", lambda r: [r[1]]),
                                          (HISTORY_COLUMNS, "history", lambda r: r[2])):
                with cur.copy(f"COPY {target} ({columns}) FROM STDIN") as copy:
                    for generated in make():
                        for row in pick(generated):
                            copy.write_row(row)
        conn.execute("ANALYZE")


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# --------------------------------------------------------------------------- measuring


# The child reports its own peak RSS (VmHWM of its own address space) when it exits: the rusage
# of a child (wait4, ru_maxrss) would include this big parent's size at fork.
_WRAPPER = """
import atexit, os, sys
def _hwm():
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    with open(os.environ["BENCH_HWM_FILE"], "w") as out:
        out.write(str(kb))
atexit.register(_hwm)
sys.argv = ["coopflow", *sys.argv[1:]]
from engine.cli.main import main
main()
"""


def run_measured(config: Path, args: list[str]) -> tuple[float, float, int]:
    """One `coopflow` process: (wall seconds, its own peak RSS in MiB, bytes it printed)."""
    with tempfile.TemporaryDirectory() as tmp:
        hwm = Path(tmp) / "hwm"
        env = {k: v for k, v in os.environ.items() if k not in ("COOPFLOW_STORE_URL", "COOPFLOW_CLOCK_START")}
        env["BENCH_HWM_FILE"] = str(hwm)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _WRAPPER, *args, "-c", str(config)], capture_output=True, env=env, timeout=600)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"coopflow {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
        return wall, int(hwm.read_text()) / 1024, len(proc.stdout)


def in_process(config: Path) -> list[tuple[str, float]]:
    """The reads alone (policy loaded, store open), in this process: what a command adds to its fixed cost."""
    from engine.execution.runtime import open_runtime
    from engine.views import overview

    runtime = open_runtime(config)
    try:
        out = []
        for label, call in (("build_overview (one page of 20)", lambda: overview.build_overview(runtime.store, runtime.policy)),
                            ("upcoming_page (30 days, 100 rows)",
                             lambda: overview.upcoming_page(runtime.store, runtime.policy, 30, limit=100))):
            start = time.perf_counter()
            call()
            out.append((label, time.perf_counter() - start))
        return out
    finally:
        runtime.store.dispose()


def raw_sqlite(path: Path, now: datetime) -> list[tuple[str, float]]:
    conn = sqlite3.connect(path)
    horizon = _sqlite_value(now + timedelta(days=30))
    queries = [
        ("GROUP BY workflow, state (open)", "SELECT workflow, state, count(*) FROM instances WHERE final = 0 GROUP BY 1, 2", ()),
        ("COUNT armed timers due in 30 days", "SELECT count(*) FROM timers WHERE status = 'armed' AND due_at <= ?", (horizon,)),
        ("first 100 due, joined to instances", "SELECT t.instance, t.due_at, i.version FROM timers t JOIN instances i ON "
         "i.id = t.instance WHERE t.status = 'armed' AND t.due_at <= ? ORDER BY t.due_at LIMIT 100", (horizon,)),
    ]
    out = []
    for name, sql, params in queries:
        start = time.perf_counter()
        conn.execute(sql, params).fetchall()
        out.append((name, time.perf_counter() - start))
    conn.close()
    return out


def raw_pg(conninfo: str, schema: str, now: datetime) -> list[tuple[str, float]]:
    import psycopg

    horizon = now + timedelta(days=30)
    queries = [
        ("GROUP BY workflow, state (open)", "SELECT workflow, state, count(*) FROM instances WHERE final = 0 GROUP BY 1, 2", ()),
        ("COUNT armed timers due in 30 days", "SELECT count(*) FROM timers WHERE status = 'armed' AND due_at <= %s", (horizon,)),
        ("first 100 due, joined to instances", "SELECT t.instance, t.due_at, i.version FROM timers t JOIN instances i ON "
         "i.id = t.instance WHERE t.status = 'armed' AND t.due_at <= %s ORDER BY t.due_at LIMIT 100", (horizon,)),
    ]
    out = []
    with psycopg.connect(conninfo) as conn:
        conn.execute(f"SET search_path TO {schema}")
        for name, sql, params in queries:
            start = time.perf_counter()
            conn.execute(sql, params).fetchall()
            out.append((name, time.perf_counter() - start))
    return out


@contextmanager
def built_store(tmp_path: Path, kind: str, count: int, history: bool, spread: timedelta):
    """One store of `count` live requests (`rows`) on `kind` ("sqlite" or "postgresql"), made by
    `coopflow init` and filled with the database's bulk path: yields a `Built` (bench/history_index.py
    and bench/web.py build theirs here too)."""
    from engine.policy.loader import load_policy
    from engine.policy.versions import workflow_version

    ctx = pg_schema() if kind == "postgresql" else _Null()
    with ctx as pg:
        url = pg[0] if pg else f"sqlite:///{tmp_path / 'store.db'}"
        config = copy_shipped_policy(tmp_path / "policy", store_url=url)
        subprocess.run([COOPFLOW, "init", "-c", str(config)], check=True, capture_output=True)
        policy = load_policy(config)
        version = workflow_version(policy.workflows["information_exchange"])
        _store_version(url, policy)
        now = datetime.now(UTC)
        start = time.perf_counter()
        if pg:
            fill_pg(pg[1], pg[2], lambda: rows(count, now, version, history, spread))
        else:
            fill_sqlite(tmp_path / "store.db", rows(count, now, version, history, spread))
        yield Built(url, config, pg, now, time.perf_counter() - start)


@dataclass
class Built:
    url: str
    config: Path
    pg: tuple[str, str, str] | None  # (store URL, psycopg conninfo, schema) on PostgreSQL
    now: datetime
    seconds: float  # filling it


def scenario(name: str, kind: str, count: int, history: bool, spread: timedelta) -> list[list]:
    """Build one store, run the commands on it; Markdown rows."""
    results = []
    with tempfile.TemporaryDirectory() as tmp, built_store(Path(tmp), kind, count, history, spread) as built:
        pg, config, now = built.pg, built.config, built.now
        print(f"  {name} on {kind}: {count:,} instances built in {built.seconds:.0f} s", flush=True)
        raw = raw_pg(pg[1], pg[2], now) if pg else raw_sqlite(Path(tmp) / "store.db", now)
        one = f"information_exchange-b{count // 2:07d}"
        wall, rss, size = run_measured(config, ["status", one])
        results.append([name, kind, "`status ID` (fixed cost)", f"{wall:.2f}", f"{rss:.0f}", f"{size:,}"])
        for label, args in COMMANDS:
            wall, rss, size = run_measured(config, args)
            verdict = "" if wall <= 2 and rss <= 150 else " **missed**"
            results.append([name, kind, f"`{label}`{verdict}", f"{wall:.2f}", f"{rss:.0f}", f"{size:,}"])
            print(f"    {label}: {wall:.2f} s, {rss:.0f} MiB, {size:,} bytes", flush=True)
        for label, seconds in in_process(config):
            results.append([name, kind, f"in process: {label}", f"{seconds:.2f}", "", ""])
        for label, seconds in raw:
            results.append([name, kind, f"raw SQL: {label}", f"{seconds:.2f}", "", ""])
    return results


def _store_version(url: str, policy) -> None:
    """The shipped information_exchange version, stored as the executor would at the first start."""
    from sqlalchemy import insert

    from engine.policy.versions import canonical_json, workflow_version
    from engine.store.database import SqlStore, workflow_versions

    spec = policy.workflows["information_exchange"]
    store = SqlStore(url)
    try:
        with store.transaction() as conn:
            conn.execute(insert(workflow_versions).values(version=workflow_version(spec), workflow=spec.id,
                                                          spec=json.loads(canonical_json(spec)),
                                                          created_at=datetime.now(UTC)))
    finally:
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--live", type=int, default=100_000, help="live instances of the `live` store (10 history rows each)")
    parser.add_argument("--timers", type=int, default=1_000_000, help="armed timers (and live instances) of the `timers` store")
    parser.add_argument("--pg-timers", type=int, default=200_000, help="the same on PostgreSQL (smaller: COPY over a shared machine)")
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    print(environment(), flush=True)
    compile_engine()  # as an install does: the commands below import bytecode, not sources
    out = []
    out += scenario(f"{args.live:,} live, {args.live * HISTORY_PER_INSTANCE:,} history", "sqlite", args.live, True, timedelta(days=30))
    out += scenario(f"{args.timers:,} armed timers", "sqlite", args.timers, False, timedelta(days=60))
    if not args.no_pg and pg_available():
        out += scenario(f"{args.live:,} live, {args.live * HISTORY_PER_INSTANCE:,} history", "postgresql", args.live, True,
                        timedelta(days=30))
        out += scenario(f"{args.pg_timers:,} armed timers", "postgresql", args.pg_timers, False, timedelta(days=60))
    print(table(["store", "database", "read", "wall s", "peak RSS MiB", "output bytes"], out))


if __name__ == "__main__":
    main()
