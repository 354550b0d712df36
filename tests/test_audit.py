"""Tests for `coopflow audit verify`: the hash-chained history detects rows edited, deleted or forged by hand.

Each case builds a small history through the executor, tampers with it in SQL as an intruder
with database access would, then runs the real CLI in a subprocess against a copy of the
shipped policy whose config.yaml points at the test store. Every case runs on SQLite and on
PostgreSQL (the `store` fixture).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from engine.execution.executor import Executor
from engine.execution.runtime import Runtime
from engine.policy.loader import load_policy
from engine.store import history, inbox
from engine.store.database import SqlStore
from engine.store.database import history as history_table

REQUEST = {"requester": "dic", "recipient": "police", "subject": "Danh sách tài khoản giả mạo"}
ROWS = 6  # history rows written by `audited`
MIDDLE = 3  # a refused event, in the middle of the chain


@dataclass
class Audited:
    """A store holding a known history, and a policy copy whose config.yaml names that store."""

    store: SqlStore
    config: Path


@pytest.fixture
def audited(shipped_policy: Path, store_url: str, store: SqlStore) -> Audited:
    """Six history rows (starts, a refusal in the middle, transitions) in the test store."""
    text = shipped_policy.read_text(encoding="utf-8")
    assert text.count("store: sqlite:///coopflow.db\n") == 1
    shipped_policy.write_text(text.replace("store: sqlite:///coopflow.db\n", f"store: {json.dumps(store_url)}\n"),
                              encoding="utf-8")
    policy = load_policy(shipped_policy)
    rt = Runtime(policy, store, Executor(store, policy))
    a = rt.executor.submit_start("information_exchange", "dic.focal_point", REQUEST)
    b = rt.executor.submit_start("information_exchange", "police.focal_point", {**REQUEST, "requester": "police", "recipient": "dic"})
    events = [
        (a.instance, "acknowledge", "police.focal_point", {}),
        (a.instance, "send", "dic.focal_point", {"dispatch_no": "CV-01"}),
        (a.instance, "acknowledge", "police.focal_point", {}),
        (b.instance, "withdraw", "police.focal_point", {}),
    ]
    for instance, trigger, actor, values in events:
        rt.executor.submit_fire(instance, trigger, actor, values)
    rt.settle()
    rows = read_rows(store)
    assert len(rows) == ROWS
    assert rows[MIDDLE - 1]["outcome"] == inbox.REFUSED
    assert [r["outcome"] for r in rows].count(inbox.REFUSED) == 1
    with store.reading() as conn:
        assert history.verify(conn) == (ROWS, None)
    return Audited(store, shipped_policy)


def read_rows(store: SqlStore) -> list[dict]:
    """Every history row, in seq order."""
    with store.reading() as conn:
        return [dict(r) for r in conn.execute(select(history_table).order_by(history_table.c.seq)).mappings()]


def audit_verify(config: Path) -> subprocess.CompletedProcess:
    """Run `coopflow audit verify -c CONFIG` in a fresh process (the store comes from the config only)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COOPFLOW_STORE_URL", "COOPFLOW_CLOCK_START", "COOPFLOW_CONFIG")}
    return subprocess.run([sys.executable, "-m", "engine", "audit", "verify", "-c", str(config)],
                          capture_output=True, text=True, env=env, timeout=60)


def row(conn: Connection, seq: int) -> dict:
    """One history row."""
    return dict(conn.execute(select(history_table).where(history_table.c.seq == seq)).mappings().one())


def shift_up(conn: Connection, from_seq: int) -> None:
    """Renumber rows seq >= from_seq to seq + 1 (two steps, so PostgreSQL's immediate key check never sees a clash)."""
    conn.execute(update(history_table).where(history_table.c.seq >= from_seq).values(seq=history_table.c.seq + 1_000_000))
    conn.execute(update(history_table).where(history_table.c.seq >= 1_000_000).values(seq=history_table.c.seq - 999_999))


def forged(template: dict, seq: int, prev_hash: str, well_formed: bool) -> dict:
    """A history row that was never applied: a consent 'recorded' for the police leader."""
    fake = {**template, "seq": seq, "kind": "fire", "trigger": "answer", "actor": "police.leader", "outcome": inbox.APPLIED,
            "reason": None, "from_state": "in_progress", "to_state": "answered", "data": {"set": {"answer": "đã trả lời"}},
            "at": template["at"] + timedelta(seconds=1), "prev_hash": prev_hash}
    fake["hash"] = history.row_hash(prev_hash, fake) if well_formed else "f" * 64
    return fake


# ---- tampering, each as an intruder with SQL access would do it


def edit_reason(conn: Connection) -> None:
    conn.execute(update(history_table).where(history_table.c.seq == MIDDLE).values(reason="không có lý do"))


def edit_actor_of_applied_row(conn: Connection) -> None:
    conn.execute(update(history_table).where(history_table.c.seq == MIDDLE + 1).values(actor="police.leader"))


def delete_middle(conn: Connection) -> None:
    conn.execute(delete(history_table).where(history_table.c.seq == MIDDLE))


def delete_middle_and_renumber(conn: Connection) -> None:
    conn.execute(delete(history_table).where(history_table.c.seq == MIDDLE))
    for seq in range(MIDDLE + 1, ROWS + 1):
        conn.execute(update(history_table).where(history_table.c.seq == seq).values(seq=seq - 1))


def insert_forged_middle(conn: Connection) -> None:
    before = row(conn, MIDDLE - 1)
    shift_up(conn, MIDDLE)
    conn.execute(insert(history_table).values(**forged(before, MIDDLE, before["hash"], well_formed=False)))


def insert_forged_middle_well_formed(conn: Connection) -> None:
    before = row(conn, MIDDLE - 1)
    shift_up(conn, MIDDLE)
    conn.execute(insert(history_table).values(**forged(before, MIDDLE, before["hash"], well_formed=True)))


def append_forged_well_formed(conn: Connection) -> None:
    last = row(conn, ROWS)
    conn.execute(insert(history_table).values(**forged(last, ROWS + 1, last["hash"], well_formed=True)))


def delete_last(conn: Connection) -> None:
    conn.execute(delete(history_table).where(history_table.c.seq == ROWS))


def rehash_middle(conn: Connection) -> None:
    target = row(conn, MIDDLE)
    target["reason"] = "đã xử lý đúng hạn"
    conn.execute(update(history_table).where(history_table.c.seq == MIDDLE).values(
        reason=target["reason"], hash=history.row_hash(target["prev_hash"], target)))


def rehash_middle_and_relink_next(conn: Connection) -> None:
    target = row(conn, MIDDLE)
    target["reason"] = "đã xử lý đúng hạn"
    new_hash = history.row_hash(target["prev_hash"], target)
    conn.execute(update(history_table).where(history_table.c.seq == MIDDLE).values(reason=target["reason"], hash=new_hash))
    conn.execute(update(history_table).where(history_table.c.seq == MIDDLE + 1).values(prev_hash=new_hash))


def rehash_last(conn: Connection) -> None:
    target = row(conn, ROWS)
    target["actor"] = "dic.leader"
    conn.execute(update(history_table).where(history_table.c.seq == ROWS).values(
        actor=target["actor"], hash=history.row_hash(target["prev_hash"], target)))


TAMPERING = [
    # (a) a history row's reason edited by hand
    pytest.param(edit_reason, MIDDLE, "content does not match its hash", id="a-edit-reason"),
    pytest.param(edit_actor_of_applied_row, MIDDLE + 1, "content does not match its hash", id="a-edit-actor"),
    # (b) a middle row deleted
    pytest.param(delete_middle, MIDDLE, "row deleted", id="b-delete-middle"),
    pytest.param(delete_middle_and_renumber, MIDDLE, "link to the previous row does not match", id="b-delete-middle-renumber"),
    # (c) a forged row inserted
    pytest.param(insert_forged_middle, MIDDLE, "content does not match its hash", id="c-forged-middle"),
    pytest.param(insert_forged_middle_well_formed, MIDDLE + 1, "link to the previous row does not match",
                 id="c-forged-middle-well-formed"),
    pytest.param(append_forged_well_formed, ROWS + 1, "should end at row 6 but goes on to row 7", id="c-forged-appended"),
    # (d) the last row deleted
    pytest.param(delete_last, ROWS, "should end at row 6 but ends at row 5", id="d-delete-last"),
    # (e) a row edited with its hash (and the next row's link) recomputed consistently
    pytest.param(rehash_middle, MIDDLE + 1, "link to the previous row does not match", id="e-rehash-middle"),
    pytest.param(rehash_middle_and_relink_next, MIDDLE + 1, "content does not match its hash", id="e-rehash-and-relink"),
    pytest.param(rehash_last, ROWS, "does not match the chain head", id="e-rehash-last"),
]


def test_verify_intact_store(audited: Audited):
    """On an untouched store `coopflow audit verify` exits 0 and counts every row."""
    done = audit_verify(audited.config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ok: {ROWS} history rows, chain intact; 0 anchors match; state follows from the history (2 instances"), done.stdout


def test_verify_empty_store(store: SqlStore):
    """A store with no history yet verifies as intact."""
    with store.reading() as conn:
        assert history.verify(conn) == (0, None)


@pytest.mark.parametrize(("tamper", "bad_seq", "why"), TAMPERING)
def test_verify_names_first_bad_row(audited: Audited, tamper, bad_seq: int, why: str):
    """After tampering, verification stops at the first row where the chain breaks and says why."""
    with audited.store.transaction() as conn:
        tamper(conn)
    with audited.store.reading() as conn:
        checked, broken = history.verify(conn)
    assert broken is not None
    assert broken.seq == bad_seq, str(broken)
    assert why in broken.reason


CLI_CASES = ["a-edit-reason", "b-delete-middle", "c-forged-middle", "d-delete-last", "e-rehash-middle"]


@pytest.mark.parametrize(("tamper", "bad_seq", "why"), [p for p in TAMPERING if p.id in CLI_CASES])
def test_cli_verify_exits_1_naming_first_bad_row(audited: Audited, tamper, bad_seq: int, why: str):
    """After tampering, `coopflow audit verify` exits 1 and names the first bad row on stderr."""
    with audited.store.transaction() as conn:
        tamper(conn)
    done = audit_verify(audited.config)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stdout == ""
    message = done.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"TAMPERED: history row {bad_seq}: .+", message), message
    assert why in message
