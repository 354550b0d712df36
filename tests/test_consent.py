"""Consent from "the other parties" (issue #10 item 3), on the three-party example agreement
(examples/quarterly: a joint inspection needs the leaders of the parties other than the proposer)
and on a two-party variant; and the documented decision that consents survive a state change.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO_ROOT, copy_shipped_policy
from sqlalchemy import select

from engine.execution.executor import Executor
from engine.execution.runtime import Runtime
from engine.policy.loader import load_policy
from engine.rules.consent import eligible_parties
from engine.store import inbox
from engine.store.database import SqlStore, instances

EXAMPLE = REPO_ROOT / "examples" / "quarterly"
INSPECTION = {"subject": "Kiểm tra xả thải của cơ sở A", "requester": "dic"}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLE, tmp_path / "quarterly")
    return tmp_path / "quarterly" / "config.yaml"


def running(config: Path, store_path: Path) -> Runtime:
    policy = load_policy(config)
    store = SqlStore(f"sqlite:///{store_path}")
    return Runtime(policy, store, Executor(store, policy))


def submit(rt: Runtime, sub) -> tuple[str, str]:
    rt.settle()
    with rt.store.reading() as conn:
        return inbox.status(conn, sub.inbox_id)


def state_of(rt: Runtime, instance: str) -> str:
    with rt.store.reading() as conn:
        return conn.execute(select(instances.c.state).where(instances.c.id == instance)).scalar_one()


def test_three_parties_the_two_others_consent(example, tmp_path, coopflow_cli, monkeypatch):
    rt = running(example, tmp_path / "s.db")
    try:
        started = rt.executor.submit_start("joint_inspection", "dic.leader", INSPECTION)
        assert submit(rt, started)[0] == inbox.APPLIED
        instance = started.instance
        status, text = submit(rt, rt.executor.submit_fire(instance, "accept", "dic.leader"))
        assert status == inbox.REFUSED and "party 'dic' is not among those whose consent 'accept' needs (monre, police)" in text
        status, text = submit(rt, rt.executor.submit_fire(instance, "accept", "monre.leader"))
        assert status == inbox.APPLIED and "1 of 2, waiting for police" in text, text
        assert state_of(rt, instance) == "proposed"
    finally:
        rt.store.dispose()
    monkeypatch.setenv("COOPFLOW_STORE_URL", f"sqlite:///{tmp_path / 's.db'}")
    code, out, err = coopflow_cli("status", instance, "-c", str(example))
    assert code == 0 and "consent to accept still needed from: police" in out, out + err
    assert "needed from: dic" not in out and "monre" in out
    rt = running(example, tmp_path / "s.db")
    try:
        status, text = submit(rt, rt.executor.submit_fire(instance, "accept", "police.leader"))
        assert status == inbox.APPLIED and state_of(rt, instance) == "accepted", text
    finally:
        rt.store.dispose()


def two_party_variant(config: Path) -> Path:
    """The inspection's consent from the parties listed in `partners`, other than the requester."""
    wf = config.parent / "workflows" / "joint_inspection.yaml"
    text = wf.read_text(encoding="utf-8")
    text = text.replace("parties: {others_than: requester}", "parties: {in: partners, others_than: requester}")
    text = text.replace("  report:\n", "  partners:\n    type: list\n    title: Các cơ quan tham gia\n  report:\n")
    wf.write_text(text, encoding="utf-8")
    return config


def test_two_parties_listed_in_a_field_the_other_consents(example, tmp_path):
    rt = running(two_party_variant(example), tmp_path / "s.db")
    try:
        started = rt.executor.submit_start("joint_inspection", "dic.leader", {**INSPECTION, "partners": ["dic", "police"]})
        assert submit(rt, started)[0] == inbox.APPLIED
        status, text = submit(rt, rt.executor.submit_fire(started.instance, "accept", "monre.leader"))
        assert status == inbox.REFUSED and "(police)" in text, text
        status, text = submit(rt, rt.executor.submit_fire(started.instance, "accept", "police.leader"))
        assert status == inbox.APPLIED and state_of(rt, started.instance) == "accepted", text
        bad = rt.executor.submit_start("joint_inspection", "dic.leader", {**INSPECTION, "partners": ["dic", "nobody"]})
        submit(rt, bad)
        status, text = submit(rt, rt.executor.submit_fire(bad.instance, "accept", "police.leader"))
        assert status == inbox.REFUSED and "field 'partners' names nobody, which is not a party" in text, text
        alone = rt.executor.submit_start("joint_inspection", "dic.leader", {**INSPECTION, "partners": ["dic"]})
        submit(rt, alone)
        status, text = submit(rt, rt.executor.submit_fire(alone.instance, "accept", "police.leader"))
        assert status == inbox.REFUSED and "no party can consent for this instance" in text, text
    finally:
        rt.store.dispose()


def test_eligible_parties_forms(example):
    policy = load_policy(example)
    accept = next(t for t in policy.workflows["joint_inspection"].transitions if t.trigger == "accept")
    config = policy.config
    assert eligible_parties(accept.approvals, {"requester": "monre"}, config) == ["dic", "police"]
    among = accept.approvals.model_copy(update={"parties": accept.approvals.parties.model_copy(update={"among": ["dic", "monre"]})})
    assert eligible_parties(among, {"requester": "monre"}, config) == ["dic"]


def test_consents_survive_a_state_change(tmp_path):
    """Shipped periodic review: dic's consent to cancel, given in `scheduled`, still counts in `reports_due`."""
    config = copy_shipped_policy(tmp_path / "policy")
    rt = running(config, tmp_path / "s.db")
    try:
        started = rt.executor.submit_start("periodic_review", "system", {"period": "2027H1", "host": "dic"})
        submit(rt, started)
        status, text = submit(rt, rt.executor.submit_fire(started.instance, "cancel", "dic.leader", {"cancel_reason": "Trùng lịch"}))
        assert status == inbox.APPLIED and "waiting for police" in text, text
        assert submit(rt, rt.executor.submit_fire(started.instance, "request_reports", "system"))[0] == inbox.APPLIED
        assert state_of(rt, started.instance) == "reports_due"
        status, text = submit(rt, rt.executor.submit_fire(started.instance, "cancel", "police.leader", {"cancel_reason": "Trùng lịch"}))
        assert status == inbox.APPLIED and state_of(rt, started.instance) == "cancelled", text
    finally:
        rt.store.dispose()


@pytest.mark.parametrize(("parties", "message"), [
    ("{others_than: subject}", "'subject' is not a party field of workflow 'joint_inspection'"),
    ("{in: subject}", "'subject' is not a party or list field"),
    ("{in: requester, among: [dic]}", "give 'in' (a field) or 'among' (a list of parties), not both"),
    ("{among: [dic, ghost], others_than: requester}", "unknown party 'ghost'"),
])
def test_mistakes_are_reported_by_check(example, coopflow_cli, parties, message):
    wf = example.parent / "workflows" / "joint_inspection.yaml"
    wf.write_text(wf.read_text(encoding="utf-8").replace("parties: {others_than: requester}", f"parties: {parties}"), encoding="utf-8")
    code, out, err = coopflow_cli("check", "-c", str(example))
    assert code == 1 and message in out + err, out + err
    assert "Traceback" not in out + err
