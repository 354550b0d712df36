"""Benchmark: durable events applied per second through the Executor, beside the database's raw limit.

Workload: the shipped policy's `information_exchange` request, four events per instance — start
(dic.focal_point), send (arms a 1-working-day timer, notify), acknowledge (police.focal_point;
disarms, arms 5 working days), answer (final; disarms, notify + emit). Every event is checked to
be applied. Engine log lines are kept out (WARNING and up only).

Modes, each beside the raw database measured in the same rounds (bench/raw.py):

* one event per commit: `Executor.submit_*(..., apply=True)`: submitted and applied in one
  transaction; beside raw sqlite3's (psycopg's) bare commit rate and the same rows written by
  hand, one event per commit;
* group commit: 100 events submitted in one transaction (`inbox.submit`, not measured), then
  `drain(batch=100)`: up to 100 events decided in memory and written with one statement per
  table; beside the same rows written by hand with one executemany per table;
* per event: CPU µs of the benchmark process and SQL statements sent (hooks on the engine).

Then 100k live instances (bulk-inserted into the executor's tables, each with an armed timer): a
fresh process opens the store, applies events on random instances, and reports its RSS and the
time per event, beside the same probe on an empty store.

Aims (issue #9, item 6): group commit >= 5,000 events/s on SQLite and >= 3,000/s on PostgreSQL;
one event per commit >= 40% of raw sqlite3's commit rate; 100k instances in <= 300 MB RSS. A miss
is profiled with cProfile (--profile forces it).

    /tmp/v/bin/python bench/executor.py [--rounds 5] [--slice 0.8] [--only throughput|100k] [--no-pg] [--profile]
"""

from __future__ import annotations

import argparse
import io
import json
import pstats
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    PG_URL,
    REPO,
    Runner,
    bulk_instances,
    environment,
    peak_rss_mb,
    percentile,
    pg_available,
    pg_schema,
    profile,
    quiet_logs,
    rounds,
    rss_mb,
    table,
)
from raw import RawCommit, RawRows, psycopg_conn, sqlite3_conn  # noqa: E402

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


# --------------------------------------------------------------------------- runners (common.Runner)


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
    """100 events submitted in one transaction, then `Executor.drain(batch=100)` (group commit);
    the drain alone is the measured part."""

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
            with self.measured():
                applied = ex.drain(batch=BATCH)
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


# --------------------------------------------------------------------------- explanations


def statements_per_event(runner: Runner, events: int) -> float:
    """SQL statements the executor sends per event (its measured part only), counted by a hook."""
    from sqlalchemy import event

    counts = [0]
    counting = [False]

    @event.listens_for(runner.store.engine, "before_cursor_execute")
    def _count(conn, cursor, statement, params, context, executemany):
        counts[0] += counting[0]

    measured = runner.measured

    @contextmanager
    def counted():
        counting[0] = True
        with measured():
            yield
        counting[0] = False

    runner.measured = counted
    if not isinstance(runner, ExecBatched):
        counting[0] = True
    runner.part = [0.0, 0.0]
    done = runner.work(1e9, max_events=events)
    event.remove(runner.store.engine, "before_cursor_execute", _count)
    runner.measured = measured
    return counts[0] / done


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


def fmt(r: dict, part: bool = False) -> str:
    p = "part_" if part else ""
    return f"{r[p + 'rate']:,.0f} ({r[p + 'min']:,.0f}–{r[p + 'max']:,.0f})"


def throughput(tmp: Path, args, use_pg: bool) -> None:
    from contextlib import ExitStack

    with ExitStack() as stack:
        runners: dict[str, Runner] = {
            "one": ExecOnePerCommit(f"sqlite:///{tmp / 'one.db'}"),
            "group": ExecBatched(f"sqlite:///{tmp / 'group.db'}"),
            "commit": RawCommit(sqlite3_conn(tmp / "commit.db"), pg=False),
            "rows_1": RawRows(sqlite3_conn(tmp / "rows1.db"), pg=False),
            "rows_100": RawRows(sqlite3_conn(tmp / "rows100.db"), pg=False, batch=BATCH),
        }
        if use_pg:
            (one, _, _), (group, _, _), (_, info, schema), (_, _, schema100) = (stack.enter_context(pg_schema()) for _ in range(4))
            runners.update({
                "pg_one": ExecOnePerCommit(one), "pg_group": ExecBatched(group),
                "pg_commit": RawCommit(psycopg_conn(info, schema), pg=True),
                "pg_rows_1": RawRows(psycopg_conn(info, schema), pg=True),
                "pg_rows_100": RawRows(psycopg_conn(info, schema100), pg=True, batch=BATCH),
            })
        for runner in runners.values():  # warm-up: imports, caches, workflow versions
            runner.run(0.05)
        try:
            r = rounds(runners, args.rounds, args.slice)
            statements = {name: statements_per_event(runners[name], 400) for name in runners if name.endswith(("one", "group"))}
        finally:
            for runner in runners.values():
                runner.close()

    rows, verdicts = [], []
    for db, p, aim in (("SQLite (WAL, synchronous=FULL)", "", 5000), ("PostgreSQL", "pg_", 3000)):
        if p + "one" not in r:
            continue
        one, group, commit, rows_1, rows_100 = (r[p + k] for k in ("one", "group", "commit", "rows_1", "rows_100"))
        driver = "psycopg" if p else "sqlite3"
        rows += [
            [db, "one event per commit (submit + apply in 1 tx)", fmt(one), f"{one['cpu_us']:.0f}", f"{statements[p + 'one']:.1f}",
             f"{fmt(commit)} bare commits ({commit['cpu_us']:.0f} µs); {fmt(rows_1)} same rows ({driver}; {rows_1['cpu_us']:.0f} µs)",
             f"{one['rate'] / commit['rate']:.0%} / {one['rate'] / rows_1['rate']:.0%}"],
            [db, f"group commit: drain(batch={BATCH}) of {BATCH} submitted events", fmt(group, part=True),
             f"{group['part_cpu_us']:.0f}", f"{statements[p + 'group']:.2f}",
             f"{fmt(rows_100, part=True)} same rows, 1 executemany per table ({driver}; apply tx; {rows_100['part_cpu_us']:.0f} µs)",
             f"{group['part_rate'] / rows_100['part_rate']:.0%}"],
            [db, "  the same, with the submit tx (100 `inbox.submit`)", fmt(group), f"{group['cpu_us']:.0f}", "",
             f"{fmt(rows_100)} (submit tx + apply tx; {rows_100['cpu_us']:.0f} µs)", f"{group['rate'] / rows_100['rate']:.0%}"],
        ]
        verdicts.append((f"{db}: group commit >= {aim:,} events/s", group["part_rate"] >= aim, f"{group['part_rate']:,.0f}/s"))
        if not p:
            verdicts.append((f"{db}: one event per commit >= 40% of raw sqlite3's commit rate", one["rate"] >= 0.4 * commit["rate"],
                             f"{one['rate'] / commit['rate']:.0%}"))
    print(table(["database", "mode", "events/s median (min–max)", "CPU µs/event", "statements/event",
                 "raw, same rounds: events/s or commits/s (CPU µs each)", "executor / raw"], rows))
    for label, met, value in verdicts:
        print(f"aim {label}: {'met' if met else 'MISSED'} ({value})")
    if args.profile or not all(met for _, met, _ in verdicts):
        for name, runner, events in (("one event per commit", ExecOnePerCommit(f"sqlite:///{tmp / 'prof1.db'}"), 400),
                                     ("group commit, the drains alone", ExecBatched(f"sqlite:///{tmp / 'prof2.db'}"), 1000)):
            runner.work(0.0, max_events=40)
            done, report = profile_measured(runner, events)
            runner.close()
            print(f"\n--- cProfile: {done} events, {name}, SQLite FULL ---\n{report}")


def profile_measured(runner: Runner, events: int) -> tuple[int, str]:
    """cProfile of the runner's measured part only (for group commit: the drains, not the submits)."""
    import cProfile

    if not isinstance(runner, ExecBatched):
        return profile(runner.work, 1e9, max_events=events, top=25, sorts=("tottime", "cumulative"))
    prof, measured = cProfile.Profile(), runner.measured

    @contextmanager
    def inside():
        prof.enable()
        try:
            with measured():
                yield
        finally:
            prof.disable()

    runner.measured = inside
    done = runner.work(1e9, max_events=events)
    runner.measured = measured
    out = io.StringIO()
    for sort in ("tottime", "cumulative"):
        out.write(f"--- sorted by {sort} ---\n")
        pstats.Stats(prof, stream=out).strip_dirs().sort_stats(sort).print_stats(25)
    return done, out.getvalue()


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
