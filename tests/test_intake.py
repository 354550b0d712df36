"""The door (engine/execution/intake.py), dead letters and idempotency keys, driven through the CLI
(subprocess, without and with a running daemon) on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_minimal_policy
from sqlalchemy import select
from test_daemon import base_env, count_rows, run_cli, spawn, wait_until  # noqa: F401  (spawn is a fixture)

from engine.execution import intake
from engine.execution.executor import Executor
from engine.policy.loader import load_policy
from engine.scheduling import timers
from engine.store import history, inbox
from engine.store.batch import EventWrites
from engine.store.database import SqlStore
from engine.store.database import inbox as inbox_table
from engine.store.database import timers as timers_table

START = ("start", "request", "--as", "a.focal_point", "--set", "recipient=b", "--set", "subject=Xin thông tin thuê bao")
FIRE = ("answer", "--as", "b.focal_point")

BAD = [
    pytest.param([b"--set", b"subject=\xff\xfe"], "value of subject: is not valid UTF-8", id="bad-bytes"),
    pytest.param(["--set", "subject=a\x01b"], "value of subject: contains the control character U+0001", id="control"),
    pytest.param(["--set", "subject=" + "x" * 10_001], "value of subject: is 10001 characters long (at most 10000)", id="long-value"),
    pytest.param(["--set", "reply_by=2027-02-30T10:00"], "value of reply_by: '2027-02-30T10:00' is not a date that exists", id="no-such-date"),
    pytest.param(["--key", "k" * 200], "key: is 200 characters long (at most 195)", id="long-key"),
]


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    """The tiny policy of conftest: workflow `request` (a deadline in its first state), a schedule, a rule."""
    return write_minimal_policy(tmp_path / "policy")


def _start(policy: Path, env: dict) -> str:
    run_cli(policy, env, "init")
    result = run_cli(policy, env, *START)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()[0]


def _store(url: str) -> SqlStore:
    return SqlStore(url)


@pytest.mark.parametrize("extra,message", BAD)
def test_bad_input_is_refused_at_the_door_without_daemon(policy: Path, store_url: str, extra, message) -> None:
    env = base_env(store_url)
    instance = _start(policy, env)
    result = run_cli(policy, env, "fire", instance, *FIRE, *extra)
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    store = _store(store_url)
    try:
        assert count_rows(store, inbox_table) == 1  # only the start: nothing was queued
    finally:
        store.dispose()
    again = run_cli(policy, env, "fire", instance, *FIRE)  # the inbox still moves
    assert (again.returncode, again.stdout.strip()) == (0, "applied: open -> answered"), again.stdout + again.stderr


def test_overlong_instance_id_and_actor_are_refused_naming_the_field(policy: Path, store_url: str) -> None:
    env = base_env(store_url)
    _start(policy, env)
    result = run_cli(policy, env, "fire", "x" * 121, *FIRE)
    assert (result.returncode, result.stderr.strip()) == (1, "error: instance id: is 121 characters long (at most 120)")
    result = run_cli(policy, env, "fire", "x-1", "answer", "--as", b"b.\xfffocal")
    assert result.returncode == 1 and result.stderr.startswith("error: actor: is not valid UTF-8 text"), result.stderr


def test_bad_bytes_refused_while_daemon_runs_and_dead_letter_does_not_block(policy: Path, store_url: str, spawn) -> None:
    env = base_env(store_url)
    instance = _start(policy, env)
    daemon = spawn(policy, env)
    daemon.wait_log(r"next half_yearly")
    result = run_cli(policy, env, "fire", instance, *FIRE, b"--set", b"subject=\xff")
    assert result.returncode == 1 and "value of subject: is not valid UTF-8" in result.stderr
    store = _store(store_url)
    try:
        with store.transaction() as conn:  # an event the door never saw (an older coopflow, a bug): it fails inside apply
            broken = inbox.submit(conn, inbox.FIRE, instance=instance, trigger="answer", actor="b.focal_point",
                                  values=["not", "a", "mapping"]).inbox_id
        later = run_cli(policy, env, "fire", instance, *FIRE)
        assert (later.returncode, later.stdout.strip()) == (0, "applied: open -> answered"), later.stdout + later.stderr
        with store.reading() as conn:
            status, text = inbox.status(conn, broken)
            assert status == inbox.REFUSED and text.startswith("refused: internal error:"), text
            assert history.verify(conn)[1] is None
        assert daemon.proc.poll() is None
        listed = run_cli(policy, env, "inbox")
        assert f"{broken}" in listed.stdout and "internal error" in listed.stdout
    finally:
        store.dispose()
    assert daemon.stop() == 0


def test_refusal_that_cannot_be_recorded_is_recorded_escaped(policy: Path, store_url: str, monkeypatch) -> None:
    """The first attempt to record a refusal fails (as the unescaped text did before): it is recorded escaped."""
    store = _store(store_url)
    try:
        executor = Executor(store, load_policy(policy))
        with store.transaction() as conn:
            sub = inbox.submit(conn, inbox.FIRE, instance="nowhere-1", trigger="answer", actor="b.focal_point",
                               values={"subject": "a\udcffb\x00"})
        real, calls = EventWrites.history, []

        def fragile(writes, **row):
            calls.append(row)
            if len(calls) == 1:
                raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")
            return real(writes, **row)

        monkeypatch.setattr(EventWrites, "history", fragile)
        (outcome,) = executor.apply_batch(10)
        assert outcome.status == inbox.REFUSED and outcome.text == "unknown instance 'nowhere-1'"
        assert calls[1]["data"]["set"] == {"subject": "a\\udcffb\\x00"}
        with store.reading() as conn:
            assert inbox.status(conn, sub.inbox_id)[0] == inbox.REFUSED
    finally:
        store.dispose()


def test_safe_text_escapes_only_what_stores_reject() -> None:
    assert intake.safe_text("Công an\ttỉnh\n\x00\udcff") == "Công an\ttỉnh\n\\x00\\udcff"


# --------------------------------------------------------------------------- idempotency keys


def test_key_reused_for_another_request_is_refused_naming_the_first(policy: Path, store_url: str) -> None:
    env = base_env(store_url)
    run_cli(policy, env, "init")
    first = run_cli(policy, env, *START, "--key", "req-1")
    assert first.returncode == 0, first.stderr
    instance, outcome = first.stdout.splitlines()
    again = run_cli(policy, env, *START, "--key", "req-1")
    assert again.returncode == 0 and again.stdout.splitlines()[1] == outcome  # same request: the first outcome
    other = run_cli(policy, env, *START[:-1], "subject=Khác", "--key", "req-1")
    assert other.returncode == 1
    assert "key 'req-1' was already used for a different request (values differ): inbox #1, start request" in other.stderr
    fire = run_cli(policy, env, "fire", instance, *FIRE, "--key", "req-1")
    assert fire.returncode == 1 and "(kind, workflow, trigger, actor, values differ): inbox #1" in fire.stderr, fire.stderr


def test_engine_keys_cannot_be_taken_by_an_operator(policy: Path, store_url: str) -> None:
    """An operator submitting under a timer's, a schedule's or a rule's key takes nothing from them."""
    env = base_env(store_url)
    instance = _start(policy, env)
    store = _store(store_url)
    try:
        with store.reading() as conn:
            timer_id = conn.execute(select(timers_table.c.id).where(timers_table.c.instance == instance)).scalar_one()
        keys = [inbox.engine_key("timer", timer_id), inbox.engine_key("schedule", "half_yearly", "2027-06-01T01:00:00+00:00"),
                inbox.engine_key("outbox", 1, "close_on_answer")]
        for key in keys:
            result = run_cli(policy, env, "fire", instance, "answer", "--as", "a.focal_point", "--key", key)
            assert result.returncode == 1 and result.stdout.startswith("refused:"), result.stdout + result.stderr
        with store.transaction() as conn:
            stored = set(conn.execute(select(inbox_table.c.key)).scalars())
            assert {f"user:{k}" for k in keys} <= stored and not set(keys) & stored
            assert timers.submit_due(conn, timer_id) is not None  # the deadline still queues its own event
    finally:
        store.dispose()


def test_timer_whose_key_is_taken_is_not_resubmitted(policy: Path, store_url: str) -> None:
    """A store written before namespaces: a refused operator row holds timer:<id>; the timer is retired, not spun."""
    env = base_env(store_url)
    instance = _start(policy, env)
    store = _store(store_url)
    try:
        with store.transaction() as conn:
            timer_id = conn.execute(select(timers_table.c.id).where(timers_table.c.instance == instance)).scalar_one()
            taken = inbox.submit(conn, inbox.FIRE, instance=instance, trigger="nothing", actor="a.focal_point",
                                 key=f"timer:{timer_id}").inbox_id
            conn.execute(inbox_table.update().where(inbox_table.c.id == taken).values(status=inbox.REFUSED))
        with store.transaction() as conn:
            assert timers.submit_due(conn, timer_id) is None
            assert timers.armed(conn) == []
    finally:
        store.dispose()


def test_nul_and_bad_bytes_that_bypassed_the_door_are_refused_once_on_the_real_store(policy: Path, store_url: str) -> None:
    """No simulation: an inbox row holding a NUL and a lone surrogate (an older coopflow, a bug)
    reaches the real store. PostgreSQL's JSONB cannot hold "\\u0000" at all; SQLite holds it but
    the history hash cannot encode the surrogate. Either way the event ends refused, recorded in
    a form that cannot fail again, and the next event still applies: no retry loop."""
    env = base_env(store_url)
    instance = _start(policy, env)
    store = _store(store_url)
    try:
        executor = Executor(store, load_policy(policy))
        try:
            with store.transaction() as conn:
                bad = inbox.submit(conn, inbox.FIRE, instance=instance, trigger="answer", actor="b.focal_point",
                                   values={"subject": "a\x00b\udcff"}).inbox_id
        except Exception as exc:  # the store itself refuses to hold it: nothing was queued, nothing can loop
            assert store.dialect == "postgresql", exc
            bad = None
        good = run_cli(policy, env, "fire", instance, *FIRE)
        if bad is not None:
            with store.reading() as conn:
                status, text = inbox.status(conn, bad)
            assert status == inbox.REFUSED, (status, text)
        assert (good.returncode, good.stdout.strip()) == (0, "applied: open -> answered"), good.stdout + good.stderr
        assert executor.apply_batch(10) == []  # nothing left to retry
        with store.reading() as conn:
            assert history.verify(conn)[1] is None
    finally:
        store.dispose()
