"""Drills (issue #8, part 5): a drill clock never runs on a store with real history, and every
process of a drill sees the same now (COOPFLOW_CLOCK_START=VIRTUAL@REAL)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import copy_shipped_policy
from test_daemon import START_TIMEOUT, base_env, spawn  # noqa: F401  (spawn is a fixture)
from test_files_and_faults import ADVISORY, assert_refused, cli

VIRTUAL = "2027-06-01T08:00:00+07:00"


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    return copy_shipped_policy(tmp_path / "policy")


def test_drill_daemon_refuses_a_store_with_real_history(policy: Path, spawn) -> None:  # noqa: F811
    """A production store (real daemon ran, an event applied): a drill daemon exits 1 without taking the
    lease; with COOPFLOW_DRILL=allow-real-store (a copy) it runs."""
    env = base_env(f"sqlite:///{policy.parent / 'coopflow.db'}")
    real = spawn(policy, env, "real")
    real.wait_log(r"leader lease taken")
    assert cli(policy, env, "start", *ADVISORY).returncode == 0
    assert real.stop() == 0
    drill = spawn(policy, {**env, "COOPFLOW_CLOCK_START": VIRTUAL}, "drill")
    assert drill.proc.wait(timeout=START_TIMEOUT) == 1, drill.tail()
    assert re.search(r"unavailable to a drill: it holds history written by the real clock", drill.log())
    assert "leader lease taken" not in drill.log() and "Traceback" not in drill.log()
    assert_refused(cli(policy, {**env, "COOPFLOW_CLOCK_START": VIRTUAL}, "status"), r"written by the real clock")
    allowed = spawn(policy, {**env, "COOPFLOW_CLOCK_START": VIRTUAL, "COOPFLOW_DRILL": "allow-real-store"}, "copy")
    allowed.wait_log(r"leader lease taken")
    assert allowed.stop() == 0


def test_drill_on_a_fresh_store_stays_a_drill_store(policy: Path) -> None:
    """A store created under a drill clock keeps accepting drills (and the CLI's events)."""
    env = base_env(f"sqlite:///{policy.parent / 'drill.db'}", COOPFLOW_CLOCK_START=VIRTUAL)
    assert cli(policy, env, "init").returncode == 0
    assert cli(policy, env, "start", *ADVISORY).returncode == 0
    assert cli(policy, env, "status").returncode == 0


def now_in(env: dict[str, str]) -> datetime:
    done = subprocess.run([sys.executable, "-c", "from engine import clock; print(clock.now().isoformat())"],
                          env=env, capture_output=True, text=True, timeout=60, check=True)
    return datetime.fromisoformat(done.stdout.strip())


def test_two_drill_processes_see_the_same_now(tmp_path: Path) -> None:
    """Two processes started 2 s apart with the same VIRTUAL@REAL read the same instant (to the
    time between the reads); with VIRTUAL alone, each process's clock started at its own start."""
    anchor = datetime.now(UTC).isoformat()
    shared = base_env("sqlite:///unused", COOPFLOW_CLOCK_START=f"{VIRTUAL}@{anchor}")
    first, read_first = now_in(shared), time.time()
    time.sleep(2)
    second, read_second = now_in(shared), time.time()
    drift = (second - first).total_seconds() - (read_second - read_first)
    assert abs(drift) < 0.5, drift
    assert first >= datetime.fromisoformat(VIRTUAL)
    alone = base_env("sqlite:///unused", COOPFLOW_CLOCK_START=VIRTUAL)
    a = now_in(alone)
    time.sleep(2)
    b = now_in(alone)
    assert abs((b - a).total_seconds()) < 1.5  # each started at VIRTUAL: the 2 s between them are lost


def test_bad_anchor_is_a_clear_error(policy: Path) -> None:
    env = base_env(f"sqlite:///{policy.parent / 'drill.db'}", COOPFLOW_CLOCK_START=f"{VIRTUAL}@yesterday")
    assert_refused(cli(policy, env, "run"), r"COOPFLOW_CLOCK_START anchor \(after @\) is not an ISO 8601 datetime")
