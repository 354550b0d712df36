"""`coopflow report` on a store with 1M history rows: time and peak memory, beside raw SQL reading the same rows.

    /tmp/v/bin/python bench/report.py [--rows 1000000] [--profile]

Aim (issue #14): the figures of one report over 1M history rows in ≤ 10 s and ≤ 200 MB RSS.

The store is built once in a temporary directory: three real lifecycles are played through the
executor under a stepped clock (a request answered in time, one answered late after two deadline
transitions, an emergency meeting agreed, held and closed: 16 applied history rows), and their rows
are cloned with new instance ids, shifted in time, from the agreement's start (April 2023) to
November 2026, until the history holds `--rows` rows. The clones are written straight into the
history table (their hashes are not chained: `audit verify` is not what is measured). Then, each in
a fresh process, in this order:

* raw: Python's sqlite3 reads the rows the report reads (applied, before the period's end, by seq),
  with and without parsing each row's JSON `data`;
* report: `coopflow report --period 2026H2 --format md` end to end (loads the policy, streams every
  row before 1 January 2027, lists the period's requests).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import COOPFLOW, copy_shipped_policy, environment, peak_rss_mb, quiet_logs  # noqa: E402

FIRST = datetime(2023, 4, 3, 1, 0, tzinfo=UTC)
LAST = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
END = "2027-01-01 00:00:00"  # past the end of 2026H2 (2026-12-31 17:00 UTC); every cloned row is before it
COLUMNS = "seq, instance, inbox_id, at, kind, workflow, trigger, from_state, to_state, actor, outcome, reason, data, prev_hash, hash"


def play_templates(config: Path, db: Path) -> None:
    """The three lifecycles through the real executor, deadlines firing at their due instant."""
    from engine import clock
    from engine.execution.executor import Executor
    from engine.execution.runtime import Runtime
    from engine.policy.loader import load_policy
    from engine.scheduling import timers
    from engine.store.database import SqlStore

    quiet_logs()
    policy = load_policy(config)
    store = SqlStore(f"sqlite:///{db}")
    runtime = Runtime(policy, store, Executor(store, policy))
    stepped = clock.SteppedClock(datetime.fromisoformat("2027-01-04T08:00+07:00"))

    def until(moment: str) -> None:
        target = datetime.fromisoformat(moment)
        while True:
            with store.reading() as conn:
                due = timers.armed(conn, due_before=target)
            if not due:
                break
            stepped.set(max(due[0].due_at, stepped.now()))
            with store.transaction() as conn:
                timers.submit_due(conn, due[0].id)
            runtime.settle()
        stepped.set(target)
        runtime.settle()

    def start(moment, workflow, actor, **values):
        until(moment)
        sub = runtime.executor.submit_start(workflow, actor, values)
        runtime.settle()
        return sub.instance

    def fire(moment, instance, trigger, actor, **values):
        until(moment)
        runtime.executor.submit_fire(instance, trigger, actor, values)
        runtime.settle()

    with clock.using(stepped.now):
        a = start("2027-01-04T09:00+07:00", "information_exchange", "dic.focal_point", requester="dic", recipient="police",
                  subject="Danh sách thuê bao")
        fire("2027-01-04T10:00+07:00", a, "send", "dic.focal_point", dispatch_no="101/STTTT")
        fire("2027-01-05T14:00+07:00", a, "acknowledge", "police.focal_point")
        fire("2027-01-07T16:00+07:00", a, "answer", "police.focal_point", answer="Công văn 55/CAT")
        b = start("2027-01-04T09:30+07:00", "information_exchange", "police.focal_point", requester="police",
                  recipient="dic", subject="Tài khoản giả mạo")
        fire("2027-01-04T09:40+07:00", b, "send", "police.focal_point", dispatch_no="31/CAT")
        until("2027-01-13T12:00+07:00")  # deemed received, then overdue
        fire("2027-01-13T15:00+07:00", b, "answer", "dic.focal_point", answer="Công văn 210/STTTT")
        c = start("2027-01-04T11:00+07:00", "emergency_review", "police.leader", issue="Sự cố", proposed_by="police")
        fire("2027-01-04T12:00+07:00", c, "agree", "police.leader")
        fire("2027-01-04T13:00+07:00", c, "agree", "dic.leader", meeting_at="2027-01-06T14:00+07:00")
        fire("2027-01-06T16:00+07:00", c, "finish", "dic.focal_point")
        fire("2027-01-07T09:00+07:00", c, "issue_conclusions", "police.focal_point", conclusions="TB 12/KL")
        fire("2027-01-07T10:00+07:00", c, "close", "dic.leader")
    store.dispose()


def _shift_iso(text: str, delta: timedelta) -> str:
    return (datetime.fromisoformat(text) + delta).isoformat()


def clone(db: Path, rows_wanted: int) -> int:
    """Copy the template rows until the history holds `rows_wanted` rows; returns the count."""
    conn = sqlite3.connect(db)
    template = conn.execute(f"SELECT {COLUMNS} FROM history WHERE outcome = 'applied' ORDER BY seq").fetchall()
    ids = sorted({r[1] for r in template})
    conn.execute("DELETE FROM history")
    units = max(1, rows_wanted // len(template))
    step = (LAST - FIRST) / units
    base = datetime.fromisoformat(template[0][3]).replace(tzinfo=UTC)
    parsed = [(r, json.loads(r[12])) for r in template]
    seq, batch = 0, []
    for u in range(units):
        delta = FIRST + step * u - base
        for row, data in parsed:
            seq += 1
            at = (datetime.fromisoformat(row[3]).replace(tzinfo=UTC) + delta).strftime("%Y-%m-%d %H:%M:%S.%f")
            shifted = dict(data)
            if "due_at" in data:
                shifted["due_at"] = _shift_iso(data["due_at"], delta)
            audit = data.get("audit")
            if audit and "timer" in audit:
                shifted["audit"] = {**audit, "timer": {**audit["timer"], "due_at": _shift_iso(audit["timer"]["due_at"], delta)}}
            text = json.dumps(shifted, ensure_ascii=False)
            instance = row[1]
            for i, old in enumerate(ids):
                text = text.replace(old, f"{old.split('-')[0]}-u{u:07d}{i}")
            instance = f"{instance.split('-')[0]}-u{u:07d}{ids.index(instance)}"
            batch.append((seq, instance, row[2], at, *row[4:12], text, row[13], row[14]))
        if len(batch) >= 20000:
            conn.executemany(f"INSERT INTO history ({COLUMNS}) VALUES ({', '.join('?' * 15)})", batch)
            batch.clear()
    conn.executemany(f"INSERT INTO history ({COLUMNS}) VALUES ({', '.join('?' * 15)})", batch)
    conn.execute("UPDATE coopflow_meta SET value = ? WHERE key = 'history_head'", (f"{seq}:{'0' * 64}",))
    conn.commit()
    conn.close()
    return seq


RAW = """
import json, resource, sqlite3, sys, time
t0 = time.perf_counter(); c0 = time.process_time()
conn = sqlite3.connect(sys.argv[1])
n = 0
for row in conn.execute("SELECT instance, at, kind, workflow, trigger, from_state, to_state, actor, data FROM history "
                        "WHERE outcome = 'applied' AND at < ? ORDER BY seq", (sys.argv[2],)):
    if sys.argv[3] == "json":
        json.loads(row[8])
    n += 1
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(n, f"{wall:.2f}", f"{cpu:.2f}", int(peak) // 1024)
"""


def measure_raw(db: Path, parse: bool) -> tuple[int, float, float, int]:
    out = subprocess.run([sys.executable, "-c", RAW, str(db), END, "json" if parse else "plain"],
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), float(out[1]), float(out[2]), int(out[3])


def measure_report(config: Path, out: Path, profile: bool) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of `coopflow report` in its own process."""
    args = [COOPFLOW, "report", "--period", "2026H2", "--format", "md", "-o", str(out), "-c", str(config)]
    if profile:
        args = [sys.executable, "-m", "cProfile", "-s", "cumulative", *args]
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE if profile else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    while proc.poll() is None:
        try:
            peak = max(peak, peak_rss_mb(proc.pid))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.05)
    wall = time.perf_counter() - started
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"coopflow report failed: {stderr[-2000:]}")
    if profile:
        print("\n".join(stdout.splitlines()[:60]))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # this child's CPU alone: the difference
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top of the report run")
    parser.add_argument("--keep", metavar="DIR", help="build the store in DIR and keep it (default: a temporary folder)")
    args = parser.parse_args()
    print(environment())
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        root = Path(args.keep or tmp)
        db = root / "coopflow.db"
        config = copy_shipped_policy(root / "policy", f"sqlite:///{db}")
        play_templates(config, db)
        t0 = time.perf_counter()
        rows = clone(db, args.rows)
        print(f"store: {rows:,} history rows ({db.stat().st_size / 2**20:.0f} MiB SQLite file), built in "
              f"{time.perf_counter() - t0:.0f} s")
        raw_rows, raw_wall, raw_cpu, raw_peak = measure_raw(db, parse=False)
        json_rows, json_wall, json_cpu, json_peak = measure_raw(db, parse=True)
        wall, cpu, peak = measure_report(config, root / "report.md", args.profile)
        lines = (root / "report.md").read_text(encoding="utf-8").count("\n")
        print(f"| reader | rows | wall s | CPU s | peak RSS MiB |\n|---|---:|---:|---:|---:|\n"
              f"| sqlite3, rows only | {raw_rows:,} | {raw_wall:.2f} | {raw_cpu:.2f} | {raw_peak} |\n"
              f"| sqlite3 + json.loads(data) | {json_rows:,} | {json_wall:.2f} | {json_cpu:.2f} | {json_peak} |\n"
              f"| coopflow report --period 2026H2 (end to end) | {raw_rows:,} | {wall:.2f} | {cpu:.2f} | {peak:.0f} |")
        print(f"report: {lines:,} lines of Markdown; aim ≤ 10 s and ≤ 200 MB: "
              f"{'met' if wall <= 10 and peak <= 200 else 'MISSED'}")


if __name__ == "__main__":
    main()
