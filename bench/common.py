"""Shared helpers for the benchmarks: environment line, memory, timing, tmp policies, PG schemas.

Benchmarks are run by hand (`/tmp/v/bin/python bench/<name>.py`), never by pytest.
"""

from __future__ import annotations

import cProfile
import io
import os
import platform
import pstats
import resource
import secrets
import shutil
import sqlite3
import statistics
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
COOPFLOW = str(VENV_BIN / "coopflow")
PG_URL = os.environ.get("COOPFLOW_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def environment() -> str:
    """One line saying when, on what and with which versions the numbers were taken."""
    versions = []
    for dist in ("coopflow", "SQLAlchemy", "APScheduler", "pydantic", "psycopg", "PyYAML"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    versions.append(f"SQLite {sqlite3.sqlite_version}")
    try:
        import psycopg

        with psycopg.connect(PG_URL.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3) as conn:
            versions.append("PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0].split()[0])
    except Exception:  # PostgreSQL is optional for most benchmarks
        pass
    cores = os.cpu_count()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    versions.insert(0, f"commit {_git_state()}")
    return (f"{stamp}; {cores} cores; load average {load} (shared machine); Python {platform.python_version()}; "
            + ", ".join(versions))


def _git_state() -> str:
    """HEAD's short hash, and which engine files differ from it (others edit the tree meanwhile)."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "engine"], cwd=REPO, capture_output=True, text=True).stdout.split()
        changed = [d for d in dirty if d.endswith(".py")]
        return head + (f" + uncommitted {', '.join(Path(c).name for c in changed)}" if changed else "")
    except OSError:
        return "unknown"


def rss_mb(pid: int | str = "self") -> float:
    """Current resident set size (VmRSS) of a process in MiB, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak RSS (VmHWM) of a process in MiB, from /proc.

    Not ru_maxrss: that survives execve, so a child started by a big parent reports the parent's peak.
    """
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def stopwatch():
    """`with stopwatch() as t: ...` then `t()` gives the elapsed seconds (fixed at exit)."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def median(values) -> float:
    return statistics.median(values)


def percentile(values, p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def profile(fn, *args, top: int = 25, sorts: tuple[str, ...] = ("cumulative", "tottime"), **kwargs) -> tuple[object, str]:
    """Run fn under cProfile; returns (result, the top lines of the report for each sort order)."""
    prof = cProfile.Profile()
    result = prof.runcall(fn, *args, **kwargs)
    out = io.StringIO()
    for sort in sorts:
        out.write(f"--- sorted by {sort} ---\n")
        pstats.Stats(prof, stream=out).strip_dirs().sort_stats(sort).print_stats(top)
    return result, out.getvalue()


def compile_engine() -> None:
    """Compile coopflow's modules to bytecode, as installing a package does: with
    PYTHONDONTWRITEBYTECODE set (it is on the project machine) an editable install would compile
    every module a command imports from source on every run (~0.1-0.2 s of a local command)."""
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "engine"), quiet=1)


def copy_shipped_policy(dest: Path, store_url: str | None = None, shipped_logging: bool = False) -> Path:
    """Copy config.yaml, workflows/, rules/ and templates/ into dest; returns the config path.

    The copy's store is `store_url` (default: a SQLite file inside dest). Its logs go to the
    console only (WARNING), unless `shipped_logging`: then the shipped sinks (console INFO, text
    file and JSON lines, relative to dest, so never into the repo).
    """
    import re

    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "workflows", dest / "workflows")
    shutil.copytree(REPO / "rules", dest / "rules")
    shutil.copytree(REPO / "templates", dest / "templates")  # message templates, checked by `coopflow check`
    # edited as text: a YAML 1.1 round trip would turn the calendar's `off:` key into false
    text = (REPO / "config.yaml").read_text(encoding="utf-8")
    store = store_url or f"sqlite:///{dest / 'coopflow.db'}"
    text, n = re.subn(r"(?m)^store:.*$", lambda _: f"store: {store}", text)
    if n != 1:
        raise RuntimeError("config.yaml: expected one top-level 'store:' line")
    if not shipped_logging:
        text, n = re.subn(r"(?ms)^logging:\n.*?(?=^[^\s#])", "logging:\n  console:\n    level: WARNING\n\n", text)
        if n != 1:
            raise RuntimeError("config.yaml: expected one top-level 'logging:' section followed by another key")
    path = dest / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@contextmanager
def pg_schema(url: str = PG_URL):
    """A fresh PostgreSQL schema for the block; yields (sqlalchemy url, psycopg conninfo, name); dropped after."""
    import psycopg

    base = url.replace("postgresql+psycopg://", "postgresql://")
    name = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{name}", base, name
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def pg_available(url: str = PG_URL) -> bool:
    try:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3):
            return True
    except Exception:
        return False


def quiet_logs() -> None:
    """Keep the engine's per-event log lines out of the measurements (WARNING and up only)."""
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def bulk_instances(store, policy, count: int, state: str, trigger: str, seq: int, due_from, due_to,
                   workflow: str = "information_exchange", chunk: int = 5000, prefix: str = "bulk") -> list[tuple[str, str]]:
    """Insert `count` live instances of `workflow` in `state`, each with one armed timer firing `trigger`.

    A fast path that writes the executor's own tables (instances, timers, workflow_versions) the
    way the executor would after `seq` events; due times are spread evenly over [due_from, due_to).
    History and inbox rows of the earlier events are not written. Returns [(instance, timer id)].
    """
    import json

    from sqlalchemy import insert, select

    from engine import clock
    from engine.policy.versions import canonical_json, workflow_version
    from engine.rules.fields import defaults
    from engine.store.database import instances, timers, workflow_versions

    spec = policy.workflows[workflow]
    version = workflow_version(spec)
    now = clock.now()
    with store.transaction() as conn:
        if conn.execute(select(workflow_versions.c.version).where(workflow_versions.c.version == version)).first() is None:
            conn.execute(insert(workflow_versions).values(version=version, workflow=spec.id,
                                                          spec=json.loads(canonical_json(spec)), created_at=now))
    base = defaults(spec.fields)
    span = (due_to - due_from) / max(count, 1)
    made = []
    for start in range(0, count, chunk):
        rows, trows = [], []
        for i in range(start, min(count, start + chunk)):
            iid = f"{workflow}-{prefix}{i:07d}"
            fields = {**base, "requester": "dic", "recipient": "police", "subject": f"Yêu cầu số {i}", "dispatch_no": f"CV-{i}"}
            rows.append({"id": iid, "workflow": workflow, "version": version, "state": state, "fields": fields, "final": 0,
                         "seq": seq, "created_at": now, "updated_at": now, "state_entered_at": now})
            tid = f"{iid}:{seq}"
            trows.append({"id": tid, "instance": iid, "workflow": workflow, "state": state, "trigger": trigger,
                          "due_at": due_from + span * i, "status": "armed"})
            made.append((iid, tid))
        with store.transaction() as conn:
            conn.execute(insert(instances), rows)
            conn.execute(insert(timers), trows)
    return made


def run_cmd(cmd: list[str], timeout: float = 170, **kwargs):
    """Run a command to completion; returns (wall seconds, CPU seconds of the child, CompletedProcess)."""
    import subprocess

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc


# --------------------------------------------------------------------------- interleaved runners
# Each runner keeps its store or connection open; run(budget) works for about `budget` seconds.
# A benchmark interleaves its runners in rounds so that the machine's changing load (it is
# shared) hits them alike, and reports medians over the rounds.


class Runner:
    """work(budget) returns how many events it did; `part` (wall, CPU) is the share of it spent
    in the measured part alone, when a runner also does unmeasured set-up work (submitting)."""

    part = [0.0, 0.0]

    def run(self, budget: float) -> tuple[int, float, float, float, float]:
        """(events, wall s, CPU s, measured part's wall s, its CPU s)."""
        self.part = [0.0, 0.0]
        wall, cpu = time.perf_counter(), time.process_time()
        done = self.work(budget)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        part_wall, part_cpu = self.part if self.part[0] else (wall, cpu)
        return done, wall, cpu, part_wall, part_cpu

    @contextmanager
    def measured(self):
        """The part of `work` that counts as the measured part."""
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.part[0] += time.perf_counter() - wall
        self.part[1] += time.process_time() - cpu

    def work(self, budget: float) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


def rounds(runners: dict, count: int, slice_s: float) -> dict[str, dict]:
    """Run every runner `count` times for `slice_s`, order rotated each round; medians per runner:
    events/s (all, and of the measured part), CPU µs per event (all, and of the measured part)."""
    samples: dict[str, list] = {name: [] for name in runners}
    names = list(runners)
    for r in range(count):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            samples[name].append(runners[name].run(slice_s))
    out = {}
    for name, runs in samples.items():
        rates = [s[0] / s[1] for s in runs]
        part_rates = [s[0] / s[3] for s in runs]
        events = sum(s[0] for s in runs)
        out[name] = {"rate": median(rates), "min": min(rates), "max": max(rates),
                     "part_rate": median(part_rates), "part_min": min(part_rates), "part_max": max(part_rates),
                     "cpu_us": 1e6 * sum(s[2] for s in runs) / events, "part_cpu_us": 1e6 * sum(s[4] for s in runs) / events}
    return out
