"""What a message says: the template context of each kind of message (docs/notifications.md).

`notify` and `overdue` come from a notify action (an outbox row), `remind` from a reminder before
a deadline, `digest` from the daily digest. Every context shares `agreement`, `recipient`, `link`
and `at`; the others add what their kind needs: the deadline that expired or is about to, its
clause, and what happens next (the next deadline and who owes the next step).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from engine import clock
from engine.notify import owed
from engine.policy.spec import Duration, WorkflowSpec
from engine.store import Tx, consents
from engine.store import timers as timer_rows
from engine.store.reminders import Reminder


def vi_duration(span: Duration) -> str:
    """'5 ngày làm việc', '30 ngày', '24 giờ'."""
    if span.working_days is not None:
        return f"{span.working_days} ngày làm việc"
    if span.days is not None:
        return f"{span.days} ngày"
    if span.hours is not None:
        return f"{int(span.hours) if float(span.hours).is_integer() else span.hours} giờ"
    return ""  # none given (a Duration holds exactly one of them)


def vi_time(moment: datetime | None, tz) -> str | None:
    """'08:00 ngày 03/06/2025' in the policy's time zone; a midnight is 'hết ngày' of the day before."""
    if moment is None:
        return None
    local = moment.astimezone(tz)
    if (local.hour, local.minute, local.second) == (0, 0, 0):
        return (local - timedelta(days=1)).strftime("hết ngày %d/%m/%Y")
    return local.strftime("%H:%M ngày %d/%m/%Y")


def recipient(config, actor: str) -> dict[str, Any]:
    """`party.role:person`, `party.role` or a bare party (a webhook) as the template sees it."""
    role_actor, _, person = actor.partition(":")
    party_id, _, role_id = role_actor.partition(".")
    party = config.parties.get(party_id)
    role = party.roles.get(role_id) if party and role_id else None
    return {"actor": actor, "person": person or None, "party": party_id, "party_title": party.title if party else party_id,
            "role": role_id or None, "role_title": (role.title if role and role.title else role_id) or None}


def link(config, instance_id: str) -> str:
    """The instance's page in the web console (engine/server/web: /i/<id>)."""
    return f"{config.notifications.public_url.rstrip('/')}/i/{instance_id}"


def deadline(spec: WorkflowSpec | None, state_id: str | None, due_at: datetime | None, tz) -> dict[str, Any] | None:
    """A state's deadline: how long, under which clause, when, and what it fires (into which state)."""
    if spec is None or state_id is None:  # (no state has an empty id)
        return None
    st = spec.states.get(state_id)
    if st is None or st.deadline is None:
        return None
    d = st.deadline
    t = next((t for t in spec.transitions if t.trigger == d.fire and spec.leaves(t, state_id)), None)
    dest = spec.states.get(t.dest) if t else None
    return {"state": state_id, "state_title": st.title, "duration": vi_duration(d), "at_field": d.at,
            "clause": d.clause or st.clause or spec.clause, "due_at": vi_time(due_at, tz),
            "fire": d.fire, "fire_title": (t.title if t and t.title else d.fire),
            "then": dest.title if dest else (t.dest if t else None)}


def owed_steps(spec: WorkflowSpec | None, state: str, fields: dict, config, agreed) -> list[dict[str, Any]]:
    """Who owes the next step, for the text: each role's title, its party's and the steps' titles."""
    if spec is None:
        return []
    titles = {t.trigger: t.title or t.trigger for t in spec.transitions}
    out = []
    for role_actor, triggers in owed.owed_roles(spec, state, fields, config, agreed).items():
        who = recipient(config, role_actor)
        out.append({"role": role_actor, "title": f"{who['role_title']} — {who['party_title']}",
                    "steps": [titles[t] for t in triggers]})
    return out


def _instance(spec: WorkflowSpec | None, instance_id: str, state: str, fields: dict) -> dict[str, Any]:
    states = spec.states if spec else {}
    return {"id": instance_id, "state": state, "state_title": states[state].title if state in states else state,
            "fields": fields, "subject": fields.get(spec.subject) if spec and spec.subject else None}


# Every kind's context has every variable (those its kind lacks empty), so that `{% if deadline %}`
# works in any template; attributes of an empty one still fail when rendered.
EMPTY: dict[str, Any] = {"workflow": None, "instance": None, "trigger": None, "actor": None, "message": None, "deadline": None,
                         "next": {"deadline": None, "owed": []}, "steps": [], "tasks": [], "count": 0}


def _common(policy, actor: str) -> dict[str, Any]:
    config = policy.config
    return {**EMPTY, "agreement": {"id": config.agreement.id, "title": config.agreement.title},
            "recipient": recipient(config, actor),
            "at": clock.now().astimezone(policy.tz).isoformat(timespec="minutes")}


def _workflow(spec: WorkflowSpec | None, workflow_id: str) -> dict[str, Any]:
    return {"id": workflow_id, "title": spec.title if spec else workflow_id, "clause": spec.clause if spec else ""}


def for_notify(conn: Tx, policy, source: dict, message: str, actor: str) -> dict[str, Any]:
    """A notify action's message; for `overdue`, `deadline` is the deadline that expired."""
    spec = policy.workflows.get(source["workflow"])
    fields = source.get("fields") or {}
    instance = _instance(spec, source["instance"], source["state"], fields)
    states = spec.states if spec else {}
    instance.update(from_state=source.get("from"),
                    from_state_title=states[source["from"]].title if source.get("from") in states else source.get("from"))
    transition = next((t for t in spec.transitions if t.trigger == source["trigger"]), None) if spec else None
    agreed = consents.given(conn, source["instance"])
    return {**_common(policy, actor), "workflow": _workflow(spec, source["workflow"]), "instance": instance,
            "trigger": {"id": source["trigger"], "title": (transition.title if transition and transition.title else source["trigger"])},
            "actor": source.get("actor", "system"), "message": message, "link": link(policy.config, source["instance"]),
            "deadline": deadline(spec, source.get("from"), None, policy.tz),
            "next": {"deadline": deadline(spec, source["state"], timer_rows.armed_due(conn, source["instance"]), policy.tz),
                     "owed": owed_steps(spec, source["state"], fields, policy.config, agreed)}}


def for_reminder(conn: Tx, policy, spec: WorkflowSpec | None, reminder: Reminder, fields: dict, actor: str,
                 triggers: list[str]) -> dict[str, Any]:
    """A reminder before `reminder`'s deadline to `actor`, who may fire `triggers`."""
    titles = {t.trigger: t.title or t.trigger for t in spec.transitions} if spec else {}
    agreed = consents.given(conn, reminder.instance)
    return {**_common(policy, actor), "workflow": _workflow(spec, reminder.workflow),
            "instance": _instance(spec, reminder.instance, reminder.state, fields), "link": link(policy.config, reminder.instance),
            "deadline": deadline(spec, reminder.state, reminder.deadline_at, policy.tz),
            "steps": [titles.get(t, t) for t in triggers],
            "next": {"owed": owed_steps(spec, reminder.state, fields, policy.config, agreed)}}


def for_digest(policy, actor: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """The daily digest: `tasks` soonest first (instance, workflow, state, subject, due_at, steps, link)."""
    return {**_common(policy, actor), "tasks": tasks, "count": len(tasks),
            "link": f"{policy.config.notifications.public_url.rstrip('/')}/"}  # the console's "Việc của tôi"


def sample(config) -> dict[str, Any]:
    """Every variable any template may use, for `coopflow check`."""
    party_id = next(iter(config.parties))
    party = config.parties[party_id]
    base = f"{config.notifications.public_url.rstrip('/')}"
    due = {"state": "sent", "state_title": "Đã gửi", "duration": "5 ngày làm việc", "at_field": None, "clause": "2",
           "due_at": "hết ngày 09/01/2025", "fire": "overdue", "fire_title": "Quá hạn", "then": "Quá hạn trả lời"}
    owed_step = {"role": f"{party_id}.focal_point", "title": f"Cán bộ đầu mối — {party.title}", "steps": ["Trả lời"]}
    task = {"instance": "sample-0001", "workflow": "Quy trình mẫu", "clause": "1", "state": "Đã gửi", "subject": "Mẫu",
            "due_at": "hết ngày 09/01/2025", "steps": ["Trả lời"], "link": f"{base}/i/sample-0001"}
    return {
        "agreement": {"id": config.agreement.id, "title": config.agreement.title},
        "workflow": {"id": "sample", "title": "Quy trình mẫu", "clause": "1"},
        "instance": {"id": "sample-0001", "state": "sent", "state_title": "Đã gửi", "from_state": "drafted",
                     "from_state_title": "Dự thảo", "fields": {}, "subject": "Mẫu"},
        "trigger": {"id": "send", "title": "Gửi"},
        "actor": f"{party_id}.focal_point",
        "message": "Nội dung thông báo mẫu.",
        "recipient": {"actor": f"{party_id}.focal_point:sample", "person": "sample", "party": party_id,
                      "party_title": party.title, "role": "focal_point", "role_title": "Cán bộ đầu mối"},
        "link": f"{base}/i/sample-0001",
        "at": "2025-01-02T08:00:00+07:00",
        "deadline": due, "steps": ["Trả lời"], "next": {"deadline": due, "owed": [owed_step]},
        "tasks": [task], "count": 1,
    }
