"""One file's page (/i/ID): its state, fields, deadline, consents, the steps open to me (and why
the others are closed), the state diagram and the history; and taking a step from it.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from engine import clock
from engine.auth.people import Principal
from engine.exceptions import UserError
from engine.policy.spec import WorkflowSpec
from engine.rules import duties
from engine.server.web import i18n
from engine.server.web.forms import Form, Poster, event_key, field_views, provenance, typed_values
from engine.server.web.rendering import Answer, Gettext, SignedIn, deployment, gettext_of, not_found, render
from engine.server.web.tasks import working_days_left
from engine.service import Deployment, NotFound

router = APIRouter(include_in_schema=False)
SYSTEM = "system"


def _actions(d: Deployment, p: Principal, row: dict[str, Any], spec) -> tuple[list[dict], list[dict]]:
    """(open, closed): the steps open to one of the person's roles now, and why the others are closed."""
    opened: dict[str, dict] = {}
    closed: dict[str, dict] = {}
    consented = {(c["trigger"], c["party"]) for c in row["consents"]}
    for role in p.roles:
        for a in d.actions(row, f"{role}:{p.person}", spec):
            if a["allowed"] and a["trigger"] not in opened:
                party = role.split(".", 1)[0]
                names = [n for n in a["accepts"] if n in spec.fields]
                opened[a["trigger"]] = {**a, "role": role, "fields": field_views(spec, names, set(a["require"])),
                                        "agreed": (a["trigger"], party) in consented}
            elif not a["allowed"]:
                by = {tuple(t.by) for t in spec.transitions if t.trigger == a["trigger"]}
                if by and all(b == (SYSTEM,) for b in by):
                    continue  # the system's own steps (deadlines) are shown with the deadline
                closed.setdefault(a["trigger"], a)
    return list(opened.values()), [c for t, c in closed.items() if t not in opened]


def _consents(d: Deployment, row: dict[str, Any], spec) -> list[dict[str, Any]]:
    out = []
    for t in spec.transitions:
        if not t.approvals or row["state"] not in t.sources:
            continue
        agreed = [c for c in row["consents"] if c["trigger"] == t.trigger]
        have = {c["party"] for c in agreed}
        try:  # the parties that may consent, as the instance's fields name them (engine.rules.consent)
            parties = duties.approval_parties(t.approvals, d.policy.config, row["fields"] or {}) or []
        except ValueError:
            parties = []
        out.append({"trigger": t.trigger, "title": t.title or t.trigger, "agreed": agreed,
                    "awaited": [d.policy.config.parties[x].title if x in d.policy.config.parties else x
                                for x in parties if x not in have]})
    return out


def _diagram(spec: WorkflowSpec, current: str) -> list[dict[str, Any]]:
    """The state graph as a list: each state, whether it is the current one, and where its steps lead."""
    out = []
    for sid, st in spec.states.items():
        steps = [{"title": t.title or t.trigger, "trigger": t.trigger,
                  "to": spec.states[t.dest].title if t.dest in spec.states else t.dest, "to_id": t.dest}
                 for t in spec.transitions if sid in t.sources]
        out.append({"id": sid, "title": st.title, "final": st.final, "current": sid == current,
                    "initial": sid == spec.initial, "steps": steps})
    return out


def _timeline(d: Deployment, instance: str, spec, _: Gettext) -> list[dict[str, Any]]:
    rows = d.history(instance)
    titles = {t.trigger: t.title for t in spec.transitions} if spec else {}
    states = spec.states if spec else {}
    marks = {"consent": _("Consent"), "withdraw": _("Withdraw my consent")}  # not the step itself
    out = []
    for h in rows:
        who = ((h.get("data") or {}).get("principal") or {}).get("person") or h["actor"]
        step = titles.get(h["trigger"]) or h["trigger"] or h["kind"]
        if h["kind"] in marks:
            step = f"{marks[h['kind']]}: {step}"
        out.append({**h, "who": who, "step": step,
                    "to_title": states[h["to_state"]].title if h["to_state"] in states else h["to_state"]})
    return out


def _visible(request: Request, d: Deployment, p: Principal, instance: str) -> tuple[dict[str, Any], WorkflowSpec]:
    """The file the person may see, with its pinned spec; else the 404 page (raised as an Answer)."""
    from engine.views.overview import Specs

    try:
        row = d.visible_instance(p, instance)
        with d.runtime.store.reading() as conn:
            spec = Specs(conn, d.policy).get(row["workflow"], row.get("version"))
    except NotFound:
        spec = None
    if spec is None:
        _ = gettext_of(request)
        raise Answer(not_found(request, _("There is no such file, or you may not see it.")))
    return row, spec


def _instance_page(request: Request, p: Principal, instance: str, status: int = 200,
                   notice: str | None = None, error: str | None = None) -> Response:
    d, _ = deployment(request), gettext_of(request)
    row, spec = _visible(request, d, p, instance)
    from engine.server.web import graph
    from engine.views import diagram

    opened, closed = _actions(d, p, row, spec)
    deadline = row["deadline"]
    fires = None
    if deadline:
        t = next((t for t in spec.transitions if t.trigger == deadline["fires"] and row["state"] in t.sources), None)
        fires = {"trigger": deadline["fires"], "title": t.title if t else deadline["fires"],
                 "to": spec.states[t.dest].title if t and t.dest in spec.states else None}
    shown = [{"title": f.title or n, "value": (row["fields"] or {}).get(n), "type": f.type}
             for n, f in spec.fields.items() if (row["fields"] or {}).get(n) not in (None, "")]
    return render(request, "instance.html", status=status, row=row, spec=spec, state=spec.states.get(row["state"]),
                  fields=shown, deadline=deadline, fires=fires, days_left=working_days_left(d, deadline["due_at"]) if deadline else None,
                  overdue=bool(deadline and deadline["due_at"] <= clock.now()), consents=_consents(d, row, spec),
                  opened=opened, closed=closed, graph=_diagram(spec, row["state"]), svg=graph.svg(spec, row["state"]),
                  mermaid=diagram.mermaid(spec),
                  timeline=_timeline(d, row["id"], spec, _), key=secrets.token_urlsafe(18), notice=notice, error=error)


@router.get("/i/{instance}")
def instance_view(instance: str, request: Request, p: SignedIn) -> Response:
    return _instance_page(request, p, instance)


@router.post("/i/{instance}")
def act(instance: str, request: Request, p: Poster, form: Form) -> Response:
    d, _ = deployment(request), gettext_of(request)
    row, spec = _visible(request, d, p, instance)
    trigger = form.get("trigger", "")
    accepts = {n for t in spec.transitions if t.trigger == trigger for n in t.accepts if n in spec.fields}
    key = event_key(form, trigger[:40])
    try:
        values = typed_values(request, spec, sorted(accepts), form)
        actor = p.act_as(form.get("role") or None)
        prov = provenance(request, p, actor)
        if form.get("withdraw") == "1":
            result = d.withdraw(instance, trigger, actor, key, provenance=prov)
        else:
            result = d.fire(instance, trigger, actor, values, key, provenance=prov)
    except (ValueError, UserError) as exc:  # a store fault is not the form's: 503 (server.app)
        return _instance_page(request, p, instance, 422, error=i18n.reason(str(exc), _))
    if result.applied and " -> " in result.text:
        step = next((t.title for t in spec.transitions if t.trigger == trigger and t.title), trigger)
        return _instance_page(request, p, instance, 200, notice=_("Done: %(step)s.", step=step))
    if result.applied or result.pending:
        return _instance_page(request, p, instance, 200, notice=i18n.reason(result.text, _) or _("Done."))
    return _instance_page(request, p, instance, 409, error=i18n.reason(result.text, _))
