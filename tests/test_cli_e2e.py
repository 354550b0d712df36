"""End-to-end: the `coopflow` command line driven as a user would, over the shipped policy.

Each scenario runs `python -m engine ...` in its own copy of the shipped policy (config.yaml,
workflows/, rules/) with its own SQLite store and no daemon, so every command applies its event
itself. The clock starts at Monday 2 June 2025, 09:00 in Lào Cai (COOPFLOW_CLOCK_START) so that
dates given with --set are in a known relation to "now".

For every shipped workflow a user walks the happy path from `start` to a final state, checking
each printed outcome, then `status INSTANCE --json` and `history INSTANCE --json`. On the way,
at one state per workflow, events that must be refused (wrong role, trigger not allowed from the
state, failing guard, missing required field) are fired: each prints `refused: ...` and exits 1,
and `status --json` taken before and after the batch is identical (a refusal writes nothing but
its inbox and history rows, so an unchanged status after the batch means each left it unchanged;
the history then shows each refusal with from_state == to_state).

Starting a CLI process costs most of a second, so the scenarios run concurrently on a few
threads (each in its own folder and store); each test waits for its scenario's result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import copy_shipped_policy

REPO = Path(__file__).resolve().parents[1]
CLOCK_START = "2025-06-02T09:00:00+07:00"
SOON = "2025-06-03T09:00:00+07:00"  # one day after the clock start
LATER = "2025-06-16T09:00:00+07:00"  # two weeks after the clock start
CLEARED_ENV = ("COOPFLOW_STORE_URL", "COOPFLOW_CONFIG", "COOPFLOW_CLOCK_START")
WORKFLOWS = ["advisory", "information_exchange", "inspection", "grassroots", "movement", "periodic_review",
             "emergency_review"]
SHIPPED = [*WORKFLOWS, "action_item"]  # action_item: started by the reviews' record_action (tests/test_report_actions.py)


def copy_policy(root: Path) -> Path:
    """Copy the shipped policy into `root` (its store, sqlite:///coopflow.db, then lives there too)."""
    copy_shipped_policy(root)
    return root


@dataclass
class Run:
    code: int
    out: list[str]
    err: str


class Cli:
    """`python -m engine` in one policy folder, with the fixed clock and no daemon."""

    def __init__(self, root: Path):
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
        self.env[CLEARED_ENV[2]] = CLOCK_START
        self("init")  # the CLI's other commands refuse to create a store

    def __call__(self, *args: str, code: int = 0) -> Run:
        proc = subprocess.run([sys.executable, "-m", "engine", *args, "-c", "config.yaml"], cwd=self.root,
                              env=self.env, capture_output=True, text=True, timeout=120)
        run = Run(proc.returncode, proc.stdout.splitlines(), proc.stderr)
        where = f"coopflow {' '.join(args)}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
        assert run.code == code, f"exit {run.code}, expected {code}: {where}"
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, where
        return run

    def start(self, workflow: str, actor: str, fields: dict[str, str], code: int = 0, key: str | None = None) -> tuple[str, str]:
        """`start`: returns (instance id, outcome line); the id comes first."""
        run = self("start", workflow, "--as", actor, *_sets(fields), *(["--key", key] if key else []), code=code)
        assert len(run.out) == 2, run.out
        assert run.out[0].startswith(f"{workflow}-"), run.out
        return run.out[0], run.out[1]

    def fire(self, instance: str, trigger: str, actor: str, fields: dict[str, str] | None = None, code: int = 0,
             key: str | None = None, withdraw: bool = False) -> str:
        """`fire`: returns the one outcome line."""
        run = self("fire", instance, trigger, "--as", actor, *_sets(fields or {}), *(["--key", key] if key else []),
                   *(["--withdraw"] if withdraw else []), code=code)
        assert len(run.out) == 1, run.out
        return run.out[0]

    def status(self, instance: str | None = None, *filters: str) -> dict | list:
        """`status --json`: one instance (a dict), a filtered list, or the overview (no filter)."""
        return json.loads("\n".join(self("status", *([instance] if instance else []), *filters, "--json").out))

    def history(self, instance: str) -> list[dict]:
        return [json.loads(line) for line in self("history", instance, "--json").out]


def _sets(fields: dict[str, str]) -> list[str]:
    return [part for name, value in fields.items() for part in ("--set", f"{name}={value}")]


# --------------------------------------------------------------------------- workflow walks


@dataclass
class Step:
    """One `fire` on the happy path and the outcome it must print after `applied: `."""

    trigger: str
    actor: str
    expect: str
    fields: dict[str, str] = field(default_factory=dict)
    withdraw: bool = False


@dataclass
class Refusal:
    """One `fire` that must be refused, and a piece of its `refused: ...` message."""

    trigger: str
    actor: str
    expect: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class Walk:
    """A workflow's happy path; `refusals` are fired after the first `refuse_after` steps."""

    start_actor: str
    start_fields: dict[str, str]
    initial: str
    steps: list[Step]
    refuse_after: int
    refusals: list[Refusal]
    final: str
    final_fields: dict[str, object]


def _may_not(actor: str, trigger: str) -> str:
    return f"{actor} may not fire '{trigger}'"


def _not_from(trigger: str, state: str) -> str:
    return f"trigger '{trigger}' is not allowed from state '{state}'"


WALKS: dict[str, Walk] = {
    "advisory": Walk(
        "dic.focal_point", {"topic": "An ninh mạng 2025", "doc_type": "state_management"}, "proposed",
        steps=[
            Step("assign_lead", "dic.leader", "proposed -> drafting"),
            Step("send_for_comments", "dic.focal_point", "drafting -> commenting", {"draft_ref": "12/DT-STTTT"}),
            Step("give_comments", "police.focal_point", "commenting -> revising", {"comments": "Đồng ý"}),
            Step("submit", "dic.leader", "revising -> submitted", {"submission_no": "45/TTr-STTTT"}),
            Step("issued", "dic.focal_point", "submitted -> following_up", {"issued_no": "789/QĐ-UBND"}),
            Step("close", "dic.leader", "following_up -> closed"),
        ],
        refuse_after=1,  # in drafting, lead = dic, partner = police
        refusals=[
            Refusal("send_for_comments", "police.focal_point", _may_not("police.focal_point", "send_for_comments"),
                    {"draft_ref": "x"}),
            Refusal("give_comments", "police.focal_point", _not_from("give_comments", "drafting"), {"comments": "x"}),
            Refusal("send_for_comments", "dic.focal_point", "'send_for_comments' needs the field(s) draft_ref"),
        ],
        final="closed", final_fields={"lead": "dic", "partner": "police", "issued_no": "789/QĐ-UBND"},
    ),
    "information_exchange": Walk(
        "dic.focal_point", {"requester": "dic", "recipient": "police", "subject": "Thông tin thuê bao"}, "drafted",
        steps=[
            Step("send", "dic.focal_point", "drafted -> sent", {"dispatch_no": "101/STTTT"}),
            Step("acknowledge", "police.focal_point", "sent -> in_progress"),
            Step("answer", "police.focal_point", "in_progress -> answered", {"answer": "CV 55/CAT"}),
        ],
        refuse_after=0,
        refusals=[
            Refusal("send", "police.focal_point", _may_not("police.focal_point", "send"), {"dispatch_no": "x"}),
            Refusal("acknowledge", "police.focal_point", _not_from("acknowledge", "drafted")),
            # The classification is the request's as started, not one sent along with `send`.
            Refusal("send", "dic.focal_point", "'send' does not accept the field(s) classification (accepts: dispatch_no)",
                    {"dispatch_no": "x", "classification": "toi_mat"}),
            Refusal("report_incident", "dic.focal_point", "guard not met: fields.kind == 'urgent'"),
            Refusal("send", "dic.focal_point", "'send' needs the field(s) dispatch_no"),
        ],
        final="answered", final_fields={"dispatch_no": "101/STTTT", "answer": "CV 55/CAT", "classification": "thuong"},
    ),
    "inspection": Walk(
        "dic.leader", {"target": "Công ty viễn thông X"}, "planned",
        steps=[
            Step("decide", "dic.leader", "planned -> team_forming", {"decision_no": "QĐ 12"}),
            Step("name_members", "police.focal_point", "team_forming -> team_formed", {"members": "ly_van_duc,bui_van_nam"}),
            Step("start_inspection", "dic.inspector:vu_minh_tuan", "team_formed -> inspecting"),
            Step("record_violation", "police.inspector", "inspecting -> recorded",
                 {"record_no": "BB 01", "violation": "Không lưu nhật ký"}),
            Step("decide_penalty", "dic.leader", "recorded -> enforcing", {"penalty_decision_no": "QĐXP 7"}),
            Step("complete", "dic.inspector", "enforcing -> closed"),
        ],
        refuse_after=1,  # in team_forming, the partner (police) names members
        refusals=[
            Refusal("name_members", "dic.focal_point", _may_not("dic.focal_point", "name_members"), {"members": "a"}),
            Refusal("start_inspection", "dic.inspector", _not_from("start_inspection", "team_forming")),
            Refusal("name_members", "police.focal_point", "'name_members' needs the field(s) members"),
        ],
        final="closed", final_fields={"members": ["ly_van_duc", "bui_van_nam"], "penalty_decision_no": "QĐXP 7"},
    ),
    "grassroots": Walk(
        "dic.focal_point", {"unit": "Trung tâm dữ liệu Y", "lead": "dic", "partner": "police"}, "planning",
        steps=[
            Step("approve_plan", "dic.leader", "consent recorded for dic: 1 of 2, waiting for police"),
            Step("approve_plan", "dic.leader:le_thi_hoa", "consent recorded for dic (already counted): 1 of 2, waiting for police"),
            Step("approve_plan", "police.leader", "planning -> planned"),
            Step("notify_unit", "dic.focal_point", "planned -> notified", {"visit_at": LATER, "notice_no": "TB 3"}),
            Step("visit_time", "dic.staff", "notified -> visiting"),
            Step("record_visit", "police.staff", "visiting -> recorded", {"record_no": "BBLV 9"}),
            Step("request_remediation", "dic.leader", "recorded -> remediating", {"findings": "Chưa phân loại dữ liệu"}),
            Step("confirm_remediated", "police.focal_point", "remediating -> closed", {"remediation_result": "Đã khắc phục"}),
        ],
        refuse_after=3,  # in planned: notify the unit at least 3 days ahead
        refusals=[
            Refusal("notify_unit", "police.focal_point", _may_not("police.focal_point", "notify_unit"),
                    {"visit_at": LATER, "notice_no": "x"}),
            Refusal("record_visit", "dic.staff", _not_from("record_visit", "planned"), {"record_no": "x"}),
            Refusal("notify_unit", "dic.focal_point", "guard not met: given.visit_at is not None and days_between",
                    {"visit_at": SOON, "notice_no": "x"}),
            Refusal("notify_unit", "dic.focal_point", "'notify_unit' needs the field(s) notice_no", {"visit_at": LATER}),
        ],
        final="closed", final_fields={"visit_at": LATER, "remediation_result": "Đã khắc phục"},
    ),
    "movement": Walk(
        "police.leader", {"year": "2025"}, "planning",
        steps=[
            Step("approve_plan", "dic.leader", "consent recorded for dic: 1 of 2, waiting for police"),
            Step("approve_plan", "dic.leader", "consent of dic to 'approve_plan' withdrawn", withdraw=True),
            Step("approve_plan", "police.leader", "consent recorded for police: 1 of 2, waiting for dic"),
            Step("approve_plan", "dic.leader", "planning -> rolling_out"),
            Step("festival_day", "police.focal_point", "rolling_out -> festival"),
            Step("record_festival", "police.focal_point", "festival -> reviewing"),
            Step("complete_review", "police.leader", "reviewing -> closed", {"results": "12 mô hình"}),
        ],
        refuse_after=6,  # in reviewing
        refusals=[
            Refusal("complete_review", "police.focal_point", _may_not("police.focal_point", "complete_review"),
                    {"results": "x"}),
            Refusal("festival_day", "police.focal_point", _not_from("festival_day", "reviewing")),
            Refusal("complete_review", "police.leader", "'complete_review' needs the field(s) results"),
        ],
        final="closed", final_fields={"year": 2025, "lead": "police", "results": "12 mô hình"},
    ),
    "periodic_review": Walk(
        "system", {"host": "dic", "period": "2025H1"}, "scheduled",
        steps=[
            Step("request_reports", "dic.focal_point", "scheduled -> reports_due"),
            Step("submit_reports", "dic.focal_point", "consent recorded for dic: 1 of 2, waiting for police"),
            Step("submit_reports", "police.focal_point", "reports_due -> drafting"),
            Step("invite", "dic.focal_point", "drafting -> invited", {"meeting_at": "2025-06-20T08:30:00+07:00"}),
            Step("hold", "dic.leader", "invited -> held"),
            Step("issue_conclusions", "dic.focal_point", "held -> following_up", {"conclusions": "TB 15"}),
            Step("close", "dic.focal_point", "following_up -> closed"),
        ],
        refuse_after=2,  # in reports_due, with the DIC's report in (a consent on record)
        refusals=[
            Refusal("submit_reports", "dic.leader", _may_not("dic.leader", "submit_reports")),
            Refusal("invite", "dic.focal_point", _not_from("invite", "reports_due"), {"meeting_at": LATER}),
            Refusal("cancel", "dic.leader", "'cancel' needs the field(s) cancel_reason"),
        ],
        final="closed", final_fields={"host": "dic", "period": "2025H1", "conclusions": "TB 15"},
    ),
    "emergency_review": Walk(
        "police.leader", {"issue": "Tấn công DDoS cổng thông tin"}, "proposed",
        steps=[
            Step("agree", "dic.leader", "consent recorded for dic: 1 of 2, waiting for police"),
            Step("agree", "police.leader:hoang_van_son", "proposed -> convened"),
            Step("meeting_time", "dic.leader", "convened -> in_session"),
            Step("finish", "police.focal_point", "in_session -> held"),
            Step("issue_conclusions", "dic.focal_point", "held -> concluded", {"conclusions": "TB 2"}),
            Step("close", "police.leader", "concluded -> closed"),
        ],
        refuse_after=2,  # in convened, the meeting_time deadline armed
        refusals=[
            Refusal("meeting_time", "dic.focal_point", _may_not("dic.focal_point", "meeting_time")),
            Refusal("issue_conclusions", "dic.focal_point", _not_from("issue_conclusions", "convened"), {"conclusions": "x"}),
            Refusal("reschedule", "dic.focal_point", "'reschedule' needs the field(s) meeting_at"),
        ],
        final="closed", final_fields={"issue": "Tấn công DDoS cổng thông tin", "conclusions": "TB 2"},
    ),
}


def walk(cli: Cli, workflow: str) -> None:
    """Walk one workflow's happy path, firing the refusals on the way; check status and history."""
    plan = WALKS[workflow]
    instance, outcome = cli.start(workflow, plan.start_actor, plan.start_fields)
    assert outcome == f"applied: started in {plan.initial}"
    events = [("start", None, "applied", None, plan.initial)]
    state = plan.initial
    for number, step in enumerate(plan.steps):
        if number == plan.refuse_after:
            before = cli.status(instance)
            assert before["state"] == state
            for refusal in plan.refusals:
                text = cli.fire(instance, refusal.trigger, refusal.actor, refusal.fields, code=1)
                assert text.startswith("refused: ") and refusal.expect in text, (refusal, text)
                events.append(("fire", refusal.trigger, "refused", state, state))
            assert cli.status(instance) == before, "refused events change nothing"
        text = cli.fire(instance, step.trigger, step.actor, step.fields, withdraw=step.withdraw)
        assert text == f"applied: {step.expect}", (step, text)
        if " -> " in step.expect:
            state = step.expect.split(" -> ")[1]
        events.append(("withdraw" if step.withdraw else "consent" if " -> " not in step.expect else "fire",
                       step.trigger, "applied", events[-1][4], state))

    status = cli.status(instance)
    assert (status["instance"], status["workflow"], status["state"], status["final"]) == (instance, workflow, plan.final, True)
    assert status["deadline"] is None and status["consents"] == []
    assert {k: status["fields"][k] for k in plan.final_fields} == plan.final_fields
    assert {k: status["fields"][k] for k in plan.start_fields} == {
        k: int(v) if k == "year" else v for k, v in plan.start_fields.items()}

    history = cli.history(instance)
    assert [(h["kind"], h["trigger"], h["outcome"], h["from_state"], h["to_state"]) for h in history] == events
    assert all(h["instance"] == instance and h["workflow"] == workflow for h in history)
    assert [h["seq"] for h in history] == sorted({h["seq"] for h in history}), "one line per event, in order"


# --------------------------------------------------------------------------- other scenarios


def idempotency_keys(cli: Cli) -> None:
    """`--key` twice: same instance id, same outcome printed, one history row per key."""
    fields = {"topic": "Khóa", "doc_type": "security_assessment"}
    first = cli.start("advisory", "police.focal_point", fields, key="op-42")
    again = cli.start("advisory", "police.focal_point", fields, key="op-42")
    assert first == again and first[1] == "applied: started in proposed"
    instance = first[0]
    fired = [cli.fire(instance, "assign_lead", "police.leader", key="op-43") for _ in range(2)]
    assert fired == ["applied: proposed -> drafting"] * 2
    refused = [cli.fire(instance, "close", "police.leader", key="op-44", code=1) for _ in range(2)]
    assert refused[0] == refused[1] and refused[0].startswith("refused: trigger 'close' is not allowed from state 'drafting'")
    history = cli.history(instance)
    assert [(h["kind"], h["trigger"], h["outcome"]) for h in history] == [
        ("start", None, "applied"), ("fire", "assign_lead", "applied"), ("fire", "close", "refused")]
    listed = cli.status(None, "--workflow", "advisory")
    assert [(row["instance"], row["state"], row["fields"]["lead"]) for row in listed] == [(instance, "drafting", "police")], \
        "the repeated start made no second instance"


def usage_mistakes(cli: Cli) -> None:
    """Usage mistakes exit 2 with a message and no traceback; refused starts create no instance."""
    bad_set = cli("start", "advisory", "--as", "dic.leader", "--set", "novalue", code=2)
    assert "expected NAME=VALUE, got 'novalue'" in bad_set.err and bad_set.out == []
    no_actor = cli("start", "advisory", "--set", "topic=x", code=2)
    assert "Missing option '--as'" in no_actor.err and no_actor.out == []
    no_trigger = cli("fire", "advisory-00000000", "--as", "dic.leader", code=2)
    assert "Missing argument" in no_trigger.err
    bad_fire_set = cli("fire", "advisory-00000000", "close", "--as", "dic.leader", "--set", "=x", code=2)
    assert "expected NAME=VALUE" in bad_fire_set.err

    _, wrong_role = cli.start("periodic_review", "dic.leader", {"host": "dic", "period": "2025H1"}, code=1)
    assert wrong_role == "refused: dic.leader may not start 'periodic_review' (allowed: system)"
    _, missing = cli.start("emergency_review", "dic.leader", {"venue": "Phòng họp A"}, code=1)
    assert missing == "refused: missing required field(s): issue"
    _, bad_value = cli.start("inspection", "dic.leader", {"target": "X", "unplanned": "maybe"}, code=1)
    assert bad_value.startswith("refused: field 'unplanned' expects true or false")
    gone = cli("status", "advisory-00000000", "--json", code=1)
    assert "unknown instance 'advisory-00000000'" in gone.err
    overview = cli.status()
    assert {row["workflow"]: row["open"] for row in overview["workflows"]} == dict.fromkeys(SHIPPED, 0), \
        "nothing was started"


def status_filters(cli: Cli) -> None:
    """`status --workflow/--state` list only the matching instances."""
    one, _ = cli.start("advisory", "dic.leader", {"topic": "A", "doc_type": "state_management"})
    two, _ = cli.start("advisory", "dic.leader", {"topic": "B", "doc_type": "security_assessment"})
    year, _ = cli.start("movement", "dic.focal_point", {"year": "2026"})
    cli.fire(two, "assign_lead", "police.leader")

    def ids(*filters: str) -> set[str]:
        return {row["instance"] for row in cli.status(None, *filters)}

    assert ids("--workflow", "advisory") == {one, two}
    assert ids("--state", "drafting") == {two}
    assert ids("--workflow", "movement", "--state", "planning") == {year}
    assert ids("--workflow", "advisory", "--state", "closed") == set()
    overview = cli.status()
    assert {row["workflow"]: row["open"] for row in overview["workflows"]} == {
        **dict.fromkeys(SHIPPED, 0), "advisory": 2, "movement": 1}


SCENARIOS: dict[str, Callable[[Cli], None]] = {
    **{workflow: (lambda cli, w=workflow: walk(cli, w)) for workflow in WORKFLOWS},
    "keys": idempotency_keys,
    "usage": usage_mistakes,
    "filters": status_filters,
}


@pytest.fixture(scope="module")
def scenarios(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Start the scenarios the session selected, concurrently, each in its own policy copy."""
    wanted = [item.callspec.params["scenario"] for item in request.session.items
              if item.module is request.module and hasattr(item, "callspec") and "scenario" in item.callspec.params]
    pool = ThreadPoolExecutor(max_workers=3)
    futures: dict[str, Future] = {}
    for name in wanted or SCENARIOS:
        if name not in futures:
            futures[name] = pool.submit(SCENARIOS[name], Cli(copy_policy(tmp_path_factory.mktemp(name))))
    yield futures
    pool.shutdown(cancel_futures=True)


@pytest.mark.parametrize("scenario", WORKFLOWS, ids=WORKFLOWS)
def test_workflow_happy_path_and_refusals(scenario: str, scenarios: dict[str, Future]) -> None:
    """A user walks the workflow from start to a final state via the CLI; refused events on the way change nothing."""
    scenarios[scenario].result(timeout=600)


@pytest.mark.parametrize("scenario", ["keys"], ids=["keys"])
def test_idempotency_key_applies_once(scenario: str, scenarios: dict[str, Future]) -> None:
    """Submitting with the same --key twice prints the same instance and outcome and records one event."""
    scenarios[scenario].result(timeout=600)


@pytest.mark.parametrize("scenario", ["usage"], ids=["usage"])
def test_usage_mistakes_exit_2_without_traceback(scenario: str, scenarios: dict[str, Future]) -> None:
    """Malformed --set or a missing --as exits 2 with a message; refused starts leave no instance."""
    scenarios[scenario].result(timeout=600)


@pytest.mark.parametrize("scenario", ["filters"], ids=["filters"])
def test_status_filters(scenario: str, scenarios: dict[str, Future]) -> None:
    """`status --workflow` and `--state` list exactly the matching instances."""
    scenarios[scenario].result(timeout=600)
