"""Benchmark: durable events applied per second through the Executor, beside the database's raw limit.

Workload: the shipped policy's `information_exchange` request, four events per instance — start
(dic.focal_point), send (arms a 1-working-day timer, notify), acknowledge (police.focal_point;
disarms, arms 5 working days), answer (final; disarms, notify + emit). Every event is checked to
be applied. Engine log lines are kept out (WARNING and up only).

Modes, each beside the raw limit of the same database measured in the same run:

* one event per commit: `Executor.submit_*(..., apply=True)`: submitted and applied in one transaction;
* batched: 100 events submitted in one transaction (`inbox.submit`), then `drain()` — one event
  per transaction — and, where the executor has it, `drain(batch=100)`: group commit (up to 100
  events per transaction, each in a savepoint);
* raw: a bare transaction updating one row and inserting one (SQLite via stdlib sqlite3 and via
  SQLAlchemy Core; PostgreSQL via psycopg on one connection, and via SQLAlchemy), one per commit
  and 100 per commit (what group commit could reach);
* SQLite with synchronous=OFF (not durable) for the executor and the raw loop: shows the CPU cost
  of an event apart from the fsync.

Then 100k live instances (bulk-inserted into the executor's tables, each with an armed timer): a
fresh process opens the store, applies events on random instances, and reports its RSS and the
time per event, beside the same probe on an empty store.

Aims (issue): one event per commit >= 50% of the raw rate; >= 10,000 events/s on SQLite when
batched; 100k instances in <= 300 MB RSS. A miss is profiled with cProfile (--profile forces it).

    /tmp/v/bin/python bench/executor.py [--rounds 5] [--slice 0.8] [--only throughput|100k] [--no-pg] [--profile]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    PG_URL, REPO, bulk_instances, environment, median, peak_rss_mb, percentile, pg_available, pg_schema, profile, quiet_logs,
    rss_mb, table,
)

BATCH = 100
WORKFLOW = "information_exchange"
REQUESTER, RECIPIENT = "dic.focal_point:nguyen_van_a", "police.focal_point:nguyen_thi_b"


def script(instance_no: int) -> list[tuple[str, str | None, str, dict]]:
    """The four events of one request: (kind, trigger, actor, values)."""
    return [
        ("start", None, REQUESTER, {"requester": "dic", "recipient": "police", "subject": f"Yêu cầu số {instance_no}",
                                    "dispatch_no": f"{instance_no}/STTTT-BCVT"}),
        ("fire", "send", REQUESTER, {}),
        ("fire", "acknowledge", RECIPIENT, {}),
        ("fire", "answer", RECIPIENT, {"answer": f"Công văn trả lời số {instance_no}/CAT-ANM"}),
    ]


def open_executor(url: str, durable: bool = True):
    from engine.execution.executor import Executor
    from engine.policy.loader import load_policy
    from engine.store.database import SqlStore

    policy = load_policy(REPO / "config.yaml")  # read only; the store is the benchmark's own
    store = SqlStore(url, durable=durable)
    return policy, store, Executor(store, policy)


def _check(outcome) -> None:
    if outcome is None or not outcome.applied:
        raise SystemExit(f"benchmark event not applied: {outcome}")


# --------------------------------------------------------------------------- runners
# Each runner keeps its store or connection open; run(budget) works for about `budget` seconds
# and returns (events or row pairs, wall seconds, CPU seconds of this process). The benchmark
# interleaves the runners in rounds so that the machine's changing load (it is shared) hits
# them alike, and reports medians over the rounds.


class Runner:
    name = ""

    def run(self, budget: float) -> tuple[int, float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        done = self.work(budget)
        return done, time.perf_counter() - wall, time.process_time() - cpu

    def work(self, budget: float) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ExecOnePerCommit(Runner):
    """One event per commit: submitted and applied in the same transaction (`apply=True`)."""

    def __init__(self, url: str, durable: bool = True):
        self.policy, self.store, self.executor = open_executor(url, durable)
        self.applied: list = []
        self.executor.listeners.append(self.applied.append)
        self.n = 0

    def work(self, budget: float, max_events: int = 1_000_000) -> int:
        done, start, ex = 0, time.perf_counter(), self.executor
        while time.perf_counter() - start < budget and done < max_events:
            instance = None
            for kind, trigger, actor, values in script(self.n):
                if kind == "start":
                    sub = ex.submit_start(WORKFLOW, actor, values, apply=True)
                    instance = sub.instance
                else:
                    sub = ex.submit_fire(instance, trigger, actor, values, apply=True)
                _check(self.applied.pop())  # the outcome the executor told its listeners
                done += 1
            self.n += 1
        return done

    def close(self) -> None:
        self.store.dispose()


class ExecBatched(ExecOnePerCommit):
    """100 events submitted in one transaction, then drained: one event per transaction, or, with
    `group` > 1, `Executor.drain(batch=group)` (group commit: up to `group` events per transaction,
    each in a savepoint) where the executor has it."""

    def __init__(self, url: str, group: int = 1):
        super().__init__(url)
        self.group = group

    def work(self, budget: float, max_events: int = 1_000_000) -> int:
        from engine.store import inbox

        done, start, ex = 0, time.perf_counter(), self.executor
        while done == 0 or (time.perf_counter() - start < budget and done < max_events):
            with self.store.transaction() as conn:
                for _ in range(BATCH // 4):
                    instance = inbox.new_instance_id(WORKFLOW)
                    for kind, trigger, actor, values in script(self.n):
                        inbox.submit(conn, inbox.START if kind == "start" else inbox.FIRE, instance=instance,
                                     workflow=WORKFLOW if kind == "start" else None, trigger=trigger, actor=actor, values=values)
                    self.n += 1
            applied = ex.drain(batch=self.group) if self.group > 1 else ex.drain()
            self.applied.clear()
            if applied != BATCH:
                raise SystemExit(f"drained {applied} events, expected {BATCH}")
            done += applied
        return done

    def close(self) -> None:
        from sqlalchemy import func, select

        from engine.store.database import inbox as inbox_table

        with self.store.reading() as conn:
            bad = conn.execute(select(func.count()).select_from(inbox_table).where(inbox_table.c.status != "applied")).scalar_one()
        self.store.dispose()
        if bad:
            raise SystemExit(f"{bad} batched events were not applied")


class RawSqlite3(Runner):
    """Bare transactions (UPDATE one row + INSERT one) through stdlib sqlite3, WAL."""

    def __init__(self, path: Path, batch: int = 1, synchronous: str = "FULL"):
        self.batch = batch
        self.conn = conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        conn.execute("CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, payload TEXT NOT NULL)")
        conn.execute("INSERT OR IGNORE INTO counter VALUES (1, 0)")

    def work(self, budget: float) -> int:
        done, start, conn = 0, time.perf_counter(), self.conn
        while time.perf_counter() - start < budget:
            conn.execute("BEGIN IMMEDIATE")
            for _ in range(self.batch):
                conn.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
                conn.execute("INSERT INTO log (at, payload) VALUES (?, ?)", (time.time(), '{"k": "v"}'))
            conn.execute("COMMIT")
            done += self.batch
        return done

    def close(self) -> None:
        self.conn.close()


class RawSqlAlchemy(Runner):
    """The same bare transaction through SQLAlchemy Core (SQLite: WAL and BEGIN IMMEDIATE like the store)."""

    def __init__(self, url: str, batch: int = 1, synchronous: str = "FULL"):
        from sqlalchemy import Column, Float, Integer, MetaData, String, Table, create_engine, event, insert, update

        self.batch = batch
        if url.startswith("sqlite"):
            engine = create_engine(url)

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn, _record):
                dbapi_conn.isolation_level = None
                dbapi_conn.execute("PRAGMA journal_mode=WAL")
                dbapi_conn.execute(f"PRAGMA synchronous={synchronous}")

            @event.listens_for(engine, "begin")
            def _on_begin(conn):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), pool_size=1)
        self.engine = engine
        md = MetaData()
        counter = Table("bench_counter", md, Column("id", Integer, primary_key=True), Column("n", Integer, nullable=False))
        self.log = Table("bench_log", md, Column("id", Integer, primary_key=True, autoincrement=True),
                         Column("at", Float, nullable=False), Column("payload", String(100), nullable=False))
        md.create_all(engine)
        with engine.begin() as conn:
            if conn.execute(counter.select()).first() is None:
                conn.execute(insert(counter).values(id=1, n=0))
        self.up = update(counter).where(counter.c.id == 1).values(n=counter.c.n + 1)
        self.insert = insert

    def work(self, budget: float) -> int:
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < budget:
            with self.engine.begin() as conn:
                for _ in range(self.batch):
                    conn.execute(self.up)
                    conn.execute(self.insert(self.log).values(at=time.time(), payload='{"k": "v"}'))
            done += self.batch
        return done

    def close(self) -> None:
        self.engine.dispose()


class RawPsycopg(Runner):
    """Bare transactions on one psycopg connection (one COMMIT per transaction)."""

    def __init__(self, conninfo: str, schema: str, batch: int = 1):
        import psycopg

        self.batch = batch
        self.conn = conn = psycopg.connect(conninfo, options=f"-csearch_path={schema}")
        conn.execute("CREATE TABLE IF NOT EXISTS raw_counter (id int PRIMARY KEY, n int NOT NULL)")
        conn.execute("CREATE TABLE IF NOT EXISTS raw_log (id bigserial PRIMARY KEY, at double precision NOT NULL, payload text NOT NULL)")
        conn.execute("INSERT INTO raw_counter VALUES (1, 0) ON CONFLICT DO NOTHING")
        conn.commit()

    def work(self, budget: float) -> int:
        done, start, conn = 0, time.perf_counter(), self.conn
        with conn.cursor() as cur:
            while time.perf_counter() - start < budget:
                for _ in range(self.batch):
                    cur.execute("UPDATE raw_counter SET n = n + 1 WHERE id = 1")
                    cur.execute("INSERT INTO raw_log (at, payload) VALUES (%s, %s)", (time.time(), '{"k": "v"}'))
                conn.commit()
                done += self.batch
        return done

    def close(self) -> None:
        self.conn.close()


def rounds(runners: dict[str, Runner], count: int, slice_s: float) -> dict[str, dict]:
    """Run every runner `count` times for `slice_s`, order rotated each round; medians per runner."""
    samples: dict[str, list] = {name: [] for name in runners}
    names = list(runners)
    for r in range(count):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            samples[name].append(runners[name].run(slice_s))
    out = {}
    for name, runs in samples.items():
        rates = [d / w for d, w, _ in runs]
        out[name] = {"rate": median(rates), "min": min(rates), "max": max(rates), "rates": rates,
                     "cpu_ms": 1000 * sum(c for _, _, c in runs) / sum(d for d, _, _ in runs)}
    return out


# --------------------------------------------------------------------------- explanations


def statements_per_event(url: str) -> dict[str, float]:
    """SQL statements and transactions the executor sends per event (one event per commit), counted by hooks."""
    from sqlalchemy import event

    runner = ExecOnePerCommit(url)
    counts = {"statements": 0, "transactions": 0}

    @event.listens_for(runner.store.engine, "before_cursor_execute")
    def _count(conn, cursor, statement, params, context, executemany):
        counts["statements"] += 1

    @event.listens_for(runner.store.engine, "commit")
    def _commit(conn):
        counts["transactions"] += 1

    runner.work(1e9, max_events=40)  # warm: versions remembered, caches filled
    for k in counts:
        counts[k] = 0
    events = runner.work(1e9, max_events=400)
    runner.close()
    return {k: v / events for k, v in counts.items()}


# --------------------------------------------------------------------------- 100k instances


def probe(url: str, events: int) -> dict:
    """Run in a fresh process: open the store, apply `events` answers on random live instances."""
    quiet_logs()
    from sqlalchemy import func, select

    from engine.store.database import instances

    before = rss_mb()
    policy, store, executor = open_executor(url)
    opened = rss_mb()
    with store.reading() as conn:
        live = conn.execute(select(func.count()).select_from(instances).where(instances.c.final == 0)).scalar_one()
        targets = list(conn.execute(select(instances.c.id).where(instances.c.final == 0, instances.c.state == "in_progress")
                                    .order_by(func.random()).limit(events)).scalars())
    submits, applies = [], []
    for i, instance in enumerate(targets):
        t0 = time.perf_counter()
        executor.submit_fire(instance, "answer", RECIPIENT, {"answer": f"Trả lời {i}"})
        t1 = time.perf_counter()
        _check(executor.apply_next())
        submits.append(t1 - t0)
        applies.append(time.perf_counter() - t1)
    store.dispose()
    return {"live": live, "rss_start": before, "rss_opened": opened, "rss_after": rss_mb(), "peak": peak_rss_mb(),
            "submit_ms": percentile(submits, 50) * 1000, "apply_ms": percentile(applies, 50) * 1000,
            "apply_p99_ms": percentile(applies, 99) * 1000, "events": len(applies)}


def run_probe(url: str, events: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--probe", url, "--probe-events", str(events)],
                          capture_output=True, text=True, timeout=170)
    if proc.returncode != 0:
        raise SystemExit(f"probe failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def seed(url: str, instances: int) -> tuple:
    """A store with `instances` real instances (through the executor) left in in_progress."""
    runner = ExecOnePerCommit(url)
    executor = runner.executor
    for n in range(instances):
        instance = None
        for kind, trigger, actor, values in script(n)[:3]:
            if kind == "start":
                instance = executor.submit_start(WORKFLOW, actor, values).instance
            else:
                executor.submit_fire(instance, trigger, actor, values)
            _check(executor.apply_next())
    return runner


def hundred_k(small_url: str, big_url: str, count: int, events: int, repeats: int = 2) -> tuple[list[dict], list[dict], float]:
    """Probes on a store with only seed instances and on one with `count` bulk instances more,
    alternated `repeats` times; returns (small probes, big probes, bulk insert seconds)."""
    from engine import clock

    seed(small_url, events * repeats).close()
    runner = seed(big_url, events * repeats)
    now = clock.now()
    t0 = time.perf_counter()
    bulk_instances(runner.store, runner.policy, count, state="in_progress", trigger="overdue", seq=3,
                   due_from=now + timedelta(days=1), due_to=now + timedelta(days=30))
    bulk = time.perf_counter() - t0
    runner.close()
    small, big = [], []
    for _ in range(repeats):
        small.append(run_probe(small_url, events))
        big.append(run_probe(big_url, events))
    return small, big, bulk


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per throughput measurement")
    parser.add_argument("--slice", type=float, default=0.8, help="seconds per runner per round")
    parser.add_argument("--only", choices=["throughput", "100k"], default=None)
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--profile", action="store_true", help="profile even when the aims are met")
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--probe-events", type=int, default=200, help="events applied by the 100k probe")
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(args.probe, args.probe_events)))
        return

    quiet_logs()
    print(environment())
    print(f"{args.rounds} interleaved rounds x {args.slice:g} s per runner; workload: {WORKFLOW} "
          "start/send/acknowledge/answer; engine logs off")
    use_pg = not args.no_pg and pg_available()
    if not args.no_pg and not use_pg:
        print(f"PostgreSQL not reachable at {PG_URL}: its rows are skipped")
    with tempfile.TemporaryDirectory(prefix="coopflow-bench-exec-") as tmp:
        tmp = Path(tmp)
        if args.only in (None, "throughput"):
            throughput(tmp, args, use_pg)
        if args.only in (None, "100k"):
            memory(tmp, args, use_pg)


def fmt(r: dict) -> str:
    return f"{r['rate']:,.0f} ({r['min']:,.0f}–{r['max']:,.0f})"


def throughput(tmp: Path, args, use_pg: bool) -> None:
    from contextlib import ExitStack

    def sqlite_url(name: str) -> str:
        return f"sqlite:///{tmp / name}"

    import inspect

    from engine.execution.executor import Executor

    group_commit = "batch" in inspect.signature(Executor.drain).parameters
    if not group_commit:
        print("this executor has no group commit (Executor.drain has no batch parameter): that row is skipped")
    with ExitStack() as stack:
        runners: dict[str, Runner] = {
            "exec_one": ExecOnePerCommit(sqlite_url("one.db")),
            "exec_batch": ExecBatched(sqlite_url("batch.db")),
            **({"exec_group": ExecBatched(sqlite_url("group.db"), group=BATCH)} if group_commit else {}),
            "exec_off": ExecOnePerCommit(sqlite_url("off.db"), durable=False),
            "raw3_1": RawSqlite3(tmp / "raw1.db"),
            "rawsa_1": RawSqlAlchemy(sqlite_url("rawsa1.db")),
            "raw3_100": RawSqlite3(tmp / "raw100.db", batch=BATCH),
            "rawsa_100": RawSqlAlchemy(sqlite_url("rawsa100.db"), batch=BATCH),
            "raw3_off": RawSqlite3(tmp / "rawoff.db", synchronous="OFF"),
        }
        if use_pg:
            schemas = [stack.enter_context(pg_schema()) for _ in range(5)]
            runners.update({
                "pg_exec_one": ExecOnePerCommit(schemas[0][0]),
                "pg_exec_batch": ExecBatched(schemas[1][0]),
                **({"pg_exec_group": ExecBatched(schemas[4][0], group=BATCH)} if group_commit else {}),
                "pg_raw_1": RawPsycopg(schemas[2][1], schemas[2][2]),
                "pg_raw_100": RawPsycopg(schemas[2][1], schemas[2][2], batch=BATCH),
                "pg_rawsa_1": RawSqlAlchemy(schemas[3][0]),
            })
        for runner in runners.values():  # warm-up: imports, caches, workflow versions
            runner.run(0.05)
        try:
            res = rounds(runners, args.rounds, args.slice)
        finally:
            for runner in runners.values():
                runner.close()

    r = res
    rows = [
        ["SQLite FULL", "executor, one event per commit (submit + apply in 1 tx)", fmt(r["exec_one"]), f"{r['exec_one']['cpu_ms']:.2f}",
         f"{fmt(r['raw3_1'])} sqlite3; {fmt(r['rawsa_1'])} SQLAlchemy", f"{r['raw3_1']['cpu_ms']:.3f} / {r['rawsa_1']['cpu_ms']:.3f}",
         f"{r['exec_one']['rate'] / r['raw3_1']['rate']:.0%} / {r['exec_one']['rate'] / r['rawsa_1']['rate']:.0%}"],
        ["SQLite FULL", f"executor, {BATCH} submitted in 1 tx, then applied 1 per tx", fmt(r["exec_batch"]), f"{r['exec_batch']['cpu_ms']:.2f}",
         f"{fmt(r['raw3_100'])} sqlite3; {fmt(r['rawsa_100'])} SQLAlchemy ({BATCH} per tx)",
         f"{r['raw3_100']['cpu_ms']:.3f} / {r['rawsa_100']['cpu_ms']:.3f}",
         f"{r['exec_batch']['rate'] / r['raw3_100']['rate']:.1%} / {r['exec_batch']['rate'] / r['rawsa_100']['rate']:.1%}"],
    ]
    if group_commit:
        rows.append(["SQLite FULL", f"executor, {BATCH} submitted in 1 tx, then drain(batch={BATCH}): group commit", fmt(r["exec_group"]),
                     f"{r['exec_group']['cpu_ms']:.2f}", f"{fmt(r['raw3_100'])} sqlite3; {fmt(r['rawsa_100'])} SQLAlchemy ({BATCH} per tx)",
                     f"{r['raw3_100']['cpu_ms']:.3f} / {r['rawsa_100']['cpu_ms']:.3f}",
                     f"{r['exec_group']['rate'] / r['raw3_100']['rate']:.1%} / {r['exec_group']['rate'] / r['rawsa_100']['rate']:.1%}"])
    rows += [
        ["SQLite OFF (not durable)", "executor, one event per commit", fmt(r["exec_off"]), f"{r['exec_off']['cpu_ms']:.2f}",
         f"{fmt(r['raw3_off'])} sqlite3", f"{r['raw3_off']['cpu_ms']:.3f}", f"{r['exec_off']['rate'] / r['raw3_off']['rate']:.1%}"],
    ]
    verdicts = [
        ("SQLite: one event per commit >= 50% of raw (sqlite3)", r["exec_one"]["rate"] / r["raw3_1"]["rate"]),
        ("SQLite: one event per commit >= 50% of raw (SQLAlchemy)", r["exec_one"]["rate"] / r["rawsa_1"]["rate"]),
    ]
    best_batched = max(r[k]["rate"] for k in ("exec_batch", "exec_group") if k in r)
    batched_ok = best_batched >= 10_000
    if use_pg:
        rows += [
            ["PostgreSQL", "executor, one event per commit (submit + apply in 1 tx)", fmt(r["pg_exec_one"]), f"{r['pg_exec_one']['cpu_ms']:.2f}",
             f"{fmt(r['pg_raw_1'])} psycopg; {fmt(r['pg_rawsa_1'])} SQLAlchemy", f"{r['pg_raw_1']['cpu_ms']:.3f} / {r['pg_rawsa_1']['cpu_ms']:.3f}",
             f"{r['pg_exec_one']['rate'] / r['pg_raw_1']['rate']:.0%} / {r['pg_exec_one']['rate'] / r['pg_rawsa_1']['rate']:.0%}"],
            ["PostgreSQL", f"executor, {BATCH} submitted in 1 tx, then applied 1 per tx", fmt(r["pg_exec_batch"]), f"{r['pg_exec_batch']['cpu_ms']:.2f}",
             f"{fmt(r['pg_raw_100'])} psycopg ({BATCH} per tx)", f"{r['pg_raw_100']['cpu_ms']:.3f}",
             f"{r['pg_exec_batch']['rate'] / r['pg_raw_100']['rate']:.1%}"],
        ]
        if group_commit:
            rows.append(["PostgreSQL", f"executor, {BATCH} submitted in 1 tx, then drain(batch={BATCH}): group commit", fmt(r["pg_exec_group"]),
                         f"{r['pg_exec_group']['cpu_ms']:.2f}", f"{fmt(r['pg_raw_100'])} psycopg ({BATCH} per tx)", f"{r['pg_raw_100']['cpu_ms']:.3f}",
                         f"{r['pg_exec_group']['rate'] / r['pg_raw_100']['rate']:.1%}"])
        verdicts.append(("PostgreSQL: one event per commit >= 50% of raw (psycopg)", r["pg_exec_one"]["rate"] / r["pg_raw_1"]["rate"]))
    print(table(["database", "mode", "events/s median (min–max)", "CPU ms/event (bench process)",
                 "raw limit, same rounds: tx/s or row pairs/s", "raw CPU ms/tx or /pair", "executor / raw"], rows))
    for label, ratio in verdicts:
        print(f"aim {label}: {'met' if ratio >= 0.5 else 'MISSED'} ({ratio:.0%})")
    print(f"aim SQLite batched >= 10,000 events/s: {'met' if batched_ok else 'MISSED'} (best batched mode {best_batched:,.0f}/s)")
    counts = statements_per_event(sqlite_url("count.db"))
    print(f"SQLite: per event the executor sends {counts['statements']:.1f} SQL statements in {counts['transactions']:.1f} "
          "transactions (submit + apply; the raw loop: 2 statements in 1)")
    if use_pg:
        with pg_schema() as (url, _, _):
            counts = statements_per_event(url)
        print(f"PostgreSQL: per event {counts['statements']:.1f} SQL statements in {counts['transactions']:.1f} transactions "
              "(plus one pool pre-ping round trip per transaction, not counted by the hook)")
    if args.profile or not batched_ok or not all(ratio >= 0.5 for _, ratio in verdicts):
        runner = ExecOnePerCommit(sqlite_url("prof.db"))
        runner.work(1e9, max_events=40)
        wall = time.perf_counter()
        done, report = profile(runner.work, 1e9, max_events=400, top=20, sorts=("tottime",))
        runner.close()
        print(f"\n--- cProfile: {done} events one per commit on SQLite FULL ({time.perf_counter() - wall:.2f} s under the profiler) ---")
        print(report)
        runner = ExecBatched(sqlite_url("prof_group.db"), group=BATCH if group_commit else 1)
        runner.work(0)
        wall = time.perf_counter()
        done, report = profile(runner.work, 1e9, max_events=1000, top=30)
        runner.close()
        print(f"--- cProfile: {done} events batched ({'group commit' if group_commit else 'one per tx'}) on SQLite FULL "
              f"({time.perf_counter() - wall:.2f} s under the profiler): where the CPU goes ---")
        print(report)


def memory(tmp: Path, args, use_pg: bool) -> None:
    rows, peaks = [], []

    def add(db: str, small: list[dict], big: list[dict], bulk: str) -> None:
        for label, probes in (("-", small), (bulk, big)):
            p = probes[-1]
            rows.append([db, f"{p['live']:,}", label, f"{p['rss_opened']:.0f}", f"{p['rss_after']:.0f}",
                         " / ".join(f"{q['peak']:.0f}" for q in probes), " / ".join(f"{q['submit_ms']:.1f}" for q in probes),
                         " / ".join(f"{q['apply_ms']:.1f}" for q in probes), " / ".join(f"{q['apply_p99_ms']:.1f}" for q in probes)])
        peaks.extend(q["peak"] for q in big)

    small, big, bulk = hundred_k(f"sqlite:///{tmp / 'small.db'}", f"sqlite:///{tmp / 'big.db'}", args.instances, args.probe_events)
    size = sum(f.stat().st_size for f in tmp.glob("big.db*")) / 1e6
    add("SQLite FULL", small, big, f"{bulk:.1f} s ({size:.0f} MB file)")
    if use_pg:
        with pg_schema() as (small_url, _, _), pg_schema() as (big_url, _, _):
            small, big, bulk = hundred_k(small_url, big_url, args.instances, args.probe_events)
            add("PostgreSQL", small, big, f"{bulk:.1f} s")
    print(f"probe: a fresh process opens the store and applies {args.probe_events} `answer` events on random live instances "
          "(submit tx + apply tx each); small and big stores probed alternately, twice")
    print(table(["database", "live instances", "bulk insert (instances + armed timers)", "RSS opened (MB)",
                 "RSS after the events (MB)", "peak RSS (VmHWM, MB), each probe", "submit median (ms)",
                 "apply median (ms)", "apply p99 (ms)"], rows))
    worst = max(peaks)
    print(f"aim {args.instances:,} instances in <= 300 MB RSS: {'met' if worst <= 300 else 'MISSED'} (peak {worst:.0f} MB)")


if __name__ == "__main__":
    main()
