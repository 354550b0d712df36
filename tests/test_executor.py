"""Tests for engine.execution.executor, engine.store.inbox and engine.execution.outbox on the shipped Lào Cai policy.

Every test runs on SQLite and on PostgreSQL (the `store` fixture). Refusals must change nothing
but the inbox row and one history row; idempotency keys apply once; each instance's events apply
in submission order; outbox actions take effect exactly once and are never lost; an instance
keeps the workflow version it started with.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import STORE_KINDS, copy_shipped_policy, temporary_store_url
from sqlalchemy import func, insert, select, update

from engine import clock
from engine.execution import outbox
from engine.execution.executor import Executor
from engine.execution.runtime import Runtime
from engine.policy.loader import load_policy
from engine.store import history, inbox
from engine.store.database import SqlStore, consents, instances, occurrences, timers, workflow_versions
from engine.store.database import history as history_table
from engine.store.database import inbox as inbox_table
from engine.store.database import outbox as outbox_table

REQUEST = {"requester": "dic", "recipient": "police", "subject": "Danh sách tên miền vi phạm"}
SNAPSHOT_TABLES = (instances, timers, consents, outbox_table, workflow_versions, occurrences)


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def runtime(shipped_policy: Path, store: SqlStore) -> Runtime:
    """The shipped policy (a private copy) wired to the test store, no daemon."""
    policy = load_policy(shipped_policy)
    return Runtime(policy, store, Executor(store, policy))


def start(rt: Runtime, workflow: str, actor: str, **values) -> str:
    """Start an instance, apply it (and its after-commit actions) and return its id."""
    sub = rt.executor.submit_start(workflow, actor, values)
    rt.settle()
    assert outcome_of(rt, sub)[0] == inbox.APPLIED, outcome_of(rt, sub)
    return sub.instance


def fire(rt: Runtime, instance: str, trigger: str, actor: str, **values) -> tuple[str, str]:
    """Fire a trigger, settle, and return the event's (status, outcome text)."""
    sub = rt.executor.submit_fire(instance, trigger, actor, values)
    rt.settle()
    return outcome_of(rt, sub)


def outcome_of(rt: Runtime, sub: inbox.Submission) -> tuple[str, str]:
    """(status, outcome) of a submitted event as the inbox records it."""
    with rt.store.reading() as conn:
        return inbox.status(conn, sub.inbox_id)


def state_of(rt: Runtime, instance: str) -> str:
    """The instance's current state."""
    with rt.store.reading() as conn:
        return conn.execute(select(instances.c.state).where(instances.c.id == instance)).scalar_one()


def fields_of(rt: Runtime, instance: str) -> dict:
    """The instance's current fields."""
    with rt.store.reading() as conn:
        return conn.execute(select(instances.c.fields).where(instances.c.id == instance)).scalar_one()


def snapshot(store: SqlStore) -> dict[str, list]:
    """Every row of the tables an event may change (all but inbox and history), in a stable order."""
    with store.reading() as conn:
        return {t.name: sorted((dict(r) for r in conn.execute(select(t)).mappings()), key=repr) for t in SNAPSHOT_TABLES}


def history_rows(store: SqlStore, instance: str | None = None, after: int = 0) -> list[dict]:
    """History rows (optionally of one instance) with seq greater than `after`, in order."""
    query = select(history_table).where(history_table.c.seq > after).order_by(history_table.c.seq)
    if instance is not None:
        query = query.where(history_table.c.instance == instance)
    with store.reading() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def last_seq(store: SqlStore) -> int:
    """The last history seq written so far (0 when empty)."""
    with store.reading() as conn:
        return conn.execute(select(func.coalesce(func.max(history_table.c.seq), 0))).scalar_one()


def count(store: SqlStore, table, *where) -> int:
    """How many rows of `table` match."""
    with store.reading() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def chain_intact(store: SqlStore) -> bool:
    """True when the history hash chain verifies."""
    with store.reading() as conn:
        return history.verify(conn)[1] is None


# --------------------------------------------------------------------------- refusals


@dataclass
class World:
    """Instances in known states: drafted, sent (deadline timer armed), closed, a review with one consent."""

    rt: Runtime
    drafted: str
    sent: str
    closed: str
    review: str
    urgent: str  # drafted, kind urgent
    secret: str  # drafted, classification toi_mat


@pytest.fixture(scope="module", params=STORE_KINDS, ids=STORE_KINDS)
def world(request, tmp_path_factory) -> Iterator[World]:
    """The instances the refusal cases act on, set up once per backend (a refusal changes nothing, so they share it)."""
    folder = tmp_path_factory.mktemp("world")
    policy = load_policy(copy_shipped_policy(folder / "policy"))
    with temporary_store_url(request.param, folder) as url:
        store = SqlStore(url)
        try:
            rt = Runtime(policy, store, Executor(store, policy))
            drafted = start(rt, "information_exchange", "dic.focal_point", **REQUEST)
            sent = start(rt, "information_exchange", "dic.focal_point", **REQUEST)
            assert fire(rt, sent, "send", "dic.focal_point", dispatch_no="CV-1")[0] == inbox.APPLIED
            closed = start(rt, "information_exchange", "dic.focal_point", **REQUEST)
            assert fire(rt, closed, "withdraw", "dic.focal_point")[0] == inbox.APPLIED
            review = start(rt, "emergency_review", "dic.leader", issue="Sự cố lộ lọt dữ liệu")
            assert "waiting for police" in fire(rt, review, "agree", "dic.leader")[1]
            assert count(store, timers, timers.c.status == "armed") == 2
            assert count(store, consents) == 1
            urgent = start(rt, "information_exchange", "dic.focal_point", **REQUEST, kind="urgent")
            secret = start(rt, "information_exchange", "dic.focal_point", **REQUEST, classification="toi_mat")
            yield World(rt, drafted, sent, closed, review, urgent, secret)
        finally:
            store.dispose()


def _fire(target: str, trigger: str, actor: str, withdraw: bool = False, **values):
    return lambda w: w.rt.executor.submit_fire(getattr(w, target, target), trigger, actor, values, withdraw=withdraw)


def _start(workflow: str, actor: str, **values):
    return lambda w: w.rt.executor.submit_start(workflow, actor, values)


REFUSALS = [
    pytest.param(_fire("information_exchange-00000000", "acknowledge", "police.focal_point"),
                 "unknown instance 'information_exchange-00000000'", id="unknown-instance"),
    pytest.param(_fire("sent", "frobnicate", "police.focal_point"),
                 "unknown trigger 'frobnicate'", id="unknown-trigger"),
    pytest.param(_fire("sent", "answer", "police.focal_point", answer="CV-2"),
                 "trigger 'answer' is not allowed from state 'sent'", id="trigger-not-from-state"),
    pytest.param(_fire("sent", "acknowledge", "dic.focal_point"),
                 "dic.focal_point may not fire 'acknowledge'", id="actor-without-role"),
    pytest.param(_fire("sent", "acknowledge", "nsa.focal_point"),
                 "unknown party 'nsa'", id="unknown-party"),
    pytest.param(_fire("sent", "acknowledge", "police.janitor"),
                 "party 'police' has no role 'janitor'", id="unknown-role"),
    pytest.param(_fire("sent", "acknowledge", "police.focal_point:someone_else"),
                 "'someone_else' is not listed as police.focal_point", id="unlisted-person"),
    pytest.param(_fire("sent", "acknowledge", "Police"),
                 "is not of the form party.role", id="malformed-actor"),
    pytest.param(_fire("urgent", "send", "dic.focal_point", dispatch_no="CV-3"),
                 "guard not met", id="guard-false"),
    pytest.param(_fire("secret", "send", "dic.focal_point", dispatch_no="CV-3"),
                 "guard not met", id="guard-false-secret-needs-leader"),
    pytest.param(_fire("drafted", "send", "dic.focal_point"),
                 "'send' needs the field(s) dispatch_no", id="missing-required-field"),
    pytest.param(_fire("drafted", "send", "dic.focal_point", dispatch_no="CV-3", subject="Đổi nội dung"),
                 "'send' does not accept the field(s) subject (accepts: dispatch_no)", id="field-not-accepted"),
    pytest.param(_fire("drafted", "send", "dic.focal_point", dispatch_no="CV-3", kind="bogus"),
                 "field 'kind' expects one of simple, complex, urgent", id="mistyped-enum"),
    pytest.param(_fire("drafted", "send", "dic.focal_point", dispatch_no="CV-3", recipient="mars"),
                 "field 'recipient' expects a party id", id="mistyped-party"),
    pytest.param(_fire("drafted", "send", "dic.focal_point", dispatch_no="CV-3", colour="red"),
                 "unknown field 'colour'", id="unknown-field"),
    pytest.param(_fire("closed", "send", "dic.focal_point", dispatch_no="CV-3"),
                 "instance is closed: state 'withdrawn' is final", id="instance-final"),
    pytest.param(_fire("review", "agree", "police.leader", withdraw=True),
                 "party 'police' has no consent to 'agree' to withdraw", id="withdraw-without-consent"),
    pytest.param(_fire("review", "agree", "dic.staff"),
                 "dic.staff may not fire 'agree'", id="consent-without-role"),
    pytest.param(_start("information_exchange", "dic.inspector", **REQUEST),
                 "dic.inspector may not start 'information_exchange'", id="start-not-in-started-by"),
    pytest.param(_start("information_exchange", "dic.focal_point", requester="dic", recipient="police"),
                 "missing required field(s): subject", id="start-missing-required"),
    pytest.param(_start("information_exchange", "dic.focal_point", **{**REQUEST, "kind": "huge"}),
                 "field 'kind' expects one of", id="start-mistyped-field"),
    pytest.param(_start("inspection", "ubnd.focal_point", target="Công ty ABC", lead="dic", partner="police"),
                 "ubnd.focal_point may not start 'inspection'", id="start-refused-pins-no-version"),
    pytest.param(_start("no_such_workflow", "dic.focal_point"),
                 "unknown workflow 'no_such_workflow'", id="start-unknown-workflow"),
]


@pytest.mark.parametrize(("submit", "reason"), REFUSALS)
def test_refusal_changes_nothing_and_is_recorded(world: World, submit, reason: str):
    """A refused event leaves instances, fields, timers, consents and the outbox as they were, and history says why."""
    rt = world.rt
    before, seq = snapshot(rt.store), last_seq(rt.store)
    sub = submit(world)
    outcome = rt.executor.apply_next()
    assert outcome is not None and outcome.status == inbox.REFUSED
    assert reason in outcome.text
    assert rt.settle() == []
    assert snapshot(rt.store) == before
    rows = history_rows(rt.store, after=seq)
    assert len(rows) == 1
    row = rows[0]
    assert (row["outcome"], row["instance"], row["inbox_id"]) == (inbox.REFUSED, sub.instance, sub.inbox_id)
    assert reason in row["reason"]
    assert outcome_of(rt, sub) == (inbox.REFUSED, f"refused: {row['reason']}")
    assert chain_intact(rt.store)


# --------------------------------------------------------------------------- idempotency


def test_idempotency_key_applies_once_before_apply(runtime: Runtime):
    """The same request submitted twice under one key before the executor runs applies once."""
    rt = runtime
    instance = start(rt, "information_exchange", "dic.focal_point", **REQUEST)
    first = rt.executor.submit_fire(instance, "send", "dic.focal_point", {"dispatch_no": "CV-1"}, key="send-once")
    second = rt.executor.submit_fire(instance, "send", "dic.focal_point", {"dispatch_no": "CV-1"}, key="send-once")
    assert first.new and not second.new
    assert second.inbox_id == first.inbox_id and second.instance == instance
    assert len(rt.settle()) == 1
    assert state_of(rt, instance) == "sent"
    assert fields_of(rt, instance)["dispatch_no"] == "CV-1"
    assert outcome_of(rt, second) == outcome_of(rt, first) == (inbox.APPLIED, "applied: drafted -> sent")
    assert [r["trigger"] for r in history_rows(rt.store, instance)] == [None, "send"]


def test_idempotency_key_applies_once_after_apply(runtime: Runtime):
    """Resubmitting an applied request under its key changes nothing and returns the first outcome."""
    rt = runtime
    instance = start(rt, "information_exchange", "dic.focal_point", **REQUEST)
    first = rt.executor.submit_fire(instance, "send", "dic.focal_point", {"dispatch_no": "CV-1"}, key="send-once")
    rt.settle()
    before, seq = snapshot(rt.store), last_seq(rt.store)
    again = rt.executor.submit_fire(instance, "send", "dic.focal_point", {"dispatch_no": "CV-1"}, key="send-once")
    assert not again.new and again.inbox_id == first.inbox_id
    assert rt.settle() == []
    assert snapshot(rt.store) == before and last_seq(rt.store) == seq
    assert outcome_of(rt, again) == (inbox.APPLIED, "applied: drafted -> sent")


def test_submit_with_apply_commits_once_after_older_pending_events(runtime: Runtime):
    """`apply=True` applies the new event in its submitting transaction, after the older pending ones, and only once."""
    rt = runtime
    instance = start(rt, "information_exchange", "dic.focal_point", **REQUEST)
    older = rt.executor.submit_fire(instance, "send", "dic.focal_point", {"dispatch_no": "CV-1"})
    newer = rt.executor.submit_fire(instance, "acknowledge", "police.focal_point", key="ack", apply=True)
    assert outcome_of(rt, older) == (inbox.APPLIED, "applied: drafted -> sent")
    assert outcome_of(rt, newer)[0] == inbox.APPLIED and state_of(rt, instance) != "sent"
    seq = last_seq(rt.store)
    again = rt.executor.submit_fire(instance, "acknowledge", "police.focal_point", key="ack", apply=True)
    assert not again.new and last_seq(rt.store) == seq


def test_idempotent_start_creates_one_instance(runtime: Runtime):
    """Two starts with one key name the same instance and create it once."""
    rt = runtime
    first = rt.executor.submit_start("information_exchange", "dic.focal_point", REQUEST, key="start-once")
    second = rt.executor.submit_start("information_exchange", "dic.focal_point", REQUEST, key="start-once")
    assert second.instance == first.instance and not second.new
    rt.settle()
    assert count(rt.store, instances) == 1
    assert fields_of(rt, first.instance)["requester"] == "dic"


def test_cli_key_returns_first_outcome(shipped_policy: Path, store_url: str, store: SqlStore):
    """`coopflow start --key K` run twice prints the same instance and the same outcome, and starts one instance."""
    env = {**os.environ, "COOPFLOW_STORE_URL": store_url}
    env.pop("COOPFLOW_CLOCK_START", None)
    args = [sys.executable, "-m", "engine", "start", "information_exchange", "--as", "dic.focal_point",
            "--set", "requester=dic", "--set", "recipient=police", "--key", "cli-once", "-c", str(shipped_policy)]
    first = subprocess.run([*args, "--set", "subject=Lần một"], capture_output=True, text=True, env=env, timeout=60)
    second = subprocess.run([*args, "--set", "subject=Lần một"], capture_output=True, text=True, env=env, timeout=60)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert first.stdout == second.stdout
    assert first.stdout.splitlines()[-1] == "applied: started in drafted"
    assert count(store, instances) == 1
    with store.reading() as conn:
        assert conn.execute(select(instances.c.fields)).scalar_one()["subject"] == "Lần một"


# --------------------------------------------------------------------------- order


def test_events_apply_in_submission_order_per_instance(runtime: Runtime):
    """Each instance's events apply in the order submitted, interleaved with other instances' events."""
    rt = runtime
    subs = {}
    a = rt.executor.submit_start("information_exchange", "dic.focal_point", REQUEST)
    b = rt.executor.submit_start("information_exchange", "police.focal_point", {**REQUEST, "requester": "police", "recipient": "dic"})
    subs["a-send"] = rt.executor.submit_fire(a.instance, "send", "dic.focal_point", {"dispatch_no": "A-1"})
    subs["b-send"] = rt.executor.submit_fire(b.instance, "send", "police.focal_point", {"dispatch_no": "B-1"})
    subs["a-ack"] = rt.executor.submit_fire(a.instance, "acknowledge", "police.focal_point")
    subs["a-answer"] = rt.executor.submit_fire(a.instance, "answer", "police.focal_point", {"answer": "A-2"})
    subs["b-answer-early"] = rt.executor.submit_fire(b.instance, "answer", "dic.focal_point", {"answer": "B-2"})
    subs["b-ack"] = rt.executor.submit_fire(b.instance, "acknowledge", "dic.focal_point")
    rt.settle()
    statuses = {name: outcome_of(rt, sub)[0] for name, sub in subs.items()}
    assert statuses == {"a-send": "applied", "b-send": "applied", "a-ack": "applied", "a-answer": "applied",
                        "b-answer-early": "refused", "b-ack": "applied"}
    assert state_of(rt, a.instance) == "answered" and state_of(rt, b.instance) == "in_progress"
    for sub in (a, b):
        ids = [r["inbox_id"] for r in history_rows(rt.store, sub.instance)]
        assert ids == sorted(ids)


def test_concurrent_executors_keep_per_instance_order(store_url: str, runtime: Runtime):
    """Two executors draining one inbox at once still apply every instance's events in order."""
    rt = runtime
    chains = []
    for _ in range(4):
        sub = rt.executor.submit_start("information_exchange", "dic.focal_point", REQUEST)
        chains.append(sub.instance)
    for trigger, actor, values in ([
        ("send", "dic.focal_point", {"dispatch_no": "CV"}),
        ("acknowledge", "police.focal_point", {}),
        ("mark_complex", "police.focal_point", {}),
        ("extend", "police.leader", {"extension_reason": "Cần xác minh thêm"}),
        ("answer", "police.focal_point", {"answer": "CV-tl"}),
    ]):
        for instance in chains:
            rt.executor.submit_fire(instance, trigger, actor, values)
    other = SqlStore(store_url)
    try:
        executors = [rt.executor, Executor(other, rt.policy)]
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda ex: ex.drain(), executors))
        rt.executor.drain()
    finally:
        other.dispose()
    with rt.store.reading() as conn:
        statuses = conn.execute(select(inbox_table.c.status, func.count()).group_by(inbox_table.c.status)).all()
    assert dict(statuses) == {"applied": 24}
    for instance in chains:
        assert state_of(rt, instance) == "answered"
        ids = [r["inbox_id"] for r in history_rows(rt.store, instance)]
        assert ids == sorted(ids) and len(ids) == 6
    assert chain_intact(rt.store)


# --------------------------------------------------------------------------- outbox


def escalate(rt: Runtime) -> str:
    """An information request driven to `escalated`, whose emit starts an emergency review; its id."""
    instance = start(rt, "information_exchange", "dic.focal_point", **REQUEST)
    for trigger, actor, values in [("send", "dic.focal_point", {"dispatch_no": "CV-1"}),
                                   ("acknowledge", "police.focal_point", {}),
                                   ("overdue", "system", {}), ("escalate", "system", {})]:
        assert fire(rt, instance, trigger, actor, **values)[0] == inbox.APPLIED
    return instance


def reviews(rt: Runtime) -> list[dict]:
    """The emergency_review instances."""
    with rt.store.reading() as conn:
        return [dict(r) for r in conn.execute(select(instances).where(instances.c.workflow == "emergency_review")).mappings()]


def emit_row(rt: Runtime, name: str) -> dict:
    """The outbox row that emits event `name`."""
    with rt.store.reading() as conn:
        rows = [dict(r) for r in conn.execute(select(outbox_table).where(outbox_table.c.kind == "emit")).mappings()]
    matching = [r for r in rows if r["payload"]["name"] == name]
    assert len(matching) == 1
    return matching[0]


def reset_to_pending(rt: Runtime, row_id: int) -> None:
    """Put a dispatched outbox row back to pending, as if the process died before marking it done."""
    with rt.store.transaction() as conn:
        conn.execute(update(outbox_table).where(outbox_table.c.id == row_id).values(
            status=outbox.PENDING, attempts=0, done_at=None, next_at=clock.now()))


def test_emit_starts_rule_workflow_once(runtime: Runtime):
    """An emitted request.unresolved starts one emergency review carrying the source request."""
    rt = runtime
    instance = escalate(rt)
    found = reviews(rt)
    assert len(found) == 1
    review = found[0]
    assert review["state"] == "proposed"
    assert review["fields"]["source_instance"] == instance
    assert review["fields"]["source_workflow"] == "information_exchange"
    assert review["fields"]["proposed_by"] == "dic"
    row = emit_row(rt, "request.unresolved")
    assert row["status"] == outbox.DONE and row["attempts"] == 1
    start_rows = history_rows(rt.store, review["id"])
    assert start_rows[0]["actor"] == "system" and start_rows[0]["data"]["rule"] == "propose_emergency_review"


def test_redispatched_emit_takes_effect_once(runtime: Runtime):
    """Dispatching the same emit again after a simulated crash (row reset to pending) starts no second instance."""
    rt = runtime
    escalate(rt)
    row = emit_row(rt, "request.unresolved")
    inbox_rows, seq = count(rt.store, inbox_table), last_seq(rt.store)
    for _ in range(2):
        reset_to_pending(rt, row["id"])
        assert outbox.dispatch_due(rt.store, rt.policy) == 1
        assert rt.settle() == []
    assert len(reviews(rt)) == 1
    assert count(rt.store, inbox_table) == inbox_rows
    assert last_seq(rt.store) == seq
    assert emit_row(rt, "request.unresolved")["status"] == outbox.DONE


def test_redispatched_fire_rule_takes_effect_once(runtime: Runtime):
    """A lapsed review refers its source request to the People's Committee once, even when the emit is dispatched again."""
    rt = runtime
    instance = escalate(rt)
    review = reviews(rt)[0]["id"]
    assert fire(rt, review, "consent_expired", "system")[0] == inbox.APPLIED
    assert state_of(rt, instance) == "referred"
    referrals = [r for r in history_rows(rt.store, instance) if r["trigger"] == "refer_to_ubnd"]
    assert len(referrals) == 1 and referrals[0]["outcome"] == inbox.APPLIED
    row = emit_row(rt, "review.consent_lapsed")
    reset_to_pending(rt, row["id"])
    assert outbox.dispatch_due(rt.store, rt.policy) == 1
    assert rt.settle() == []
    assert [r for r in history_rows(rt.store, instance) if r["trigger"] == "refer_to_ubnd"] == referrals


def test_redispatched_start_action_takes_effect_once(runtime: Runtime):
    """A `start` action dispatched twice starts its workflow once."""
    rt = runtime
    now = clock.now()
    source = {"workflow": "grassroots", "instance": "grassroots-0000abcd", "state": "handed_to_inspection",
              "from": "recorded", "trigger": "hand_to_inspection", "actor": "dic.leader", "fields": {}}
    payload = {"workflow": "inspection", "values": {"target": "Công ty ABC", "lead": "dic", "partner": "police",
                                                    "unplanned": True}, "source": source}
    with rt.store.transaction() as conn:
        row_id = conn.execute(insert(outbox_table).values(instance=source["instance"], kind="start", payload=payload,
                                                          status="pending", attempts=0, next_at=now, created_at=now)).inserted_primary_key[0]
    outcomes = rt.settle()
    assert [o.status for o in outcomes] == [inbox.APPLIED]
    reset_to_pending(rt, row_id)
    assert rt.settle() == []
    assert count(rt.store, instances, instances.c.workflow == "inspection") == 1


def test_failing_action_retried_with_backoff_then_succeeds(runtime: Runtime, stepped_clock, monkeypatch, log_records):
    """A notify that fails twice is retried after 2 s and 4 s, then runs once and is marked done."""
    rt = runtime
    instance = start(rt, "information_exchange", "dic.focal_point", **REQUEST)
    real_run, calls = outbox._run, []

    def flaky(conn, policy, action):
        calls.append(action.id)
        if len(calls) <= 2:
            raise RuntimeError("mail relay down")
        real_run(conn, policy, action)

    monkeypatch.setattr(outbox, "_run", flaky)
    sub = rt.executor.submit_fire(instance, "send", "dic.focal_point", {"dispatch_no": "CV-1"})
    rt.executor.drain()
    assert outcome_of(rt, sub)[0] == inbox.APPLIED
    for attempt, delay in [(1, 2), (2, 4)]:
        t0 = clock.now()
        assert outbox.dispatch_due(rt.store, rt.policy) == 1
        with rt.store.reading() as conn:
            row = conn.execute(select(outbox_table)).mappings().one()
        assert (row["status"], row["attempts"], row["last_error"]) == (outbox.PENDING, attempt, "mail relay down")
        assert row["next_at"] == t0 + timedelta(seconds=delay)
        stepped_clock.advance(timedelta(seconds=delay - 1))
        assert outbox.dispatch_due(rt.store, rt.policy) == 0
        stepped_clock.advance(timedelta(seconds=1))
    assert outbox.dispatch_due(rt.store, rt.policy) == 1
    with rt.store.reading() as conn:
        row = conn.execute(select(outbox_table)).mappings().one()
    assert (row["status"], row["attempts"]) == (outbox.DONE, 3)
    notified = [r for r in log_records if r["message"].startswith("notify ")]
    assert len(notified) == 1


def test_failing_action_marked_failed_after_max_attempts(runtime: Runtime, stepped_clock, log_records):
    """An action that always fails is retried MAX_ATTEMPTS times with growing delays, then kept as `failed`, never deleted."""
    rt = runtime
    now = clock.now()
    with rt.store.transaction() as conn:
        conn.execute(insert(outbox_table).values(instance="x-1", kind="bogus", payload={"source": {"instance": "x-1"}},
                                                 status="pending", attempts=0, next_at=now, created_at=now))
    delays = []
    for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
        assert outbox.dispatch_due(rt.store, rt.policy) == 1
        with rt.store.reading() as conn:
            row = conn.execute(select(outbox_table)).mappings().one()
        assert row["attempts"] == attempt and "unknown action kind 'bogus'" in row["last_error"]
        assert row["status"] == (outbox.FAILED if attempt == outbox.MAX_ATTEMPTS else outbox.PENDING)
        delays.append(row["next_at"] - clock.now())
        assert outbox.dispatch_due(rt.store, rt.policy) == 0
        stepped_clock.set(row["next_at"])
    assert delays == sorted(delays) and delays[0] == timedelta(seconds=2) and len(set(delays)) == len(delays)
    stepped_clock.advance(timedelta(days=30))
    assert outbox.dispatch_due(rt.store, rt.policy) == 0
    assert count(rt.store, outbox_table, outbox_table.c.status == outbox.FAILED) == 1
    errors = [r for r in log_records if r["level"] == "ERROR"]
    assert len(errors) == 1 and "failed for good" in errors[0]["message"]


def test_notify_logs_recipients(runtime: Runtime, log_records):
    """A notify action writes one log line naming each recipient (people listed in config.yaml) and the message."""
    rt = runtime
    instance = start(rt, "information_exchange", "dic.focal_point", **REQUEST)
    log_records.clear()
    assert fire(rt, instance, "send", "dic.focal_point", dispatch_no="CV-1")[0] == inbox.APPLIED
    lines = [r for r in log_records if r.get("outcome") == "notified"]
    assert len(lines) == 1
    line = lines[0]
    assert line["recipients"] == ["police.focal_point:nguyen_thi_b"]
    assert line["instance"] == instance
    assert "police.focal_point:nguyen_thi_b" in line["message"]
    assert "Có công văn yêu cầu trao đổi thông tin mới cần tiếp nhận." in line["message"]


# --------------------------------------------------------------------------- pinned versions


def test_instance_keeps_pinned_workflow_version(shipped_policy: Path, store: SqlStore):
    """After a workflow is edited and the policy reloaded, old instances follow the old definition and new ones the new."""
    old_policy = load_policy(shipped_policy)
    rt = Runtime(old_policy, store, Executor(store, old_policy))
    old = start(rt, "information_exchange", "dic.focal_point", **REQUEST)
    assert fire(rt, old, "send", "dic.focal_point", dispatch_no="CV-1")[0] == inbox.APPLIED

    path = shipped_policy.parent / "workflows" / "information_exchange.yaml"
    text = path.read_text(encoding="utf-8")
    before = "    from: sent\n    to: in_progress\n    by: [$recipient.focal_point, $recipient.staff]\n"
    assert text.count(before) == 1
    path.write_text(text.replace(before, before.replace("to: in_progress\n", "to: in_progress_complex\n")), encoding="utf-8")
    new_policy = load_policy(shipped_policy)
    assert new_policy.workflow_version("information_exchange") != old_policy.workflow_version("information_exchange")

    rt = Runtime(new_policy, store, Executor(store, new_policy))  # a fresh process: nothing cached
    new = start(rt, "information_exchange", "dic.focal_point", **REQUEST)
    assert fire(rt, new, "send", "dic.focal_point", dispatch_no="CV-2")[0] == inbox.APPLIED
    assert fire(rt, old, "acknowledge", "police.focal_point") == (inbox.APPLIED, "applied: sent -> in_progress")
    assert fire(rt, new, "acknowledge", "police.focal_point") == (inbox.APPLIED, "applied: sent -> in_progress_complex")
    with store.reading() as conn:
        versions = dict(conn.execute(select(instances.c.id, instances.c.version)).all())
        armed = dict(conn.execute(select(timers.c.instance, timers.c.state).where(timers.c.status == "armed")).all())
    assert versions[old] == old_policy.workflow_version("information_exchange")
    assert versions[new] == new_policy.workflow_version("information_exchange")
    assert armed == {old: "in_progress", new: "in_progress_complex"}


# --------------------------------------------------------------------------- refusals that happen late


def test_failing_set_action_refuses_instead_of_blocking_inbox(minimal_policy: Path, store: SqlStore):
    """A `set` action whose value does not fit its field refuses the event; later events still apply."""
    path = minimal_policy.parent / "workflows" / "request.yaml"
    text = path.read_text(encoding="utf-8")
    before = "    then:\n      - emit: request.answered\n"
    assert text.count(before) == 1
    path.write_text(text.replace(before, '    then:\n      - set: {reply_by: "=fields.subject"}\n      - emit: request.answered\n'),
                    encoding="utf-8")
    policy = load_policy(minimal_policy)
    rt = Runtime(policy, store, Executor(store, policy))
    instance = start(rt, "request", "a.focal_point", recipient="b", subject="không phải ngày giờ")
    before_snapshot = snapshot(store)
    answer = rt.executor.submit_fire(instance, "answer", "b.focal_point")
    other = rt.executor.submit_start("request", "b.focal_point", {"recipient": "a", "subject": "Yêu cầu khác"})
    rt.settle()
    status, text = outcome_of(rt, answer)
    assert status == inbox.REFUSED
    assert "field 'reply_by' expects a date and time" in text
    assert state_of(rt, instance) == "open"
    assert outcome_of(rt, other)[0] == inbox.APPLIED
    after = snapshot(store)
    assert [r for r in after["instances"] if r["id"] == instance] == [r for r in before_snapshot["instances"] if r["id"] == instance]


def test_refusal_after_quorum_keeps_consents(shipped_policy: Path, store: SqlStore):
    """When the consent that completes the quorum is refused later in the transition, the earlier consents stay."""
    path = shipped_policy.parent / "workflows" / "emergency_review.yaml"
    text = path.read_text(encoding="utf-8")
    before = "      expires: {working_days: 1}\n    then:\n"
    assert text.count(before) == 1
    path.write_text(text.replace(before, before + '      - set: {meeting_at: "=fields.issue"}\n'), encoding="utf-8")
    policy = load_policy(shipped_policy)
    rt = Runtime(policy, store, Executor(store, policy))
    review = start(rt, "emergency_review", "dic.leader", issue="Không phải ngày giờ")
    assert fire(rt, review, "agree", "dic.leader")[1].endswith("waiting for police")
    before_snapshot = snapshot(store)
    status, text = fire(rt, review, "agree", "police.leader")
    assert status == inbox.REFUSED and "field 'meeting_at'" in text
    assert snapshot(store) == before_snapshot
