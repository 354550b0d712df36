"""`coopflow status` without filters: open and overdue instances per clause, and who owes the next step."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from conftest import shipped_policy_with_store

from engine.execution.executor import Executor
from engine.execution.runtime import Runtime
from engine.policy.loader import load_policy
from engine.scheduling import timers
from engine.store.database import SqlStore

MONDAY = datetime.fromisoformat("2027-03-01T09:00:00+07:00")


@pytest.fixture
def config(tmp_path: Path, monkeypatch) -> Path:
    """A shipped-policy copy whose store is a tmp SQLite file."""
    monkeypatch.delenv("COOPFLOW_STORE_URL", raising=False)
    return shipped_policy_with_store(tmp_path / "policy", tmp_path / "store.db")


@pytest.fixture
def built(cli_ok, config, stepped_clock) -> dict[str, str]:
    """On Monday 1 March 2027 09:00, through the CLI: requests A (sent), B (drafted by police), C (answered),
    emergency review E (dic consented) and periodic review P (scheduled, hosted by dic)."""
    ok = cli_ok
    stepped_clock.set(MONDAY)

    def request(actor: str, requester: str, recipient: str) -> str:
        return ok("start", "information_exchange", "--as", actor, "--set", f"requester={requester}",
                  "--set", f"recipient={recipient}", "--set", "subject=Trao đổi thông tin")

    ids = {"A": request("dic.focal_point", "dic", "police")}
    ok("fire", ids["A"], "send", "--as", "dic.focal_point", "--set", "dispatch_no=1/STTTT")
    ids["B"] = request("police.focal_point", "police", "dic")
    ids["C"] = request("dic.focal_point", "dic", "police")
    ok("fire", ids["C"], "send", "--as", "dic.focal_point", "--set", "dispatch_no=2/STTTT")
    ok("fire", ids["C"], "acknowledge", "--as", "police.focal_point")
    ok("fire", ids["C"], "answer", "--as", "police.leader", "--set", "answer=Đã cung cấp")
    ids["E"] = ok("start", "emergency_review", "--as", "dic.leader", "--set", "issue=Sự cố")
    ok("fire", ids["E"], "agree", "--as", "dic.leader")
    ids["P"] = ok("start", "periodic_review", "--as", "system", "--set", "host=dic", "--set", "period=2027H1")
    return ids


def overview(coopflow_cli, config) -> dict:
    code, out, err = coopflow_cli("status", "--json", "-c", config)
    assert code == 0, err
    return json.loads(out)


def counts(data: dict) -> dict[str, tuple[int, int]]:
    return {w["workflow"]: (w["open"], w["overdue"]) for w in data["workflows"] if w["open"] or w["overdue"]}


def owes(data: dict) -> dict[str, dict[str, list[str]]]:
    return {p["party"]: {s["instance"]: s["triggers"] for s in p["next_steps"]} for p in data["parties"]}


def fire_due_timers(config: Path, stepped_clock, until: datetime) -> None:
    """Do what the daemon does: fire each armed deadline at its due instant, up to `until`."""
    policy = load_policy(config)
    store = SqlStore(f"sqlite:///{config.parent.parent / 'store.db'}")
    runtime = Runtime(policy, store, Executor(store, policy))
    try:
        while True:
            with store.reading() as conn:
                due = timers.armed(conn, due_before=until)
            if not due:
                break
            stepped_clock.set(due[0].due_at)
            with store.transaction() as conn:
                timers.submit_due(conn, due[0].id)
            runtime.settle()
    finally:
        store.dispose()
    stepped_clock.set(until)


def test_open_per_clause_and_who_owes_the_next_step(coopflow_cli, config, built):
    """Open instances are counted per clause, and each party is shown the steps its roles may take."""
    data = overview(coopflow_cli, config)
    assert counts(data) == {"information_exchange": (2, 0), "emergency_review": (1, 0), "periodic_review": (1, 0)}
    assert data["overdue"] == []
    assert data["now"] == "2027-03-01T09:00:00+07:00"
    assert owes(data) == {
        # $requester / $recipient resolved per instance; dic already consented to E's `agree`;
        # taking back and cancelling are `optional:`, never owed.
        "dic": {built["P"]: ["request_reports"]},
        "police": {built["A"]: ["acknowledge"], built["B"]: ["send", "report_incident"], built["E"]: ["agree"]},
        "ubnd": {},
    }
    clause = {w["workflow"]: w["clause"] for w in data["workflows"]}
    assert clause["information_exchange"] == "2" and clause["emergency_review"] == "review.adhoc"


def test_a_passed_deadline_makes_an_instance_overdue(coopflow_cli, config, built, stepped_clock):
    """Once an armed deadline is past (not yet fired), its instance is overdue; an expired consent is owed again."""
    stepped_clock.set(datetime.fromisoformat("2027-03-03T09:00:00+07:00"))
    data = overview(coopflow_cli, config)
    assert counts(data) == {"information_exchange": (2, 1), "emergency_review": (1, 1), "periodic_review": (1, 0)}
    late = {o["instance"]: o["reasons"] for o in data["overdue"]}
    assert set(late) == {built["A"], built["E"]}
    assert [(r["why"], r["trigger"]) for r in late[built["A"]]] == [("deadline_passed", "deemed_received")]
    assert owes(data)["dic"][built["E"]] == ["agree"]


def test_a_lateness_transition_keeps_an_instance_overdue(coopflow_cli, config, built, stepped_clock):
    """A system-only deadline transition (deemed_received) leaves the request overdue; request_reports, which people
    may also fire, does not; a lapsed meeting proposal is final and no longer open."""
    fire_due_timers(config, stepped_clock, datetime.fromisoformat("2027-03-04T09:00:00+07:00"))
    data = overview(coopflow_cli, config)
    assert counts(data) == {"information_exchange": (2, 1), "periodic_review": (1, 0)}
    (late,) = data["overdue"]
    assert late["instance"] == built["A"] and late["state"] == "in_progress"
    assert [(r["why"], r["trigger"]) for r in late["reasons"]] == [("deadline_fired", "deemed_received")]
    steps = owes(data)
    assert steps["police"][built["A"]] == ["mark_complex", "answer", "refuse"]
    assert steps["dic"][built["P"]] == ["submit_reports"] and steps["police"][built["P"]] == ["submit_reports"]
    police_a = next(s for p in data["parties"] if p["party"] == "police" for s in p["next_steps"] if s["instance"] == built["A"])
    assert police_a["overdue"] is True and police_a["since"] == "2027-03-03T00:00:00+07:00"


def test_filters_keep_the_list_and_an_instance_keeps_its_detail(coopflow_cli, config, built):
    """--workflow / --state still list instances, and an INSTANCE still shows its detail."""
    code, out, err = coopflow_cli("status", "--workflow", "information_exchange", "--json", "-c", config)
    assert code == 0, err
    assert sorted(r["instance"] for r in json.loads(out)) == sorted([built["A"], built["B"], built["C"]])
    code, out, err = coopflow_cli("status", "--state", "sent", "--json", "-c", config)
    assert code == 0, err
    assert [r["instance"] for r in json.loads(out)] == [built["A"]]
    code, out, err = coopflow_cli("status", built["A"], "--json", "-c", config)
    assert code == 0, err
    assert json.loads(out)["instance"] == built["A"] and json.loads(out)["state"] == "sent"


def test_tables_show_clauses_and_next_steps(coopflow_cli, config, built):
    """The rich view prints the per-clause table and the who-owes-the-next-step table."""
    code, out, err = coopflow_cli("status", "-c", config)
    assert code == 0, err
    assert "open instances per clause" in out and "who owes the next step" in out
    assert "information_exchange — Phối hợp trao đổi thông tin" in out
    assert built["B"] in out and "send, report_incident" in out
    assert "overdue instance(s)" not in out
