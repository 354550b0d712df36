"""The daemon as a real process: `python -m engine run -c CONFIG` on a copy of the shipped policy.

Every test starts daemons with `subprocess.Popen`, their console log (stderr) going to a file,
and waits for conditions by polling that file or the store with bounded timeouts; a finalizer
kills whatever is left. COOPFLOW_LEASE_TTL is shortened so that a standby takes over in a few
seconds, and COOPFLOW_CLOCK_START runs a daemon "in June 2027" without waiting for it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_shipped_policy
from sqlalchemy import func, select, text

from engine.exceptions import CoopflowError
from engine.execution.executor import Executor
from engine.policy.loader import load_policy
from engine.store import history, lease
from engine.store.database import SqlStore, inbox, instances, occurrences

LEASE_TTL = "4"          # seconds; the daemon renews every third of it
START_TIMEOUT = 20.0     # a daemon's first lines (imports, policy, store)
PG_URL = os.environ.get("COOPFLOW_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

DRILL_WORKFLOW = """\
id: drill
title: Drill with a deadline of a few seconds
clause: "review.adhoc"
started_by: [dic.focal_point, system]
fields:
  issue: {type: str, required: true}
initial: waiting
states:
  waiting:
    title: Waiting for an answer
    deadline: {hours: 0.001, fire: overdue}
  escalated:
    title: Escalated
    final: true
transitions:
  - trigger: overdue
    from: waiting
    to: escalated
    by: [system]
    then:
      - emit: drill.overdue
        data: {issue: "=fields.issue"}
"""

DRILL_RULES = """\
events:
  - id: drill_escalates
    title: An overdue drill proposes an emergency review
    on: drill.overdue
    start:
      workflow: emergency_review
      with:
        issue: "=event.data.issue"
        proposed_by: dic
        source_workflow: "=event.workflow"
        source_instance: "=event.instance"
"""


# --------------------------------------------------------------------------- helpers


def wait_until(condition: Callable[[], Any], timeout: float, what: str | Callable[[], str], poll: float = 0.1) -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` (text, or a callable
    giving it at failure time) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what() if callable(what) else what}")
        time.sleep(poll)


def base_env(store_url: str, **extra: str) -> dict[str, str]:
    """The environment for a daemon or CLI run: no inherited COOPFLOW_* settings, a short lease."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COOPFLOW_")}
    env.update(COOPFLOW_STORE_URL=store_url, COOPFLOW_LEASE_TTL=LEASE_TTL, PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


class Daemon:
    """One `coopflow run` process, its stderr in a file."""

    def __init__(self, config: Path, env: dict[str, str], name: str):
        self.config, self.env, self.name = config, env, name
        self.log_path = config.parent / f"{name}.stderr"
        with open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "engine", "run", "-c", str(config)],
                env=env, cwd=config.parent, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log()))

    def wait_log(self, pattern: str, timeout: float = START_TIMEOUT, count: int = 1) -> re.Match:
        """Wait until `pattern` (a regex) has appeared `count` times in the log; the last match."""

        def seen():
            if self.proc.poll() is not None and self.count(pattern) < count:
                pytest.fail(f"daemon {self.name} exited with {self.proc.returncode} before logging "
                            f"{pattern!r}:\n{self.tail()}")
            matches = list(re.finditer(pattern, self.log()))
            return matches[count - 1] if len(matches) >= count else None

        return wait_until(seen, timeout, lambda: f"daemon {self.name} to log {pattern!r}:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send `sig` and wait for the exit code (fails the test if it does not exit in time)."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"daemon {self.name} did not exit within {timeout:g} s after {sig.name}:\n{self.tail()}")

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def spawn() -> Iterator[Callable[..., Daemon]]:
    """Start daemons; every one still running at the end is killed."""
    started: list[Daemon] = []

    def start(config: Path, env: dict[str, str], name: str = "daemon") -> Daemon:
        daemon = Daemon(config, env, f"{name}-{len(started)}")
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(timeout=10)


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    """A copy of the shipped policy in tmp_path; its config.yaml."""
    return copy_shipped_policy(tmp_path / "policy")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite store file in tmp_path."""
    return f"sqlite:///{tmp_path / 'coopflow.db'}"


@pytest.fixture
def open_store() -> Iterator[Callable[[str], SqlStore]]:
    """Open stores from the test process (to submit events and look at rows); disposed at the end."""
    opened: list[SqlStore] = []

    def open_(url: str) -> SqlStore:
        store = SqlStore(url)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.dispose()


def _pg_admin():
    import psycopg

    try:
        return psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL not reachable at {PG_URL}: {exc}"
        if os.environ.get("COOPFLOW_REQUIRE_PG") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(params=["sqlite", "postgres"], ids=["sqlite", "postgres"])
def store_url(request, tmp_path: Path) -> Iterator[str]:
    """A fresh store: a SQLite file, or a PostgreSQL schema of its own (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'coopflow.db'}"
        return
    schema = f"t_{secrets.token_hex(6)}"
    with _pg_admin() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with _pg_admin() as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def count_rows(store: SqlStore, table, *where) -> int:
    with store.reading() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def run_cli(config: Path, env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args, "-c", str(config)], env=env, cwd=config.parent,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def later(start: str, began: float, margin: float = 1.0) -> str:
    """`start` moved on by the real time elapsed since `began` (a restarted daemon's clock goes on)."""
    moment = datetime.fromisoformat(start) + timedelta(seconds=time.monotonic() - began + margin)
    return moment.isoformat()


def json_records(config: Path) -> list[dict]:
    path = config.parent / "logs" / "coopflow.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------- start and stop


def test_starts_on_embedded_store_and_logs_next_review(policy_copy: Path, spawn) -> None:
    """With the config's own SQLite store, the daemon takes the lease and logs the next periodic review's date and host."""
    env = {k: v for k, v in base_env("unused").items() if k != "COOPFLOW_STORE_URL"}
    env["COOPFLOW_CLOCK_START"] = "2027-05-20T08:00+07:00"
    daemon = spawn(policy_copy, env)
    daemon.wait_log(r"leader lease taken")
    daemon.wait_log(r"next periodic_review: 2027-06-01T08:00:00\+07:00 \(host dic\)")
    assert (policy_copy.parent / "coopflow.db").exists()
    nexts = [r for r in json_records(policy_copy) if r["message"].startswith("next periodic_review")]
    assert nexts and nexts[-1]["host"] == "dic" and nexts[-1]["schedule"] == "periodic_review"
    assert daemon.stop() == 0


def test_invalid_policy_exits_1_with_positions(policy_copy: Path, sqlite_url: str) -> None:
    """An invalid policy makes `coopflow run` exit 1 at start with file:line:col errors and no traceback."""
    wf = policy_copy.parent / "workflows" / "periodic_review.yaml"
    wf.write_text(wf.read_text(encoding="utf-8").replace("initial: scheduled", "initial: nowhere"), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "engine", "run", "-c", str(policy_copy)], env=base_env(sqlite_url),
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stderr
    assert re.search(r"periodic_review\.yaml:\d+:\d+: .*nowhere", result.stderr), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly(policy_copy: Path, sqlite_url: str, spawn, sig: signal.Signals) -> None:
    """SIGTERM or SIGINT makes the daemon log "stopped" and exit 0 within 10 s."""
    daemon = spawn(policy_copy, base_env(sqlite_url))
    daemon.wait_log(r"next periodic_review")
    assert daemon.stop(sig, timeout=10) == 0
    assert f"received {sig.name}" in daemon.log()
    assert "coopflow daemon stopped" in daemon.log()
    assert "Traceback" not in daemon.log()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("COOPFLOW_CLOCK_START", "2027-06-01T08:00"), ("COOPFLOW_CLOCK_START", "June"), ("COOPFLOW_LEASE_TTL", "soon")],
    ids=["clock-without-offset", "clock-not-a-date", "lease-ttl-word"],
)
def test_bad_environment_exits_1_without_traceback(policy_copy: Path, sqlite_url: str, variable: str, value: str) -> None:
    """A bad COOPFLOW_CLOCK_START or COOPFLOW_LEASE_TTL stops `coopflow run` at once with exit 1 and a message naming it."""
    result = subprocess.run([sys.executable, "-m", "engine", "run", "-c", str(policy_copy)],
                            env=base_env(sqlite_url, **{variable: value}),
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stderr
    assert f"error: {variable}" in result.stderr
    assert "Traceback" not in result.stderr and "daemon starting" not in result.stderr


@pytest.mark.parametrize("raw", ["soon", "0", "-3", "nan", "inf"], ids=["word", "zero", "negative", "nan", "inf"])
def test_invalid_lease_ttl_is_a_clear_error(monkeypatch, raw: str) -> None:
    """A COOPFLOW_LEASE_TTL that is not a positive number of seconds is refused with a message naming it."""
    monkeypatch.setenv(lease.TTL_ENV, raw)
    with pytest.raises(CoopflowError, match="COOPFLOW_LEASE_TTL"):
        lease.ttl_from_env()


def test_lease_ttl_from_env(monkeypatch) -> None:
    """COOPFLOW_LEASE_TTL sets the lease TTL in seconds; unset, it is 15 s."""
    monkeypatch.delenv(lease.TTL_ENV, raising=False)
    assert lease.ttl_from_env() == timedelta(seconds=15)
    monkeypatch.setenv(lease.TTL_ENV, "2.5")
    assert lease.ttl_from_env() == timedelta(seconds=2.5)


# --------------------------------------------------------------------------- working with the CLI


def test_cli_start_is_applied_by_running_daemon(policy_copy: Path, sqlite_url: str, spawn) -> None:
    """While a daemon runs, `coopflow start` queues the event, the daemon applies it, and the CLI prints the outcome."""
    env = base_env(sqlite_url)
    daemon = spawn(policy_copy, env)
    daemon.wait_log(r"next periodic_review")
    result = run_cli(policy_copy, env, "start", "emergency_review", "--as", "dic.leader",
                     "--set", "issue=Phishing campaign", "--wait", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    instance, outcome = result.stdout.strip().splitlines()
    assert instance.startswith("emergency_review-")
    assert outcome == "applied: started in proposed"
    daemon.wait_log(rf"applied start: started in proposed.*instance={re.escape(instance)}")
    assert daemon.stop() == 0


# --------------------------------------------------------------------------- downtime, crashes, standby


def test_downtime_catch_up_fires_once_and_late(policy_copy: Path, sqlite_url: str, spawn, open_store) -> None:
    """An occurrence that fell due while the daemon was down fires once, logged late, and not again on the next restart."""
    daemon = spawn(policy_copy, base_env(sqlite_url, COOPFLOW_CLOCK_START="2027-05-20T08:00+07:00"))
    daemon.wait_log(r"next periodic_review: 2027-06-01T08:00:00\+07:00 \(host dic\)")
    assert daemon.stop() == 0

    june = base_env(sqlite_url, COOPFLOW_CLOCK_START="2027-06-20T08:00+07:00")
    daemon = spawn(policy_copy, june)
    daemon.wait_log(r"schedule periodic_review fired for 2027-06-01T08:00:00\+07:00 late by 19d")
    daemon.wait_log(r"applied start: started in scheduled")
    daemon.wait_log(r"next periodic_review: 2027-12-01T08:00:00\+07:00 \(host police\)")
    # The review keeps its nominal date: its first deadline (2 working days from 1 June) is overdue at once.
    daemon.wait_log(r"in state scheduled \(due 2027-06-04T00:00:00\+07:00\) fires late by 16d \(trễ 16 ngày\)")
    assert daemon.stop() == 0

    daemon = spawn(policy_copy, june)
    daemon.wait_log(r"next periodic_review: 2027-12-01T08:00:00\+07:00 \(host police\)")
    assert daemon.stop() == 0
    assert "fired for" not in daemon.log()

    store = open_store(sqlite_url)
    assert count_rows(store, occurrences, occurrences.c.schedule == "periodic_review") == 1
    with store.reading() as conn:
        rows = conn.execute(select(instances.c.fields).where(instances.c.workflow == "periodic_review")).all()
    assert [(r.fields["period"], r.fields["host"]) for r in rows] == [("2027H1", "dic")]
    late = [r for r in json_records(policy_copy) if "late by" in r["message"]]
    fired = [r for r in late if r["message"].startswith("schedule ")]
    assert len(fired) == 1 and fired[0]["level"] == "WARNING" and fired[0]["schedule"] == "periodic_review"
    deadlines = [r["message"].split(" in state ")[1] for r in late if r["message"].startswith("deadline ")]
    assert deadlines[0] == "scheduled (due 2027-06-04T00:00:00+07:00) fires late by 16d (trễ 16 ngày)"


def test_sigkill_then_restart_loses_and_doubles_nothing(policy_copy: Path, sqlite_url: str, spawn, open_store) -> None:
    """After a SIGKILL mid-run and a restart, every event submitted before the kill is applied exactly once and the occurrence stays unique."""
    start = "2027-06-01T07:59:50+07:00"
    began = time.monotonic()
    daemon = spawn(policy_copy, base_env(sqlite_url, COOPFLOW_CLOCK_START=start))
    daemon.wait_log(r"schedule periodic_review fired for 2027-06-01T08:00:00\+07:00", timeout=30)
    daemon.wait_log(r"applied start: started in scheduled")

    store = open_store(sqlite_url)
    policy = load_policy(policy_copy)
    executor = Executor(store, policy)
    subs = [executor.submit_start("emergency_review", "dic.leader", {"issue": f"kill {i}"}, key=f"kill-{i}")
            for i in range(30)]
    wait_until(lambda: count_rows(store, inbox, inbox.c.status != "pending", inbox.c.key.like("user:kill-%")) > 0,
               10, "the daemon to apply the first submitted event")
    daemon.kill9()
    assert daemon.proc.returncode == -signal.SIGKILL

    daemon = spawn(policy_copy, base_env(sqlite_url, COOPFLOW_CLOCK_START=later(start, began)))
    wait_until(lambda: count_rows(store, inbox, inbox.c.status == "pending") == 0, 30,
               "every submitted event to be applied after the restart")
    daemon.wait_log(r"next periodic_review: 2027-12-01T08:00:00\+07:00 \(host police\)")
    assert daemon.stop() == 0

    with store.reading() as conn:
        statuses = conn.execute(select(inbox.c.key, inbox.c.status).where(inbox.c.key.like("user:kill-%"))).all()
        assert sorted(s for _, s in statuses) == ["applied"] * 30
        per_event = conn.execute(text(
            "SELECT inbox_id, count(*) FROM history WHERE inbox_id IN ({}) GROUP BY inbox_id".format(",".join(str(s.inbox_id) for s in subs)))).all()
        assert sorted(n for _, n in per_event) == [1] * 30
        issues = conn.execute(select(instances.c.fields).where(instances.c.workflow == "emergency_review")).all()
        assert sorted(r.fields["issue"] for r in issues) == sorted(f"kill {i}" for i in range(30))
        assert history.verify(conn)[1] is None
    assert count_rows(store, occurrences) == 1
    assert count_rows(store, instances, instances.c.workflow == "periodic_review") == 1


def test_two_daemons_one_leader_and_takeover(tmp_path: Path, store_url: str, spawn, open_store) -> None:
    """Of two daemons on one store only one leads (the other stands by), the June occurrence fires once, and after kill -9 of the leader the standby takes over and applies new events."""
    env = base_env(store_url, COOPFLOW_CLOCK_START="2027-06-01T07:59:50+07:00")
    config_a, config_b = copy_shipped_policy(tmp_path / "a"), copy_shipped_policy(tmp_path / "b")
    for config in (config_a, config_b):  # two daemons of one deployment share the history's key
        config.write_text(config.read_text(encoding="utf-8") + f"\naudit:\n  key_file: {tmp_path / 'audit-key'}\n",
                          encoding="utf-8")
    leader = spawn(config_a, env, "leader")
    leader.wait_log(r"leader lease taken")
    standby = spawn(config_b, env, "standby")
    leader.wait_log(r"schedule periodic_review fired for 2027-06-01T08:00:00\+07:00", timeout=30)
    leader.wait_log(r"applied start: started in scheduled")
    standby.wait_log(r"standing by: \S+ holds the leader lease")
    store = open_store(store_url)
    assert count_rows(store, occurrences) == 1
    assert "leader lease taken" not in standby.log()

    leader.kill9()
    standby.wait_log(r"leader lease taken", timeout=30)
    executor = Executor(store, load_policy(config_b))
    sub = executor.submit_start("emergency_review", "police.leader", {"issue": "after takeover"}, key="takeover")
    assert executor.wait(sub.inbox_id, timeout=20)[0] == "applied"
    standby.wait_log(rf"applied start.*instance={re.escape(sub.instance)}")
    standby.wait_log(r"next periodic_review: 2027-12-01T08:00:00\+07:00 \(host police\)")
    assert standby.stop() == 0

    assert count_rows(store, occurrences) == 1
    assert count_rows(store, instances, instances.c.workflow == "periodic_review") == 1
    assert "fired for" not in standby.log()


# --------------------------------------------------------------------------- deadlines and reload


def test_overdue_deadline_escalates_through_rule(policy_copy: Path, sqlite_url: str, spawn, open_store) -> None:
    """A deadline of a few seconds fires in the daemon, its transition's event makes a rule start an emergency review."""
    folder = policy_copy.parent
    (folder / "workflows" / "drill.yaml").write_text(DRILL_WORKFLOW, encoding="utf-8")
    (folder / "rules" / "drill.yaml").write_text(DRILL_RULES, encoding="utf-8")
    daemon = spawn(policy_copy, base_env(sqlite_url))
    daemon.wait_log(r"next periodic_review")

    store = open_store(sqlite_url)
    sub = Executor(store, load_policy(policy_copy)).submit_start("drill", "dic.focal_point", {"issue": "late answer"})
    daemon.wait_log(rf"deadline of {re.escape(sub.instance)} in state waiting .* fires", timeout=30)
    daemon.wait_log(r"rule drill_escalates fired on drill.overdue", timeout=15)

    def escalated():
        with store.reading() as conn:
            rows = conn.execute(select(instances.c.id, instances.c.state, instances.c.fields)
                                .where(instances.c.workflow == "emergency_review")).all()
            drill = conn.execute(select(instances.c.state).where(instances.c.id == sub.instance)).scalar()
        return rows if rows and drill == "escalated" else None

    rows = wait_until(escalated, 15, "the rule's emergency_review instance")
    assert len(rows) == 1
    assert rows[0].state == "proposed"
    assert rows[0].fields["issue"] == "late answer" and rows[0].fields["source_instance"] == sub.instance
    assert daemon.stop() == 0


def test_hot_reload_valid_and_invalid_edits(policy_copy: Path, sqlite_url: str, spawn) -> None:
    """A valid policy edit is reloaded with its new hash; an invalid one is logged with its errors and the old policy keeps working."""
    env = base_env(sqlite_url)
    daemon = spawn(policy_copy, env)
    daemon.wait_log(r"next periodic_review")
    old = load_policy(policy_copy).digest[:12]

    wf = policy_copy.parent / "workflows" / "emergency_review.yaml"
    source = wf.read_text(encoding="utf-8")
    wf.write_text(source.replace("title: Họp giao ban đột xuất", "title: Họp giao ban đột xuất (sửa đổi)", 1),
                  encoding="utf-8")
    new = load_policy(policy_copy).digest[:12]
    assert new != old
    daemon.wait_log(rf"policy reloaded: {new} \(was {old}\)", timeout=15)

    wf.write_text(source.replace("initial: proposed", "initial: nowhere"), encoding="utf-8")
    daemon.wait_log(r"policy edit refused: .*emergency_review\.yaml:\d+:\d+: .*nowhere", timeout=15)
    daemon.wait_log(rf"keeping policy {new}", timeout=15)

    # The CLI reads the policy folder itself (and would refuse the broken one): use a valid copy.
    good = copy_shipped_policy(policy_copy.parent.parent / "good")
    result = run_cli(good, env, "start", "emergency_review", "--as", "police.leader", "--set", "issue=still working")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "applied: started in proposed"
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0


def test_missing_store_folder_is_refused_not_created(policy_copy: Path, tmp_path: Path, spawn) -> None:
    """A SQLite store whose folder does not exist stops the daemon with exit 1 and a clear line (a typo in
    `store:` must not become a new store); the folder is not created."""
    folder = tmp_path / "not" / "yet"
    daemon = spawn(policy_copy, base_env(f"sqlite:///{folder / 'coopflow.db'}"))
    assert daemon.proc.wait(timeout=START_TIMEOUT) == 1
    assert re.search(r"is unavailable: folder .*/not/yet does not exist.*; stopping", daemon.log())
    assert not folder.exists()
    assert "Traceback" not in daemon.log()
