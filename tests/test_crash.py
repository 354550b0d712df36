"""Durable execution under SIGKILL: no accepted event is lost or applied twice.

A worker process (tests/crash_worker.py) submits the start of one instance and EVENTS keyed fire
events that bounce it between two states, then applies them with Runtime.settle(). The test
SIGKILLs it once while it is still submitting and then again and again after random (seeded)
delays while it applies, restarts it each time (it re-submits the same keys and goes on
applying), lets a last run finish, and then checks the store: one inbox row per key, each applied
exactly once and in order, the instance's seq equal to the number of applied transitions, one
armed timer, and an intact history chain (`coopflow audit verify`).

To fit 25 restarts in a few seconds, the killed workers are forked by a launcher that has the
engine imported already (each opens the policy and the store afresh); the last run is a cold
start in a new interpreter.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from engine.store.database import SqlStore, history, inbox, instances, timers

WORKER = Path(__file__).with_name("crash_worker.py")
EVENTS = 1000
APPLY_KILLS = 24
TARGET = 20  # events a kill round should apply at most, on average
SEED = 20230403
LINE_TIMEOUT = 30.0

CONFIG = """\
agreement:
  id: crash
  title: Crash test
parties:
  a:
    title: Party A
    roles:
      leader: {}
  b:
    title: Party B
    roles:
      leader: {}
timezone: Asia/Ho_Chi_Minh
calendar:
  holidays: VN
store: sqlite:///crash.db
logging:
  console: {level: WARNING}
"""

WORKFLOW = """\
id: pingpong
title: Ping-pong
clause: "1"
started_by: [a.leader]
fields:
  label: {type: str, required: true}
  n: {type: int}
initial: ping
states:
  ping:
    title: Ping
    deadline: {days: 1, fire: timeout}
  pong:
    title: Pong
    deadline: {days: 1, fire: timeout}
transitions:
  - trigger: flip
    from: ping
    to: pong
    by: [a.leader]
    accepts: [n]
  - trigger: flop
    from: pong
    to: ping
    by: [b.leader]
    accepts: [n]
  - trigger: timeout
    from: [ping, pong]
    to: ping
    by: [system]
"""


class Launcher:
    """The worker launcher (crash_worker.py --serve): forks one worker per run; stdout read on a thread."""

    def __init__(self, config: Path):
        self.stderr = (config.parent / "worker.err").open("ab")
        self.proc = subprocess.Popen([sys.executable, str(WORKER), "--serve", str(config), str(EVENTS)],
                                     cwd=config.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        assert self.next_line() == "ready", self.error()
        self.pid = 0

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.strip():
                self.seen.append(line.strip())
                self.lines.put(line.strip())
        self.lines.put(None)

    def next_line(self, timeout: float = LINE_TIMEOUT) -> str | None:
        """The next output line (None at the launcher's end); fails when nothing comes for too long."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise AssertionError(f"worker silent for {timeout} s after {self.seen[-5:]}: {self.error()}") from None

    def start(self) -> None:
        """Start a fresh worker process."""
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        line = self.next_line()
        assert line is not None and line.startswith("pid "), f"{line!r}: {self.error()}"
        self.pid = int(line.split()[1])

    def read_until(self, wanted: str, count: int = 1) -> None:
        """Read the worker's output until the `count`-th line starting with `wanted`."""
        seen = 0
        while seen < count:
            line = self.next_line()
            assert line is not None and not line.startswith(("exit", "killed", "done")), \
                f"worker ended before {count} x {wanted!r} ({line!r}): {self.error()}"
            seen += line.startswith(wanted)

    def kill_after(self, seconds: float) -> bool:
        """SIGKILL the worker once `seconds` pass, unless it ends first; True when the kill ended it."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None or line.startswith(("exit", "killed")):
                self.pid = 0
                return False
        os.kill(self.pid, signal.SIGKILL)
        return self.wait_end() == f"killed {int(signal.SIGKILL)}"

    def stop(self) -> None:
        """After a failure: kill the worker (if one runs) and the launcher."""
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.pid = 0
        self.proc.kill()
        self.proc.wait(timeout=LINE_TIMEOUT)

    def wait_end(self) -> str | None:
        """Read up to the launcher's report on how the worker ended."""
        while True:
            line = self.next_line()
            if line is None or line.startswith(("exit", "killed")):
                self.pid = 0
                return line

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=LINE_TIMEOUT)
        self.proc.stdout.close()
        self.stderr.close()

    def error(self) -> str:
        self.stderr.flush()
        return Path(self.stderr.name).read_text(errors="replace")[-3000:]


def _counts(store: SqlStore) -> Counter:
    with store.reading() as conn:
        return Counter(dict(conn.execute(select(inbox.c.status, func.count()).group_by(inbox.c.status)).all()))


def test_no_event_lost_or_applied_twice_under_sigkill(tmp_path: Path) -> None:
    """SIGKILLing the worker 25 times (once mid-submit, then mid-apply) loses no accepted event and applies none twice."""
    (tmp_path / "workflows").mkdir()
    (tmp_path / "rules").mkdir()
    (tmp_path / "workflows" / "pingpong.yaml").write_text(WORKFLOW, encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    rng = random.Random(SEED)

    launcher = Launcher(config)
    try:
        # Round 0: killed while submitting (after the first chunk committed, during the next ones).
        launcher.start()
        launcher.read_until("submitted")
        assert launcher.kill_after(0.0), launcher.error()
        store = SqlStore(f"sqlite:///{tmp_path / 'crash.db'}")
        submitted_before = sum(_counts(store).values())
        assert 0 < submitted_before < EVENTS + 1, "the first kill should land between submission chunks"
        kills, applied_seen = 1, []

        # Rounds 1..APPLY_KILLS: restarted, killed after a random delay once it starts applying.
        # The delays are drawn from [0.2, 1] x `cap`; `cap` adapts to the engine's speed (one event
        # per transaction, or a batch of them per transaction) so that each round applies about
        # TARGET events at most and work is left for every round.
        cap, before = 0.03, 0
        for _ in range(APPLY_KILLS):
            launcher.start()
            launcher.read_until("draining")
            assert launcher.kill_after(rng.uniform(0.2, 1.0) * cap), f"worker ended on its own: {launcher.error()}"
            kills += 1
            counts = _counts(store)
            assert counts["pending"] > 0, "every kill must land while events are still waiting to be applied"
            assert sum(counts.values()) == EVENTS + 1, "a restarted worker re-submits the same keys, adding nothing"
            applied_seen.append(counts["applied"])
            cap = min(max(cap * (0.5 if counts["applied"] - before > TARGET else 1.25), 0.002), 0.5)
            before = counts["applied"]
    except BaseException:
        launcher.stop()
        raise
    launcher.close()

    assert kills >= 20
    assert applied_seen == sorted(applied_seen), "what was applied stays applied"
    assert applied_seen[-1] > 0, "some kills landed after part of the work was committed"

    # The last run, a cold start in a new interpreter, finishes the work.
    last = subprocess.run([sys.executable, str(WORKER), str(config), str(EVENTS)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert last.returncode == 0 and last.stdout.splitlines()[-1] == "done", last.stderr

    with store.reading() as conn:
        rows = conn.execute(select(inbox.c.id, inbox.c.key, inbox.c.status, inbox.c.outcome)).all()
        keys = Counter(r.key for r in rows)
        per_inbox = Counter(conn.execute(select(history.c.inbox_id)).scalars())
        trail = conn.execute(select(history.c.inbox_id, history.c.trigger, history.c.to_state, history.c.data)
                             .where(history.c.instance == "pingpong-crash").order_by(history.c.seq)).all()
        instance = conn.execute(select(instances).where(instances.c.id == "pingpong-crash")).mappings().one()
        timer_states = Counter(conn.execute(select(timers.c.status).where(timers.c.instance == "pingpong-crash")).scalars())
    store.dispose()

    expected_keys = {"start"} | {f"ev-{i}" for i in range(EVENTS)}
    assert set(keys) == expected_keys and set(keys.values()) == {1}, "exactly one inbox row per submitted key"
    not_applied = [(r.key, r.status, r.outcome) for r in rows if r.status != "applied"]
    assert not_applied == [], "every accepted event is applied (none lost, none refused as a replay)"
    assert per_inbox == Counter({r.id: 1 for r in rows}), "each inbox row has exactly one history row"
    assert [t.inbox_id for t in trail] == sorted(r.id for r in rows), "applied in submission order"
    assert [t.data.get("set", {}).get("n") for t in trail[1:]] == list(range(EVENTS))
    assert [t.trigger for t in trail[1:]] == ["flip" if i % 2 == 0 else "flop" for i in range(EVENTS)]
    assert instance["seq"] == len(trail) == EVENTS + 1, "the instance's seq counts each applied transition once"
    assert instance["state"] == "ping"
    assert timer_states == Counter({"armed": 1, "disarmed": EVENTS}), "one deadline armed, every earlier one disarmed"

    verify = subprocess.run([sys.executable, "-m", "engine", "audit", "verify", "-c", str(config)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith(f"ok: {EVENTS + 1} history rows, chain intact; "), verify.stdout
