"""engine.rules without a database: each refusal code with its message, what each actor may do
from a state of the shipped workflows (get_triggers), what each party owes, what counts as late,
and the machine's conditions deciding. One test at the end follows a code from the executor to
the service's Result and the HTTP API's problem+json."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from engine.policy.loader import load_policy
from engine.policy.spec import WorkflowSpec
from engine.rules import decision, duties
from engine.rules.actors import parse_actor
from engine.rules.decision import Reason, Situation
from engine.rules.machines import rules_for
from tests.conftest import copy_shipped_policy

NOW = datetime.fromisoformat("2027-03-01T09:00:00+07:00")
REQUEST = {"requester": "dic", "recipient": "police", "subject": "Xin thông tin thuê bao"}


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return load_policy(copy_shipped_policy(tmp_path_factory.mktemp("rules") / "policy"))


def at(policy, workflow: str, state: str, actor: str, fields: dict | None = None, spec: WorkflowSpec | None = None,
       consents: dict | None = None) -> Situation:
    spec = spec or policy.workflows[workflow]
    stored = {**{n: f.default for n, f in spec.fields.items()}, **(fields or {})}
    return Situation(spec, f"{workflow}-00000000", state, stored, parse_actor(actor, policy.config), NOW,
                     policy.expressions, {}, consents, policy.config)


def variant(policy, workflow: str, trigger: str, **changes) -> WorkflowSpec:
    """The shipped workflow with the transitions of `trigger` changed."""
    raw = policy.workflows[workflow].model_dump(by_alias=True, exclude_none=True)
    for t in raw["transitions"]:
        if t["trigger"] == trigger:
            t.update(changes)
    return WorkflowSpec.model_validate(raw)


# --------------------------------------------------------------------------- one refusal per code


def test_unknown_trigger(policy):
    d = decision.decide(at(policy, "information_exchange", "sent", "police.focal_point", REQUEST), "fly", {})
    assert d.code is Reason.UNKNOWN_TRIGGER and d.chosen is None
    assert d.refusal == "unknown trigger 'fly' for workflow 'information_exchange'; from 'sent': acknowledge, deemed_received, withdraw"


def test_wrong_state(policy):
    d = decision.decide(at(policy, "information_exchange", "sent", "police.focal_point", REQUEST), "answer", {"answer": "x"})
    assert d.code is Reason.WRONG_STATE
    assert d.refusal == "trigger 'answer' is not allowed from state 'sent' (allowed: acknowledge, deemed_received, withdraw)"


def test_instance_closed(policy):
    d = decision.decide(at(policy, "information_exchange", "answered", "police.focal_point", REQUEST), "answer", {})
    assert d.code is Reason.INSTANCE_CLOSED
    assert d.refusal == "instance is closed: state 'answered' is final"


def test_not_your_role(policy):
    d = decision.decide(at(policy, "information_exchange", "sent", "dic.staff", REQUEST), "acknowledge", {})
    assert d.code is Reason.NOT_YOUR_ROLE
    assert d.refusal == "dic.staff may not fire 'acknowledge' (allowed: police.focal_point, police.staff)"


def test_guard_false_and_guard_error(policy):
    secret = {**REQUEST, "classification": "toi_mat"}
    d = decision.decide(at(policy, "information_exchange", "drafted", "dic.focal_point", secret), "send", {"dispatch_no": "1"})
    assert d.code is Reason.GUARD_FALSE
    assert d.refusal.startswith("guard not met: fields.kind != 'urgent'")
    leader = decision.decide(at(policy, "information_exchange", "drafted", "dic.leader", secret), "send", {"dispatch_no": "1"})
    assert leader.code is None and leader.chosen.transition.trigger == "send"

    broken = variant(policy, "information_exchange", "acknowledge", when="fields.subject > 3")
    d = decision.decide(at(policy, "information_exchange", "sent", "police.focal_point", REQUEST, spec=broken), "acknowledge", {})
    assert d.code is Reason.GUARD_ERROR
    assert d.refusal.startswith("guard 'fields.subject > 3' could not be evaluated: ")


def test_field_not_accepted(policy):
    d = decision.decide(at(policy, "information_exchange", "sent", "police.focal_point", REQUEST), "acknowledge",
                        {"answer": "x"})
    assert d.code is Reason.FIELD_NOT_ACCEPTED
    assert d.refusal == "'acknowledge' does not accept the field(s) answer (accepts: none)"


def test_missing_field(policy):
    d = decision.decide(at(policy, "information_exchange", "in_progress", "police.focal_point", REQUEST), "answer", {})
    assert d.code is Reason.MISSING_FIELD
    assert d.refusal == "'answer' needs the field(s) answer"
    assert d.candidates[0].missing == ("answer",)
    assert decision.decide(at(policy, "information_exchange", "in_progress", "police.focal_point", REQUEST), "answer",
                           {"answer": "Công văn 88/CAT"}).code is None


def test_start_refusals(policy):
    s = at(policy, "emergency_review", None, "dic.staff")
    d = decision.decide_start(s, {"issue": "x"})
    assert d.code is Reason.MAY_NOT_START and d.refusal.startswith("dic.staff may not start 'emergency_review' (allowed: ")
    d = decision.decide_start(at(policy, "information_exchange", None, "dic.focal_point"), {"requester": "dic"})
    assert d.code is Reason.MISSING_FIELD and d.refusal.startswith("missing required field(s): ")
    assert decision.decide_start(at(policy, "information_exchange", None, "dic.focal_point"), REQUEST).refusal is None


def test_not_a_consenting_party(policy):
    """A bare role lets the People's Committee's leader fire `agree`, but its consent does not count."""
    spec = variant(policy, "emergency_review", "agree", by=["leader"])
    d = decision.decide(at(policy, "emergency_review", "proposed", "ubnd.leader", {"issue": "x"}, spec=spec), "agree", {})
    assert d.code is Reason.NOT_A_CONSENTING_PARTY
    assert d.refusal == "party 'ubnd' is not among those whose consent 'agree' needs (dic, police)"


def test_needs_approval_until_the_quorum_is_met(policy):
    fields = {"issue": "Sự cố mạng"}
    first = decision.decide(at(policy, "emergency_review", "proposed", "dic.leader", fields, consents={}), "agree", {})
    assert first.allowed and first.code is Reason.NEEDS_APPROVAL
    assert first.chosen.awaiting == ("police",) and first.chosen.records_consent
    last = decision.decide(at(policy, "emergency_review", "proposed", "dic.leader", fields, consents={"agree": {"police"}}),
                           "agree", {})
    assert last.allowed and last.code is None and last.chosen.awaiting == ()
    unknown = decision.decide(at(policy, "emergency_review", "proposed", "dic.leader", fields), "agree", {})
    assert unknown.allowed and unknown.chosen.awaiting is None  # consents not read: the executor counts them


def test_every_refused_candidate_keeps_its_own_reason(policy):
    """Two candidates with one trigger: each is refused for its own rule, and the first code leads."""
    raw = policy.workflows["information_exchange"].model_dump(by_alias=True, exclude_none=True)
    ack = next(t for t in raw["transitions"] if t["trigger"] == "acknowledge")
    raw["transitions"].append({**ack, "to": "in_progress_complex", "by": ["$recipient.leader"], "when": "fields.kind == 'complex'"})
    spec = WorkflowSpec.model_validate(raw)
    d = decision.decide(at(policy, "information_exchange", "sent", "police.leader", REQUEST, spec=spec), "acknowledge", {})
    assert [c.code for c in d.candidates] == [Reason.NOT_YOUR_ROLE, Reason.GUARD_FALSE]
    assert d.code is Reason.NOT_YOUR_ROLE
    assert d.refusal == ("police.leader may not fire 'acknowledge' (allowed: police.focal_point, police.staff); "
                         "guard not met: fields.kind == 'complex'")
    ok = decision.decide(at(policy, "information_exchange", "sent", "police.leader", {**REQUEST, "kind": "complex"}, spec=spec),
                         "acknowledge", {})
    assert ok.chosen.index == len(spec.transitions) - 1 and ok.chosen.transition.dest == "in_progress_complex"


def test_role_refusals_name_the_parties_the_fields_name_now(policy):
    """A role refusal's message is kept per actor and per party the `$field` patterns name: it
    still follows the instance's fields, and the person acting."""
    for recipient, actor in (("police", "ubnd.leader"), ("dic", "ubnd.leader"), ("police", "ubnd.leader:trinh_xuan_truong"),
                             (None, "ubnd.leader")):
        d = decision.decide(at(policy, "information_exchange", "sent", actor, {**REQUEST, "recipient": recipient}),
                            "acknowledge", {})
        named = f"{recipient}.focal_point, {recipient}.staff" if recipient else "$recipient.focal_point, $recipient.staff"
        assert d.code is Reason.NOT_YOUR_ROLE
        assert d.refusal == f"{actor} may not fire 'acknowledge' (allowed: {named})"


# --------------------------------------------------------------------------- what each actor may do from here


def allowed(policy, workflow, state, actor, fields=None, consents=None) -> list[str]:
    found = decision.get_triggers(at(policy, workflow, state, actor, fields, consents=consents))
    return [trigger for trigger, d in found.items() if d.allowed]


def test_get_triggers_per_actor_on_information_exchange(policy):
    assert allowed(policy, "information_exchange", "sent", "police.focal_point", REQUEST) == ["acknowledge"]
    assert allowed(policy, "information_exchange", "sent", "police.staff", REQUEST) == ["acknowledge"]
    assert allowed(policy, "information_exchange", "sent", "dic.focal_point", REQUEST) == ["withdraw"]
    assert allowed(policy, "information_exchange", "sent", "system", REQUEST) == ["deemed_received"]
    assert allowed(policy, "information_exchange", "sent", "ubnd.leader", REQUEST) == []
    found = decision.get_triggers(at(policy, "information_exchange", "in_progress", "police.leader", REQUEST))
    assert list(found) == ["mark_complex", "answer", "refuse", "withdraw", "overdue"]
    assert {t: d.code for t, d in found.items()} == {
        "mark_complex": None, "answer": Reason.MISSING_FIELD, "refuse": Reason.MISSING_FIELD,
        "withdraw": Reason.NOT_YOUR_ROLE, "overdue": Reason.NOT_YOUR_ROLE}
    assert decision.get_triggers(at(policy, "information_exchange", "answered", "police.leader", REQUEST)) == {}


def test_get_triggers_per_actor_on_the_reviews(policy):
    periodic = {"host": "police", "period": "2027H1"}
    assert allowed(policy, "periodic_review", "scheduled", "police.focal_point", periodic) == ["request_reports"]
    assert allowed(policy, "periodic_review", "scheduled", "dic.focal_point", periodic) == []
    cancel = decision.get_triggers(at(policy, "periodic_review", "scheduled", "dic.leader", periodic))["cancel"]
    assert cancel.code is Reason.MISSING_FIELD and cancel.candidates[0].missing == ("cancel_reason",)
    assert allowed(policy, "periodic_review", "scheduled", "dic.leader", {**periodic, "cancel_reason": "Trùng lịch"}) == ["cancel"]
    assert allowed(policy, "periodic_review", "scheduled", "system", periodic) == ["request_reports"]
    emergency = {"issue": "Sự cố"}
    assert allowed(policy, "emergency_review", "proposed", "police.leader", emergency) == ["agree", "withdraw"]
    assert allowed(policy, "emergency_review", "proposed", "police.focal_point", emergency) == []
    assert allowed(policy, "emergency_review", "proposed", "system", emergency) == ["consent_expired"]


def test_every_shipped_state_answers_for_every_role(policy):
    """No shipped state and role makes the rules raise; every refusal carries a code and a message."""
    actors = ["system"] + [f"{p}.{r}" for p, party in policy.config.parties.items() for r in party.roles]
    for wid, spec in policy.workflows.items():
        fields = {n: ("dic" if f.type == "party" else None) for n, f in spec.fields.items()}
        for state in spec.states:
            for actor in actors:
                for trigger, d in decision.get_triggers(at(policy, wid, state, actor, fields)).items():
                    assert d.allowed or (d.code in set(Reason) and d.refusal), (wid, state, actor, trigger)


def test_get_triggers_answers_as_deciding_each_trigger_alone(policy):
    """get_triggers shares what the guards see between a state's triggers: each answer is the one
    `decide` gives for that trigger alone (refusal, code and every candidate's verdict)."""
    def said(d):
        return d.refusal, d.code, [(c.index, c.reason, c.code, c.missing, c.awaiting) for c in d.candidates], d.fields

    actors = ["system", "dic.leader", "police.focal_point", "ubnd.leader"]
    seen = set()
    for wid, spec in policy.workflows.items():
        fields = {n: ("police" if f.type == "party" else None) for n, f in spec.fields.items()}
        for state in spec.states:
            for actor in actors:
                s = at(policy, wid, state, actor, fields, consents={})
                for trigger, d in decision.get_triggers(s).items():
                    assert said(d) == said(decision.decide(s, trigger, {})), (wid, state, actor, trigger)
                    seen.add(d.code)
    assert {Reason.NOT_YOUR_ROLE, Reason.GUARD_FALSE, Reason.MISSING_FIELD, None} <= seen


# --------------------------------------------------------------------------- owed, late, and the machine


def test_owed_leaves_system_and_optional_steps_out_and_counts_consents(policy):
    spec = policy.workflows["information_exchange"]
    assert duties.owed(spec, "in_progress", REQUEST, policy.config) == {
        "police": ["mark_complex", "answer", "refuse"]}  # dic may take it back (optional), but owes nothing
    assert duties.owed(spec, "answered", REQUEST, policy.config) == {}
    er = policy.workflows["emergency_review"]
    assert duties.owed(er, "proposed", {}, policy.config) == {"dic": ["agree"], "police": ["agree"]}
    assert duties.owed(er, "proposed", {}, policy.config, {"agree": ["dic"]}) == {"police": ["agree"]}
    without = er.model_copy(update={"transitions": [t.model_copy(update={"optional": False}) for t in er.transitions]})
    assert duties.owed(without, "proposed", {}, policy.config)["dic"] == ["agree", "withdraw"]


def test_what_counts_as_late(policy):
    spec = policy.workflows["information_exchange"]
    by_trigger = {t.trigger: t for t in spec.transitions}
    assert duties.is_late(spec, by_trigger["overdue"], "in_progress")
    assert duties.is_late(spec, by_trigger["deemed_received"], "sent")
    assert not duties.is_late(spec, by_trigger["answer"], "in_progress")  # people answer
    assert not duties.is_late(spec, by_trigger["overdue"], "drafted")      # not that state's deadline
    periodic = policy.workflows["periodic_review"]
    request = next(t for t in periodic.transitions if t.trigger == "request_reports")
    assert not duties.is_late(periodic, request, "scheduled")  # a deadline people may fire too: on schedule
    assert duties.late_transition(spec, None, "escalate", "overdue")
    assert not duties.late_transition(spec, 999, "answer", "in_progress")


def test_the_machine_carries_the_conditions_and_replays_the_choice(policy):
    spec = policy.workflows["information_exchange"]
    rules = rules_for(spec)
    assert rules is rules_for(spec)  # one machine per spec
    assert rules.triggers("sent") == ["acknowledge", "deemed_received", "withdraw"]
    send = rules.machine.events["send"].transitions["drafted"][0]
    assert [type(c.func.__self__).__name__ for c in send.conditions] == ["Sender", "Guard", "Outcome"]
    answer = next(i for i, t in enumerate(spec.transitions) if t.trigger == "answer")
    # A decision already made moves the state, whatever the fields have become since.
    assert rules.move("overdue", "answer", answer) == "answered"
    with pytest.raises(RuntimeError):
        rules.move("overdue", "answer", answer + 1)


# --------------------------------------------------------------------------- the code reaches the API


def test_refusal_code_reaches_the_result_and_the_problem(tmp_path: Path):
    import asyncio

    import httpx

    from engine.server.app import create_app
    from engine.service import Deployment
    from tests.conftest import shipped_policy_with_store

    config = shipped_policy_with_store(tmp_path / "policy", tmp_path / "rules.db")
    with Deployment.open(config, log_to_files=False) as d:
        started = d.start("information_exchange", "dic.focal_point", REQUEST)
        assert started.applied and started.code is None
        refused = d.fire(started.instance, "answer", "police.focal_point", {"answer": "x"})
        assert refused.status == "refused" and refused.code == Reason.WRONG_STATE
        assert refused.text.startswith("refused: trigger 'answer' is not allowed from state 'drafted'")
        assert d.fire(started.instance, "send", "police.focal_point", {"dispatch_no": "1"}).code == Reason.NOT_YOUR_ROLE
        assert d.fire(started.instance, "send", "dic.focal_point", {"kind": "bogus"}).code == Reason.INVALID_VALUE
        assert d.fire("information_exchange-ffffffff", "send", "dic.focal_point").code == Reason.REFUSED

        # What the service offers (rules.get_triggers): a step lacking only fields it accepts is open.
        actions = {a["trigger"]: a for a in d.actions(d.instance(started.instance), "dic.focal_point")}
        assert actions["send"]["allowed"] and actions["send"]["reason"] is None
        assert not actions["report_incident"]["allowed"]
        assert actions["report_incident"]["reason"] == "guard not met: fields.kind == 'urgent'"

        from datetime import timedelta

        from engine.auth import accounts, tokens

        accounts.add_user(d.runtime.store, d.policy.config, "nguyen_thi_b", "mật khẩu đủ dài 2027")  # police.focal_point
        token = tokens.issue(d.runtime.store, d.policy.config, "nguyen_thi_b", timedelta(days=1))[1]

        async def acknowledge() -> httpx.Response:
            transport = httpx.ASGITransport(app=create_app(d))
            async with httpx.AsyncClient(transport=transport, base_url="http://coopflow.test") as client:
                return await client.post(f"/api/v1/instances/{started.instance}/events", json={"trigger": "acknowledge"},
                                         headers={"Authorization": f"Bearer {token}"})

        answer = asyncio.run(acknowledge())
        assert answer.status_code == 409
        body = answer.json()
        assert body["code"] == "wrong_state" and body["type"].endswith("/refused")
        assert body["detail"].startswith("trigger 'acknowledge' is not allowed from state 'drafted'")
