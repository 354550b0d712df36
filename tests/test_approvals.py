"""Tests for approvals (consents) on the shipped emergency_review workflow: `agree` needs both leaders.

Every test runs on SQLite and on PostgreSQL (the `store` fixture).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from engine.execution.executor import Executor
from engine.execution.runtime import Runtime
from engine.policy.loader import load_policy
from engine.store import inbox
from engine.store.database import SqlStore, consents, instances
from engine.store.database import history as history_table

ICT = ZoneInfo("Asia/Ho_Chi_Minh")
ISSUE = "Tin giả về sự cố mất điện lan truyền trên mạng xã hội"


@pytest.fixture
def runtime(shipped_policy: Path, store: SqlStore) -> Runtime:
    """The shipped policy (a private copy) wired to the test store, no daemon."""
    policy = load_policy(shipped_policy)
    return Runtime(policy, store, Executor(store, policy))


def propose(rt: Runtime) -> str:
    """Start an emergency review proposed by the DIC leader; its id."""
    sub = rt.executor.submit_start("emergency_review", "dic.leader", {"issue": ISSUE, "proposed_by": "dic"})
    rt.settle()
    assert state_of(rt, sub.instance) == "proposed"
    return sub.instance


def agree(rt: Runtime, instance: str, actor: str, withdraw: bool = False) -> tuple[str, str]:
    """Submit `agree` (or its withdrawal) as `actor`, settle, and return (status, outcome)."""
    sub = rt.executor.submit_fire(instance, "agree", actor, withdraw=withdraw)
    rt.settle()
    with rt.store.reading() as conn:
        return inbox.status(conn, sub.inbox_id)


def state_of(rt: Runtime, instance: str) -> str:
    """The instance's current state."""
    with rt.store.reading() as conn:
        return conn.execute(select(instances.c.state).where(instances.c.id == instance)).scalar_one()


def consent_rows(rt: Runtime, instance: str) -> list[dict]:
    """The consents recorded for the instance, by party."""
    with rt.store.reading() as conn:
        query = select(consents).where(consents.c.instance == instance).order_by(consents.c.party)
        return [dict(r) for r in conn.execute(query).mappings()]


def parties(rt: Runtime, instance: str) -> list[str]:
    """The parties whose consent currently counts."""
    return [r["party"] for r in consent_rows(rt, instance)]


def test_both_leaders_needed(runtime: Runtime):
    """The DIC leader's consent is recorded and waits for the police; the police leader's consent convenes the meeting."""
    rt = runtime
    review = propose(rt)
    status, text = agree(rt, review, "dic.leader:tran_van_binh")
    assert status == inbox.APPLIED
    assert text == "applied: consent recorded for dic: 1 of 2, waiting for police"
    assert state_of(rt, review) == "proposed"
    assert parties(rt, review) == ["dic"]
    assert consent_rows(rt, review)[0]["actor"] == "dic.leader:tran_van_binh"
    status, text = agree(rt, review, "police.leader:hoang_van_son")
    assert (status, text) == (inbox.APPLIED, "applied: proposed -> convened")
    assert state_of(rt, review) == "convened"
    assert parties(rt, review) == []
    with rt.store.reading() as conn:
        rows = conn.execute(select(history_table.c.kind, history_table.c.from_state, history_table.c.to_state)
                            .where(history_table.c.instance == review).order_by(history_table.c.seq)).all()
    assert [tuple(r) for r in rows] == [("start", None, "proposed"), ("consent", "proposed", "proposed"),
                                        ("fire", "proposed", "convened")]


def test_same_party_counts_once(runtime: Runtime):
    """Two DIC leaders agreeing count as one party's consent; the meeting still waits for the police."""
    rt = runtime
    review = propose(rt)
    assert agree(rt, review, "dic.leader:tran_van_binh")[0] == inbox.APPLIED
    status, text = agree(rt, review, "dic.leader:le_thi_hoa")
    assert status == inbox.APPLIED
    assert text == "applied: consent recorded for dic (already counted): 1 of 2, waiting for police"
    assert state_of(rt, review) == "proposed"
    assert parties(rt, review) == ["dic"]
    assert agree(rt, review, "police.leader")[1] == "applied: proposed -> convened"


def test_withdraw_before_quorum_with_cli(runtime: Runtime, shipped_policy: Path, store_url: str):
    """`coopflow fire ... agree --withdraw` removes the DIC consent, so the police consent alone does not convene."""
    rt = runtime
    review = propose(rt)
    assert agree(rt, review, "dic.leader")[0] == inbox.APPLIED
    env = {**os.environ, "COOPFLOW_STORE_URL": store_url}
    env.pop("COOPFLOW_CLOCK_START", None)
    args = [sys.executable, "-m", "engine", "fire", review, "agree", "--as", "dic.leader:le_thi_hoa", "--withdraw",
            "-c", str(shipped_policy)]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "applied: consent of dic to 'agree' withdrawn"
    assert parties(rt, review) == []
    again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 1
    assert again.stdout.strip() == "refused: party 'dic' has no consent to 'agree' to withdraw"
    assert agree(rt, review, "police.leader")[1] == "applied: consent recorded for police: 1 of 2, waiting for dic"
    assert state_of(rt, review) == "proposed"


@pytest.mark.parametrize(
    ("given", "expires"),
    [
        (datetime(2025, 6, 2, 9, 0, tzinfo=ICT), datetime(2025, 6, 4, 0, 0, tzinfo=ICT)),
        (datetime(2025, 6, 6, 16, 0, tzinfo=ICT), datetime(2025, 6, 10, 0, 0, tzinfo=ICT)),
        (datetime(2025, 4, 29, 10, 0, tzinfo=ICT), datetime(2025, 5, 6, 0, 0, tzinfo=ICT)),
    ],
    ids=["monday", "friday-over-weekend", "before-30-4-holidays"],
)
def test_consent_expires_after_one_working_day(runtime: Runtime, stepped_clock, given: datetime, expires: datetime):
    """A consent expires at the end of the next working day (weekends, holidays and swapped days skipped)."""
    rt = runtime
    stepped_clock.set(given)
    review = propose(rt)
    agree(rt, review, "dic.leader")
    [row] = consent_rows(rt, review)
    assert row["at"] == given
    assert row["expires_at"] == expires


@pytest.mark.parametrize(
    ("offset", "counts"),
    [(timedelta(minutes=-1), True), (timedelta(0), False), (timedelta(days=2), False)],
    ids=["just-before-expiry", "at-expiry", "two-days-later"],
)
def test_expired_consent_no_longer_counts(runtime: Runtime, stepped_clock, offset: timedelta, counts: bool):
    """A consent counts until it expires; after that the other leader's consent waits again for the first party."""
    rt = runtime
    review = propose(rt)
    agree(rt, review, "dic.leader")
    [row] = consent_rows(rt, review)
    stepped_clock.set(row["expires_at"] + offset)
    status, text = agree(rt, review, "police.leader")
    assert status == inbox.APPLIED
    if counts:
        assert text == "applied: proposed -> convened"
        assert state_of(rt, review) == "convened"
    else:
        assert text == "applied: consent recorded for police: 1 of 2, waiting for dic"
        assert state_of(rt, review) == "proposed"
        assert parties(rt, review) == ["police"]


def test_renewed_consent_after_expiry_counts(runtime: Runtime, stepped_clock):
    """A party whose consent expired may consent again, and then the quorum is met."""
    rt = runtime
    review = propose(rt)
    agree(rt, review, "dic.leader")
    stepped_clock.advance(timedelta(days=3))
    assert agree(rt, review, "police.leader")[1].endswith("waiting for dic")
    assert agree(rt, review, "dic.leader")[1] == "applied: proposed -> convened"


@pytest.mark.parametrize(
    "actor",
    ["dic.staff", "police.staff:bui_van_nam", "dic.focal_point", "ubnd.leader"],
    ids=["dic-staff", "police-staff", "dic-focal-point", "ubnd-leader"],
)
def test_only_leaders_of_both_parties_may_consent(runtime: Runtime, actor: str):
    """Staff, focal points and the People's Committee leader cannot consent to the meeting."""
    rt = runtime
    review = propose(rt)
    assert agree(rt, review, "dic.leader")[0] == inbox.APPLIED
    status, text = agree(rt, review, actor)
    assert status == inbox.REFUSED
    assert f"{actor} may not fire 'agree'" in text
    assert parties(rt, review) == ["dic"]
    assert state_of(rt, review) == "proposed"


def test_party_outside_approval_parties_cannot_consent(shipped_policy: Path, store: SqlStore):
    """Even when any leader may fire `agree`, the ubnd leader's consent is refused: ubnd is not among the approval parties."""
    path = shipped_policy.parent / "workflows" / "emergency_review.yaml"
    text = path.read_text(encoding="utf-8")
    before = "    to: convened\n    by: [dic.leader, police.leader]\n"
    assert text.count(before) == 1
    path.write_text(text.replace(before, "    to: convened\n    by: [leader]\n"), encoding="utf-8")
    policy = load_policy(shipped_policy)
    rt = Runtime(policy, store, Executor(store, policy))
    review = propose(rt)
    status, text = agree(rt, review, "ubnd.leader:trinh_xuan_truong")
    assert status == inbox.REFUSED
    assert "party 'ubnd' is not among those whose consent 'agree' needs (dic, police)" in text
    assert parties(rt, review) == []
    assert agree(rt, review, "dic.leader")[1].endswith("waiting for police")
    assert agree(rt, review, "ubnd.leader")[0] == inbox.REFUSED
    assert parties(rt, review) == ["dic"]
    assert agree(rt, review, "police.leader")[1] == "applied: proposed -> convened"
