"""`coopflow simulate`: the shipped policy played against a virtual clock, through the command line.

The simulator runs in a child process (it silences the process-wide logger), on a private copy
of the shipped policy whose store is a tmp SQLite file that must come out untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import REPO_ROOT, copy_shipped_policy

from engine.execution.executor import Executor
from engine.execution.runtime import Runtime
from engine.policy.loader import load_policy
from engine.store.database import SqlStore

ENV = {k: v for k, v in os.environ.items() if not k.startswith("COOPFLOW_")}


def simulate(config: Path, *args: str | Path) -> subprocess.CompletedProcess:
    """Run `coopflow simulate -c CONFIG ARGS` in a child process (the console script's entry point)."""
    return subprocess.run([sys.executable, "-m", "engine", "simulate", "-c", str(config), *map(str, args)],
                          capture_output=True, text=True, encoding="utf-8", env=ENV, cwd=config.parent, timeout=120)


def point_store(config: Path, db: Path) -> Path:
    """Make the policy copy's store the SQLite file `db`."""
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("store: sqlite:///coopflow.db", f"store: sqlite:///{db}"), encoding="utf-8")
    assert f"sqlite:///{db}" in config.read_text(encoding="utf-8")
    return config


def store_files(folder: Path) -> dict[str, str]:
    """sha256 of every file of the store's folder (the database and any -wal / -shm beside it)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def real_store(tmp_path_factory) -> tuple[Path, Path]:
    """A policy copy whose store (in its own folder) already holds an applied instance: (config, store folder)."""
    root = tmp_path_factory.mktemp("sim-real")
    folder = root / "data"
    folder.mkdir()
    config = point_store(copy_shipped_policy(root / "policy"), folder / "real.db")
    policy = load_policy(config)
    store = SqlStore(f"sqlite:///{folder / 'real.db'}")
    runtime = Runtime(policy, store, Executor(store, policy))
    try:
        runtime.executor.submit_start("information_exchange", "dic.focal_point",
                                      {"requester": "dic", "recipient": "police", "subject": "dữ liệu thật"})
        assert runtime.executor.drain() == 1
    finally:
        runtime.store.dispose()
    return config, folder


@pytest.fixture(scope="module")
def four_years(real_store) -> tuple[list[dict], dict[str, str], dict[str, str]]:
    """The 2027–2030 timeline as JSON, with the real store's checksums before and after the run."""
    config, folder = real_store
    before = store_files(folder)
    done = simulate(config, "--from", "2027-01-01", "--to", "2030-12-31", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), before, store_files(folder)


def test_eight_periodic_reviews_in_june_and_december_on_working_days(four_years):
    """2027–2030 holds exactly eight review starts, each in June or December on a working day at 08:00."""
    timeline, _, _ = four_years
    policy = load_policy(REPO_ROOT / "config.yaml")
    reviews = [e for e in timeline if e["kind"] == "schedule"]
    assert len(reviews) == 8
    for e in reviews:
        at = datetime.fromisoformat(e["at"]).astimezone(policy.tz)
        assert at.month in (6, 12) and (at.hour, at.minute) == (8, 0)
        assert policy.calendar.is_working_day(at.date()), e["at"]
        assert e["workflow"] == "periodic_review" and e["outcome"] == "applied" and e["trigger"] is None
    assert [(datetime.fromisoformat(e["at"]).year, datetime.fromisoformat(e["at"]).month) for e in reviews] == [
        (y, m) for y in range(2027, 2031) for m in (6, 12)]
    # The first working day of the month: 1 June 2027 is a Tuesday, 1 December 2029 a Saturday.
    assert reviews[0]["at"] == "2027-06-01T08:00:00+07:00"
    assert reviews[5]["at"] == "2029-12-03T08:00:00+07:00"


def test_review_hosts_alternate(four_years):
    """The host of the eight reviews alternates dic, police, dic, … from the first one."""
    timeline, _, _ = four_years
    assert [e["host"] for e in timeline if e["kind"] == "schedule"] == ["dic", "police"] * 4


def test_json_entries_carry_the_documented_keys(four_years):
    """Every --json entry has at (ISO 8601 with the policy's offset), kind, workflow, instance, trigger, outcome."""
    timeline, _, _ = four_years
    assert timeline
    for e in timeline:
        assert {"at", "kind", "workflow", "instance", "trigger", "outcome"} <= set(e)
        assert datetime.fromisoformat(e["at"]).utcoffset() is not None and e["at"].endswith("+07:00")
        assert e["kind"] in {"schedule", "deadline", "rule", "event", "action", "message"}
        if e["kind"] == "schedule":
            assert e["host"] in {"dic", "police"}
    # No scripted events and no rule in the shipped policy starts anything by itself in 2027–2030
    # except the schedules and the deadlines they lead to.
    assert {e["kind"] for e in timeline} - {"message"} == {"schedule", "deadline"}


def test_simulate_leaves_the_real_store_untouched(four_years):
    """The real store's files (with data in them) are byte-identical after a simulation."""
    _, before, after = four_years
    assert before and "real.db" in before
    assert after == before


OVERDUE_REQUEST = """\
- at: 2027-03-01T09:00:00+07:00
  as: dic.focal_point
  start: information_exchange
  ref: request
  set: {requester: dic, recipient: police, subject: "Danh sách thuê bao di động trả trước"}
- at: 2027-03-01T10:30:00+07:00
  as: dic.focal_point
  fire: send
  instance: request
  set: {dispatch_no: "125/STTTT-BCVT"}
"""


def test_overdue_request_escalates_and_proposes_an_emergency_review(tmp_path):
    """A request nobody answers is deemed received, goes overdue, escalates and proposes an emergency review,
    on the working days the policy's calendar gives; no store file is created where none existed."""
    config = point_store(copy_shipped_policy(tmp_path / "policy"), tmp_path / "absent" / "never.db")
    (tmp_path / "absent").mkdir()
    events = tmp_path / "events.yaml"
    events.write_text(OVERDUE_REQUEST, encoding="utf-8")
    done = simulate(config, "--from", "2027-01-01", "--to", "2027-06-30", "--events", events, "--json")
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "absent").iterdir()) == []
    timeline = json.loads(done.stdout)

    policy = load_policy(config)
    cal = policy.calendar
    sent = datetime.fromisoformat("2027-03-01T10:30:00+07:00")
    deemed = cal.add_working_days(sent, 1)       # sent: 1 working day to acknowledge
    overdue = cal.add_working_days(deemed, 5)    # in_progress: 5 working days to answer
    escalated = cal.add_working_days(overdue, 2)  # overdue: 2 working days before the leaders are told

    request = next(e["instance"] for e in timeline if e["kind"] == "event" and e["trigger"] is None)
    mine = [e for e in timeline if e["instance"] == request]
    fired = {e["trigger"]: e for e in mine if e["kind"] == "deadline"}
    assert datetime.fromisoformat(fired["deemed_received"]["at"]) == deemed
    assert datetime.fromisoformat(fired["overdue"]["at"]) == overdue
    assert fired["escalate"]["outcome"] == "applied" and fired["escalate"]["to"] == "escalated"
    assert datetime.fromisoformat(fired["escalate"]["at"]) == escalated

    proposals = [e for e in timeline if e["kind"] == "rule" and e["workflow"] == "emergency_review" and e["trigger"] is None]
    assert len(proposals) == 1
    proposal = proposals[0]
    assert proposal["rule"] == "propose_emergency_review" and proposal["cause"] == request
    assert proposal["outcome"] == "applied" and proposal["to"] == "proposed"
    assert datetime.fromisoformat(proposal["at"]) == escalated
    # Deadlines in working days end at midnight closing a working day: the escalation's day is one.
    assert cal.is_working_day((escalated.astimezone(policy.tz) - timedelta(microseconds=1)).date())


BAD_EVENTS = {
    "not-a-list": ("start: information_exchange\n", "expected a list of events"),
    "missing-actor": ("- {at: 2027-03-01, start: information_exchange}\n", "event 1 as"),
    "start-and-fire": ("- {at: 2027-03-01, as: dic.leader, start: advisory, fire: send, instance: x}\n",
                       "give exactly one of start"),
    "bad-yaml": ("- at: [2027-03-01\n", "events.yaml:2:1: did not find expected ',' or ']'"),
    "bad-date": ("- {at: someday, as: dic.leader, start: advisory}\n", "event 1 at"),
}


@pytest.mark.parametrize("name", sorted(BAD_EVENTS), ids=sorted(BAD_EVENTS))
def test_bad_events_file_is_a_clear_error(tmp_path, name):
    """A malformed events file exits 1 with a message naming the file and the problem, never a traceback."""
    text, expected = BAD_EVENTS[name]
    config = point_store(copy_shipped_policy(tmp_path / "policy"), tmp_path / "unused.db")
    events = tmp_path / "events.yaml"
    events.write_text(text, encoding="utf-8")
    done = simulate(config, "--from", "2027-01-01", "--to", "2027-12-31", "--events", events)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith(f"{events}:") and expected in done.stderr  # file:line:col: message
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "unused.db").exists()
