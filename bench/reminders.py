"""Benchmark: reminders and the daily digest (engine/notify) on SQLite, beside the raw library.

Builds N information_exchange requests through the Executor (start, send, acknowledge as police,
mark_complex: each arms a 15-working-day deadline with a 3-working-day reminder), then measures:

* `reminders.fire_due` with all N reminders due at once (what the daemon's timer job does after
  downtime): wall and CPU time, deliveries written (one per person who owes the next step);
* `digest.send_due` for the same N open instances (one digest per person, N tasks each);
* the raw library in the same run: SQLAlchemy Core inserting the same number of delivery rows
  (same JSON size) in one transaction, and sqlite3 `executemany` of the same rows.

    /tmp/v/bin/python bench/reminders.py [--instances 1000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, copy_shipped_policy, environment, quiet_logs, stopwatch, table  # noqa: E402

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def cpu() -> float:
    return time.process_time()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=1000)
    args = parser.parse_args()
    print(environment())
    quiet_logs()

    from sqlalchemy import insert

    from engine import clock
    from engine.execution.executor import Executor
    from engine.execution.runtime import Runtime
    from engine.notify import digest, reminders
    from engine.policy.loader import load_policy
    from engine.store.database import SqlStore, deliveries

    with tempfile.TemporaryDirectory(prefix="coopflow-bench-") as tmp:
        config = copy_shipped_policy(Path(tmp) / "policy")
        shutil.copytree(REPO / "templates", config.parent / "templates")
        text = config.read_text(encoding="utf-8").replace("  templates: templates", '  digest: {at: "07:30"}\n  templates: templates')
        config.write_text(text, encoding="utf-8")
        stepped = clock.SteppedClock(datetime(2025, 4, 11, 9, 0, tzinfo=TZ))
        clock.set_source(stepped.now)
        policy = load_policy(config)
        store = SqlStore(f"sqlite:///{tmp}/bench.db")
        rt = Runtime(policy, store, Executor(store, policy))
        request = {"requester": "dic", "recipient": "police", "subject": "Đề nghị cung cấp thông tin"}
        with stopwatch() as setup:
            for n in range(args.instances):
                sub = rt.executor.submit_start("information_exchange", "dic.focal_point", {**request, "subject": f"Yêu cầu {n}"})
                rt.executor.submit_fire(sub.instance, "send", "dic.focal_point", {"dispatch_no": f"{n}/STTTT"})
                rt.executor.submit_fire(sub.instance, "acknowledge", "police.focal_point:nguyen_thi_b")
                rt.executor.submit_fire(sub.instance, "mark_complex", "police.focal_point:nguyen_thi_b")
                if n % 100 == 99:
                    rt.settle()
            rt.settle()
        with store.reading() as conn:
            armed = len(reminders.armed(conn))
        before = _deliveries(store)

        moment = datetime(2025, 4, 29, 7, 30, tzinfo=TZ)  # every reminder is due (entered the same day)
        stepped.set(moment)
        c0 = cpu()
        with stopwatch() as fire_wall:
            fired = reminders.fire_due(store, policy, moment)
        fire_cpu = cpu() - c0
        written = _deliveries(store) - before

        c0 = cpu()
        with stopwatch() as digest_wall:
            people = digest.send_due(store, policy, moment)
        digest_cpu = cpu() - c0

        with store.reading() as conn:
            sample = conn.execute(deliveries.select().where(deliveries.c.kind == "remind").limit(1)).mappings().first()
        rows = [{k: v for k, v in dict(sample).items() if k != "id"} | {"key": f"raw:{i}"} for i in range(written)]
        raw = SqlStore(f"sqlite:///{tmp}/raw.db")
        with stopwatch() as sa_wall:
            with raw.transaction() as conn:
                conn.execute(insert(deliveries), rows)
        raw.dispose()
        lite = sqlite3.connect(f"{tmp}/raw3.db")
        lite.execute("CREATE TABLE d (key TEXT UNIQUE, recipient TEXT, address TEXT, message TEXT, status TEXT)")
        plain = [(r["key"], r["recipient"], r["address"], json.dumps(r["message"], ensure_ascii=False), "pending") for r in rows]
        with stopwatch() as lite_wall:
            with lite:
                lite.executemany("INSERT INTO d VALUES (?, ?, ?, ?, ?)", plain)
        lite.close()
        store.dispose()

    print(f"setup: {args.instances} requests through the Executor in {setup():.1f} s; {armed} reminders armed")
    print(table(["measured", "count", "wall", "CPU", "per item (wall)"], [
        ["reminders.fire_due, all due at once", f"{len(fired)} reminders -> {written} deliveries", f"{fire_wall():.2f} s",
         f"{fire_cpu:.2f} s", f"{fire_wall() / max(len(fired), 1) * 1000:.2f} ms/reminder"],
        ["digest.send_due", f"{people} people x {args.instances} tasks", f"{digest_wall():.2f} s", f"{digest_cpu:.2f} s",
         f"{digest_wall() / max(people or 1, 1) * 1000:.0f} ms/person"],
        ["raw: SQLAlchemy Core insert, one transaction", f"{written} rows", f"{sa_wall():.2f} s", "", ""],
        ["raw: sqlite3 executemany, one transaction", f"{written} rows", f"{lite_wall():.3f} s", "", ""],
    ]))


def _deliveries(store) -> int:
    from sqlalchemy import func, select

    from engine.store.database import deliveries

    with store.reading() as conn:
        return conn.execute(select(func.count()).select_from(deliveries)).scalar_one()


if __name__ == "__main__":
    main()
