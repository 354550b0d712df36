"""Authorization on the instance as stored (issue #8): values sent with an event cannot make their sender eligible.

Who may fire and every guard see the fields BEFORE the event; a transition takes values only
for the fields it `accepts`. The four bypasses are driven through the `coopflow` command line
over a copy of the shipped policy; each is refused with a reason naming the field, and
`status` and `history` show the instance unchanged. The pure decision module
(engine.rules.decision) is checked directly for what views will reuse.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from engine.policy.loader import load_policy
from engine.policy.spec import WorkflowSpec
from engine.rules import decision
from engine.rules.actors import parse_actor
from tests.conftest import REPO_ROOT, copy_shipped_policy

NOW = datetime.fromisoformat("2027-03-01T09:00:00+07:00")


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    config = copy_shipped_policy(tmp_path / "policy")
    templates = REPO_ROOT / "templates"  # a folder config.yaml may name (notifications)
    if templates.is_dir() and not (config.parent / "templates").exists():
        shutil.copytree(templates, config.parent / "templates")
    return config


@pytest.fixture
def cli(coopflow_cli, policy_dir: Path, monkeypatch):
    """`coopflow ARGS -c CONFIG` expecting exit `code`; returns stdout (its first line for start/fire)."""
    monkeypatch.chdir(policy_dir.parent)
    monkeypatch.delenv("COOPFLOW_STORE_URL", raising=False)
    monkeypatch.setenv("COOPFLOW_CLOCK_START", NOW.isoformat())

    def run(*args: str, code: int = 0) -> str:
        got, out, err = coopflow_cli(*args, "-c", str(policy_dir))
        assert got == code, (args, out, err)
        assert "Traceback" not in err
        return out.strip() if code == 0 else (out + err).strip()

    run("init")
    return run


def _sets(**values: str) -> list[str]:
    return [part for name, value in values.items() for part in ("--set", f"{name}={value}")]


def start(cli, workflow: str, actor: str, **values: str) -> str:
    return cli("start", workflow, "--as", actor, *_sets(**values)).splitlines()[0]


def fire(cli, instance: str, trigger: str, actor: str, code: int = 0, **values: str) -> str:
    return cli("fire", instance, trigger, "--as", actor, *_sets(**values), code=code)


def status(cli, instance: str) -> dict:
    shown = json.loads(cli("status", instance, "--json"))
    return {"state": shown["state"], "fields": shown["fields"]}


def last_history(cli, instance: str) -> dict:
    return json.loads(cli("history", instance, "--json").splitlines()[-1])


def refused_unchanged(cli, instance: str, trigger: str, actor: str, expect: str, **values: str) -> None:
    """Fire an event that must be refused with `expect`; the instance is as it was, history says why."""
    before = status(cli, instance)
    text = fire(cli, instance, trigger, actor, code=1, **values)
    assert text == f"refused: {expect}"
    assert status(cli, instance) == before
    row = last_history(cli, instance)
    assert (row["trigger"], row["actor"], row["outcome"], row["reason"]) == (trigger, actor, "refused", expect)
    assert row["from_state"] == row["to_state"] == before["state"]


def request(cli, **extra: str) -> str:
    return start(cli, "information_exchange", "dic.focal_point", requester="dic", recipient="police",
                 subject="Xin thông tin thuê bao", **extra)


# --------------------------------------------------------------------------- the four bypasses


def test_sender_cannot_make_itself_recipient_to_acknowledge(cli):
    instance = request(cli)
    assert fire(cli, instance, "send", "dic.focal_point", dispatch_no="125/STTTT") == "applied: drafted -> sent"
    refused_unchanged(cli, instance, "acknowledge", "dic.focal_point",
                      "'acknowledge' does not accept the field(s) recipient (accepts: none)", recipient="dic")
    assert status(cli, instance)["fields"]["recipient"] == "police"
    # Without the field it is the role pattern, on the stored recipient, that refuses.
    refused_unchanged(cli, instance, "acknowledge", "dic.focal_point",
                      "dic.focal_point may not fire 'acknowledge' (allowed: police.focal_point, police.staff)")


def test_non_signatory_cannot_refuse_by_naming_itself_recipient(cli):
    instance = request(cli)
    fire(cli, instance, "send", "dic.focal_point", dispatch_no="125/STTTT")
    fire(cli, instance, "acknowledge", "police.focal_point")
    refused_unchanged(cli, instance, "refuse", "ubnd.leader",
                      "'refuse' does not accept the field(s) recipient (accepts: refusal_reason)",
                      recipient="ubnd", refusal_reason="Không thuộc thẩm quyền")
    refused_unchanged(cli, instance, "refuse", "ubnd.leader",
                      "ubnd.leader may not fire 'refuse' (allowed: police.leader)", refusal_reason="x")
    assert status(cli, instance)["state"] == "in_progress"


def test_police_cannot_host_a_dic_hosted_review(cli):
    review = start(cli, "periodic_review", "system", host="dic", period="2027H1")
    refused_unchanged(cli, review, "request_reports", "police.focal_point",
                      "'request_reports' does not accept the field(s) host (accepts: meeting_at, venue)", host="police")
    assert status(cli, review)["fields"]["host"] == "dic"
    refused_unchanged(cli, review, "request_reports", "police.focal_point",
                      "police.focal_point may not fire 'request_reports' (allowed: dic.focal_point, dic.leader, system)",
                      venue="Hội trường Công an tỉnh")
    # The host's own focal point fixes the meeting with the fields the step accepts.
    assert fire(cli, review, "request_reports", "dic.focal_point", meeting_at="2027-06-20T08:30",
                venue="Hội trường Sở") == "applied: scheduled -> reports_due"
    assert status(cli, review)["fields"]["venue"] == "Hội trường Sở"


def test_staff_cannot_downgrade_a_top_secret_request_to_send_it(cli):
    instance = request(cli, classification="toi_mat")
    refused_unchanged(cli, instance, "send", "dic.staff",
                      "'send' does not accept the field(s) classification (accepts: dispatch_no)",
                      dispatch_no="126/STTTT", classification="thuong")
    # The leader-only guard sees the stored classification.
    guard = ("fields.kind != 'urgent' and (fields.classification in ['thuong', 'mat'] or actor.role == 'leader')")
    refused_unchanged(cli, instance, "send", "dic.staff", f"guard not met: {guard}", dispatch_no="126/STTTT")
    assert status(cli, instance)["fields"]["classification"] == "toi_mat"
    assert fire(cli, instance, "send", "dic.leader", dispatch_no="126/STTTT") == "applied: drafted -> sent"


def test_accepted_fields_are_stored_and_required_is_checked_on_the_result(cli):
    instance = request(cli)
    fire(cli, instance, "send", "dic.focal_point", dispatch_no="125/STTTT")
    fire(cli, instance, "acknowledge", "police.focal_point:nguyen_thi_b")
    refused_unchanged(cli, instance, "answer", "police.focal_point", "'answer' needs the field(s) answer")
    assert fire(cli, instance, "answer", "police.focal_point", answer="Công văn 88/CAT") == "applied: in_progress -> answered"
    shown = status(cli, instance)
    assert shown["state"] == "answered"
    assert shown["fields"]["answer"] == "Công văn 88/CAT" and shown["fields"]["recipient"] == "police"


def _days_ahead(days: int) -> str:
    from datetime import timedelta

    from engine import clock

    return (clock.now() + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")


def test_guard_on_given_value_checks_what_is_sent(cli):
    """grassroots' notify_unit checks the visit date sent with it (`given`), at least 3 days ahead."""
    unit = start(cli, "grassroots", "dic.focal_point", unit="Trung tâm dữ liệu Y", lead="dic", partner="police")
    for leader in ("dic.leader", "police.leader"):
        fire(cli, unit, "approve_plan", leader)
    guard = "given.visit_at is not None and days_between(now, given.visit_at) >= 3"
    refused_unchanged(cli, unit, "notify_unit", "dic.focal_point", f"guard not met: {guard}",
                      visit_at=_days_ahead(1), notice_no="TB 3")
    assert fire(cli, unit, "notify_unit", "dic.focal_point", visit_at=_days_ahead(10),
                notice_no="TB 3") == "applied: planned -> notified"


# --------------------------------------------------------------------------- coopflow check


def test_accepts_naming_an_unknown_field_fails_check(cli, policy_dir: Path):
    path = policy_dir.parent / "workflows" / "information_exchange.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count("    accepts: [answer]\n") == 1
    path.write_text(text.replace("    accepts: [answer]\n", "    accepts: [answer, anwser]\n"), encoding="utf-8")
    line = text[:text.index("    accepts: [answer]\n")].count("\n") + 1
    out = cli("check", code=1)
    assert out.splitlines()[0].startswith(f"workflows/information_exchange.yaml:{line}:{len('    accepts: [answer, ') + 1}: "
                                          "unknown field 'anwser'; fields: requester, recipient, subject")
    assert out.splitlines()[-1] == "1 problem(s) found"


# --------------------------------------------------------------------------- the pure decision


@pytest.fixture
def policy(policy_dir: Path):
    return load_policy(policy_dir)


def situation(policy, workflow: str, state: str, fields: dict, actor: str) -> decision.Situation:
    spec = policy.workflows[workflow]
    stored = {**{n: f.default for n, f in spec.fields.items()}, **fields}
    return decision.Situation(spec, f"{workflow}-00000000", state, stored, parse_actor(actor, policy.config),
                              NOW, policy.expressions)


def test_decision_sees_the_stored_party_even_when_the_transition_accepts_it(policy):
    """A party field a transition does accept still cannot make the sender eligible for that same event."""
    spec = policy.workflows["periodic_review"].model_dump(by_alias=True)
    for t in spec["transitions"]:
        if t["trigger"] == "request_reports":
            t["accepts"] = ["host", "meeting_at"]
    s = situation(policy, "periodic_review", "scheduled", {"host": "dic", "period": "2027H1"}, "police.focal_point")
    s = decision.Situation(WorkflowSpec.model_validate(spec), s.instance, s.state, s.fields, s.actor, s.now, s.expressions)
    decided = decision.decide(s, "request_reports", {"host": "police"})
    assert decided.chosen is None
    assert decided.refusal.startswith("police.focal_point may not fire 'request_reports'")
    assert decided.fields["host"] == "police"  # what it would have stored


def test_options_say_which_triggers_the_actor_may_fire_and_why_not_the_others(policy):
    s = situation(policy, "information_exchange", "in_progress",
                  {"requester": "dic", "recipient": "police", "subject": "x", "dispatch_no": "1"}, "police.focal_point")
    found = decision.options(s)
    assert set(found) == {"mark_complex", "answer", "refuse", "withdraw", "overdue"}
    assert found["mark_complex"].chosen is not None
    assert found["answer"].refusal == "'answer' needs the field(s) answer"
    assert found["refuse"].refusal == "police.focal_point may not fire 'refuse' (allowed: police.leader)"
    assert found["overdue"].refusal == "police.focal_point may not fire 'overdue' (allowed: system)"


def test_versions_pinned_before_accepts_keep_their_non_party_fields(policy):
    """A stored workflow version without `accepts` (pinned by an older release) still takes answers, never parties."""
    stored = json.loads(json.dumps(policy.workflows["information_exchange"].model_dump(mode="json", by_alias=True)))
    for t in stored["transitions"]:
        del t["accepts"]
    spec = WorkflowSpec.from_stored(stored)
    answer = next(t for t in spec.transitions if t.trigger == "answer")
    assert "answer" in answer.accepts and "classification" in answer.accepts
    assert "recipient" not in answer.accepts and "requester" not in answer.accepts
    assert WorkflowSpec.from_stored(policy.workflows["information_exchange"].model_dump(mode="json", by_alias=True)) \
        == policy.workflows["information_exchange"]
