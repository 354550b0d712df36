"""Benchmark: `coopflow simulate` over ten years of the shipped policy with 1,000 scripted events.

Generates an events file (YAML) of stories spread evenly over 2026-01-01 .. 2035-12-31:

* information_exchange answered: start (dic.focal_point), send, acknowledge (police.focal_point),
  answer — 4 events;
* information_exchange left unanswered: start, send, acknowledge — 3 events; its deadlines then
  run the escalation chain (overdue -> escalate -> emergency_review proposed by a rule -> consent
  lapses -> refer_to_ubnd);
* emergency_review held: start (dic.leader), agree by both leaders, finish, issue_conclusions,
  close — 6 events (the meeting itself starts by its 72-hour timer).

Stories are taken in turn (answered, answered, unanswered, emergency) until 1,000 events. The
simulator also fires the half-yearly periodic_review schedule (20 occurrences) and every deadline.

Runs the CLI end to end (table output, and --json), and the Simulator in-process. Reports wall
time, scripted events per second, and all simulated events (timeline entries) per second.
Aim (issue): < 5 s. A miss is profiled with cProfile (--profile forces it).

    /tmp/v/bin/python bench/simulate.py [--events 1000] [--years 10] [--profile]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import COOPFLOW, REPO, environment, profile, run_cmd, table  # noqa: E402

AIM_SECONDS = 5.0
TZ = "+07:00"
DIC_FOCAL, POLICE_FOCAL = "dic.focal_point:nguyen_van_a", "police.focal_point:nguyen_thi_b"
DIC_LEADER, POLICE_LEADER = "dic.leader:tran_van_binh", "police.leader:hoang_van_son"


def at(day: date, hour: int, minute: int = 0) -> str:
    return datetime(day.year, day.month, day.day, hour, minute).isoformat() + TZ


def story(kind: str, n: int, day: date) -> list[dict]:
    ref = f"s{n}"
    if kind in ("answered", "unanswered"):
        events = [
            {"at": at(day, 8, 30), "as": DIC_FOCAL, "start": "information_exchange", "ref": ref,
             "set": {"requester": "dic", "recipient": "police", "subject": f"Đề nghị cung cấp thông tin số {n}",
                     "dispatch_no": f"{n}/STTTT-BCVT"}},
            {"at": at(day, 9), "as": DIC_FOCAL, "fire": "send", "instance": ref},
            {"at": at(day, 14), "as": POLICE_FOCAL, "fire": "acknowledge", "instance": ref},
        ]
        if kind == "answered":
            events.append({"at": at(day + timedelta(days=1), 10), "as": POLICE_FOCAL, "fire": "answer", "instance": ref,
                           "set": {"answer": f"Công văn trả lời số {n}/CAT-ANM"}})
        return events
    return [
        {"at": at(day, 8), "as": DIC_LEADER, "start": "emergency_review", "ref": ref,
         "set": {"issue": f"Sự cố an ninh mạng số {n}", "proposed_by": "dic"}},
        {"at": at(day, 9), "as": DIC_LEADER, "fire": "agree", "instance": ref},
        {"at": at(day, 10), "as": POLICE_LEADER, "fire": "agree", "instance": ref},
        # convened at 10:00; the meeting starts by its 72-hour timer; finish the day after
        {"at": at(day + timedelta(days=4), 11), "as": DIC_LEADER, "fire": "finish", "instance": ref},
        {"at": at(day + timedelta(days=5), 15), "as": DIC_FOCAL, "fire": "issue_conclusions", "instance": ref,
         "set": {"conclusions": f"Thông báo kết luận số {n}"}},
        {"at": at(day + timedelta(days=20), 9), "as": POLICE_LEADER, "fire": "close", "instance": ref},
    ]


def generate(count: int, first: date, last: date) -> list[dict]:
    cycle = ["answered", "answered", "unanswered", "emergency"]
    sizes = {"answered": 4, "unanswered": 3, "emergency": 6}
    per_cycle = sum(sizes[k] for k in cycle)
    stories = -(-count * len(cycle) // per_cycle)  # enough stories, trimmed below
    step = (last - first).days / stories
    events: list[dict] = []
    for n in range(stories):
        day = first + timedelta(days=int(n * step))
        while day.weekday() >= 5:  # stories begin on a working day
            day += timedelta(days=1)
        events.extend(story(cycle[n % len(cycle)], n, day))
    return events[:count]


def run_cli(config: Path, start: str, end: str, events: Path, as_json: bool) -> tuple[float, float, str]:
    cmd = [COOPFLOW, "simulate", "-c", str(config), "--from", start, "--to", end, "--events", str(events)]
    if as_json:
        cmd.append("--json")
    wall, cpu, proc = run_cmd(cmd)
    if proc.returncode != 0:
        raise SystemExit(f"coopflow simulate failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, cpu, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    print(environment())
    first, last = date(2026, 1, 1), date(2026 + args.years - 1, 12, 31)
    start, end = first.isoformat(), last.isoformat()
    with tempfile.TemporaryDirectory(prefix="coopflow-bench-sim-") as tmp:
        tmp = Path(tmp)
        events = generate(args.events, first, last - timedelta(days=40))
        events_file = tmp / "events.yaml"
        import yaml

        events_file.write_text(yaml.safe_dump(events, allow_unicode=True, sort_keys=False), encoding="utf-8")
        config = REPO / "config.yaml"  # the simulator never opens the configured store
        print(f"{len(events)} scripted events ({Counter('start' if 'start' in e else e['fire'] for e in events).most_common()}) "
              f"from {start} to {end}")
        command = f"coopflow simulate --from {start} --to {end} --events events.yaml"

        t_json, c_json, out = run_cli(config, start, end, events_file, as_json=True)
        timeline = json.loads(out)
        t_table, c_table, _ = run_cli(config, start, end, events_file, as_json=False)

        from loguru import logger

        from engine.policy.loader import load_policy
        from engine.scheduling.simulate import Simulator, load_events

        logger.remove()
        policy = load_policy(config)
        scripted = load_events(events_file, policy)
        tz = policy.tz
        t0, c0 = time.perf_counter(), time.process_time()
        entries = Simulator(policy, datetime.combine(first, datetime.min.time(), tzinfo=tz),
                            datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=tz), scripted).run()
        t_sim, c_sim = time.perf_counter() - t0, time.process_time() - c0

    kinds = Counter(e["kind"] for e in timeline)
    outcomes = Counter(e["outcome"] for e in timeline)
    scripted_refused = [e for e in timeline if e["kind"] == "event" and e["outcome"] != "applied"]
    print(f"timeline: {len(timeline)} entries; by kind {dict(kinds)}; outcomes {dict(outcomes)}")
    if scripted_refused:
        print(f"scripted events refused: {len(scripted_refused)}; first: {scripted_refused[0]['instance']} "
              f"{scripted_refused[0]['trigger']}: {scripted_refused[0]['detail']}")
    rows = [
        [f"`{command} --json` (CLI, end to end)", f"{t_json:.2f}", f"{c_json:.2f}", f"{len(events) / t_json:,.0f}", f"{len(timeline) / t_json:,.0f}"],
        [f"`{command}` (CLI, table output)", f"{t_table:.2f}", f"{c_table:.2f}", f"{len(events) / t_table:,.0f}", f"{len(timeline) / t_table:,.0f}"],
        ["Simulator(...).run() in-process (policy loaded)", f"{t_sim:.2f}", f"{c_sim:.2f}", f"{len(events) / t_sim:,.0f}", f"{len(entries) / t_sim:,.0f}"],
    ]
    print(table(["run", "wall (s)", "CPU (s)", "scripted events/s (wall)", "simulated events (timeline entries)/s (wall)"], rows))
    worst = max(t_json, t_table)
    print(f"aim < {AIM_SECONDS:g} s: {'met' if worst < AIM_SECONDS else 'MISSED'} (CLI {worst:.2f} s)")
    if args.profile or worst >= AIM_SECONDS:
        from engine.policy.loader import load_policy

        policy = load_policy(config)
        with tempfile.TemporaryDirectory(prefix="coopflow-bench-sim-") as tmp:
            path = Path(tmp) / "events.yaml"
            path.write_text(yaml.safe_dump(events, allow_unicode=True, sort_keys=False), encoding="utf-8")
            scripted = load_events(path, policy)
        sim = Simulator(policy, datetime.combine(first, datetime.min.time(), tzinfo=tz),
                        datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=tz), scripted)
        _, report = profile(sim.run, top=30)
        print("\n--- cProfile of Simulator.run() ---")
        print(report)


if __name__ == "__main__":
    main()
