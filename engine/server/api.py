"""The JSON API under /api/v1: sign-in, the caller, workflows, instances, events, history, reads.

The actor of every write is the authenticated person acting in a role config.yaml grants them
(`role` in the body chooses among their grants); bodies carry no actor. Acting as `system` is
for administrators only. Reads show only what the caller's parties take part in; anything else
answers 404, exactly like an unknown id. docs/api.md is the guide; docs/openapi.json the contract.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from engine.auth import tokens
from engine.auth.people import Principal
from engine.exceptions import AuthError
from engine.rules.actors import SYSTEM
from engine.server import auth
from engine.service import Deployment, NotFound, Result

router = APIRouter()
MAX_PAGE = 1_000_000  # a page number beyond any store (a larger one would overflow the SQL OFFSET)

REFUSED: dict[int | str, dict[str, Any]] = {409: {"description": "refused by the agreement (problem type `refused`, the reason in `detail`)"}}
KEY = Header(None, alias="Idempotency-Key", max_length=200,
             description="the same key with the same request returns the first outcome; with another request: 422")


def deployment(request: Request) -> Deployment:
    return request.app.state.deployment


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- sign-in


class Credentials(Strict):
    person: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(BaseModel):
    person: str
    csrf_token: str


class LoginIn(Credentials):
    expires: str = Field(tokens.DEFAULT_EXPIRES, description="token lifetime: 90d, 12h, 4w or never")
    read_only: bool = False
    name: str | None = Field(None, max_length=200)


class LoginOut(BaseModel):
    person: str
    token_id: str
    token: str


@router.post("/session", response_model=SessionOut, tags=["auth"],
             responses={401: {"description": "unknown person or wrong password"}, 429: {"description": "locked"}})
def sign_in(body: Credentials, request: Request, response: Response) -> SessionOut:
    """Sign in to the web console: sets the `coopflow_session` cookie; send `csrf_token` as X-CSRF-Token on writes."""
    principal = auth.password_principal(request, body.person, body.password)
    return SessionOut(person=principal.person, csrf_token=auth.open_session(request, response, principal))


@router.delete("/session", status_code=204, tags=["auth"])
def sign_out(request: Request, _p: Principal = Depends(auth.current_principal)) -> Response:
    """End the caller's console session."""
    response = Response(status_code=204)
    auth.close_session(request, response)
    return response


@router.post("/login", response_model=LoginOut, status_code=201, tags=["auth"],
             responses={401: {"description": "unknown person or wrong password"}, 429: {"description": "locked"}})
def login(body: LoginIn, request: Request) -> LoginOut:
    """Exchange a password for a fresh personal API token (`coopflow login`); throttled like every sign-in."""
    try:
        lifetime = tokens.parse_expires(body.expires)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    principal = auth.password_principal(request, body.person, body.password)
    d = deployment(request)
    token_id, token = tokens.issue(d.runtime.store, d.policy.config, principal.person, lifetime,
                                   read_only=body.read_only, name=body.name or "coopflow login")
    return LoginOut(person=principal.person, token_id=token_id, token=token)


# ---------------------------------------------------------------- the caller


class MeOut(BaseModel):
    person: str
    party: str | None
    roles: list[str]
    acting_role: str | None
    admin: bool
    read_only: bool
    method: str
    timezone: str = Field(description="the agreement's time zone (IANA name), in which people read times")


class Deadline(BaseModel):
    due_at: datetime
    fires: str


class TaskOut(BaseModel):
    instance: str
    workflow: str
    state: str
    role: str
    triggers: list[str]
    due_at: datetime | None


@router.get("/me", response_model=MeOut, tags=["me"])
def me(request: Request, p: Principal = Depends(auth.current_principal)) -> MeOut:
    """Who the caller is: person, party, roles granted, acting role, administrator, read-only."""
    return MeOut(person=p.person, party=p.party, roles=list(p.roles), acting_role=p.acting_role, admin=p.is_admin,
                 read_only=p.read_only, method=p.method, timezone=deployment(request).policy.tz.key)


@router.delete("/me/token", status_code=204, tags=["auth"],
               responses={422: {"description": "the request was not authenticated with a token"}})
def revoke_own_token(request: Request, p: Principal = Depends(auth.authenticate)) -> Response:
    """Revoke the token this request carries (`coopflow logout`); read-only tokens may revoke themselves too."""
    if not p.method.startswith("token:"):
        raise HTTPException(422, "this request carries no API token (sign out of a console session with DELETE /session)")
    tokens.revoke(deployment(request).runtime.store, p.method.removeprefix("token:"))
    return Response(status_code=204)


@router.get("/me/tasks", response_model=list[TaskOut], tags=["me"])
def my_tasks(request: Request, p: Principal = Depends(auth.current_principal)) -> list[dict]:
    """What the caller may (and so owes to) do now, soonest deadline first."""
    return deployment(request).tasks(p)


# ---------------------------------------------------------------- workflows


class FieldOut(BaseModel):
    name: str
    type: str
    title: str | None
    required: bool
    values: list[str] | None


class StateOut(BaseModel):
    id: str
    title: str
    final: bool
    deadline_fires: str | None


class TransitionOut(BaseModel):
    trigger: str
    title: str | None
    from_: list[str] = Field(alias="from")
    to: str
    by: list[str] = Field(description="who may fire it (role patterns)")
    when: str | None
    accepts: list[str]
    require: list[str]
    approvals: dict[str, Any] | None

    model_config = ConfigDict(populate_by_name=True)


class WorkflowSummary(BaseModel):
    id: str
    title: str
    clause: str
    started_by: list[str]


class WorkflowOut(WorkflowSummary):
    description: str | None
    initial: str
    fields: list[FieldOut]
    states: list[StateOut]
    transitions: list[TransitionOut]


def _workflow(d: Deployment, wid: str):
    spec = d.policy.workflows.get(wid)
    if spec is None:
        raise NotFound(f"unknown workflow '{wid}'")
    return spec


@router.get("/workflows", response_model=list[WorkflowSummary], tags=["workflows"])
def workflows(request: Request, _p: Principal = Depends(auth.current_principal)) -> list[dict]:
    """The clauses of the agreement."""
    return [{"id": s.id, "title": s.title, "clause": str(s.clause), "started_by": s.started_by}
            for s in deployment(request).policy.workflows.values()]


@router.get("/workflows/{workflow}", response_model=WorkflowOut, response_model_by_alias=True, tags=["workflows"],
            responses={404: {"description": "unknown workflow"}})
def workflow(workflow: str, request: Request, _p: Principal = Depends(auth.current_principal)) -> dict:
    """One clause: states, transitions (who may fire them), fields."""
    s = _workflow(deployment(request), workflow)
    return {
        "id": s.id, "title": s.title, "clause": str(s.clause), "started_by": s.started_by, "description": s.description,
        "initial": s.initial,
        "fields": [{"name": n, "type": f.type, "title": f.title, "required": f.required, "values": f.values}
                   for n, f in s.fields.items()],
        "states": [{"id": n, "title": st.title, "final": st.final, "deadline_fires": st.deadline.fire if st.deadline else None}
                   for n, st in s.states.items()],
        "transitions": [{"trigger": t.trigger, "title": t.title, "from": t.sources, "to": t.dest, "by": t.by,
                         "when": t.when, "accepts": t.accepts, "require": t.require,
                         "approvals": t.approvals.model_dump(mode="json") if t.approvals else None}
                        for t in s.transitions],
    }


# ---------------------------------------------------------------- instances


class Consent(BaseModel):
    trigger: str
    party: str
    actor: str
    at: datetime
    expires_at: datetime | None


class Action(BaseModel):
    trigger: str
    title: str | None
    to: str | None
    allowed: bool
    reason: str | None = Field(description="why it is closed to the caller now (None when allowed)")
    needs_approval: bool
    accepts: list[str]
    require: list[str]


class InstanceSummary(BaseModel):
    id: str
    workflow: str
    state: str
    state_title: str = Field(description="the state's title in the current policy (its id when it has none)")
    final: bool
    created_at: datetime
    updated_at: datetime
    deadline: Deadline | None


class InstanceOut(InstanceSummary):
    version: str | None
    fields: dict[str, Any]
    consents: list[Consent]
    acting_role: str | None = Field(description="the role `actions` were decided for")
    actions: list[Action]


class InstancePage(BaseModel):
    items: list[InstanceSummary]
    next_cursor: str | None


class StartIn(Strict):
    workflow: str = Field(min_length=1, max_length=120)
    values: dict[str, Any] = {}
    role: str | None = Field(None, max_length=120, description="party.role (or a bare role) among those granted; "
                                                                "`system` for administrators")


class EventIn(Strict):
    trigger: str = Field(min_length=1, max_length=120)
    values: dict[str, Any] = {}
    withdraw: bool = Field(False, description="withdraw the caller's party's consent instead of giving it")
    role: str | None = Field(None, max_length=120)


class ResultOut(BaseModel):
    status: str = Field(description="applied or pending (refusals are 409 problems)")
    text: str
    instance: str
    inbox_id: int
    new: bool = Field(description="False when an Idempotency-Key returned an earlier request's outcome")


class HistoryRow(BaseModel):
    seq: int
    at: datetime
    kind: str
    trigger: str | None
    from_state: str | None
    to_state: str | None
    actor: str | None
    outcome: str
    reason: str | None
    data: dict[str, Any]


class HistoryPage(BaseModel):
    items: list[HistoryRow]
    next_cursor: str | None


def _actor(p: Principal, role: str | None) -> str:
    """The actor string for a write: the caller in a granted role (403 otherwise); `system` for administrators."""
    if role == SYSTEM:
        if not p.is_admin:
            raise HTTPException(403, f"{p.person} is not an administrator: only administrators act as system")
        if p.read_only:
            raise HTTPException(403, f"{p.person} is signed in read-only ({p.method}): reads only")
        return SYSTEM
    try:
        return p.act_as(role)
    except AuthError as exc:
        raise HTTPException(403, str(exc)) from None


def _provenance(request: Request, p: Principal, actor: str) -> dict[str, Any]:
    return {"principal": {"person": p.person, "role": actor.split(":", 1)[0], "auth": p.method,
                          "client": auth.client_address(request)}}


def _answer(result: Result, created: bool) -> JSONResponse:
    body = ResultOut(status=result.status, text=result.text, instance=result.instance, inbox_id=result.inbox_id,
                     new=result.new).model_dump(mode="json")
    if result.pending:
        return JSONResponse(body, status_code=202)
    if not result.applied:
        from engine.server.app import problem

        reason = result.text.removeprefix("refused: ")
        return problem(409, "refused", "Refused by the agreement", reason, code=result.code or "refused",
                       instance=result.instance, inbox_id=result.inbox_id)
    return JSONResponse(body, status_code=201 if created and result.new else 200,
                        headers={"Location": f"/api/v1/instances/{result.instance}"} if created else None)


@router.get("/instances", response_model=InstancePage, tags=["instances"])
def list_instances(request: Request, workflow: str | None = Query(None, max_length=120),
                   state: str | None = Query(None, max_length=120), limit: int = Query(50, ge=1, le=500),
                   cursor: str | None = Query(None, max_length=500),
                   p: Principal = Depends(auth.current_principal)) -> dict:
    """Instances the caller may see, newest first; pass `next_cursor` back as `cursor` for the next page."""
    d = deployment(request)
    items, nxt = d.instance_page(p, workflow, state, limit, cursor)
    return {"items": [{**r, "state_title": d.state_title(r["workflow"], r["state"])} for r in items], "next_cursor": nxt}


@router.post("/instances", response_model=ResultOut, status_code=201, tags=["instances"],
             responses={**REFUSED, 202: {"model": ResultOut, "description": "queued, not applied yet"},
                        403: {"description": "role not granted, read-only, or system without being an administrator"},
                        404: {"description": "unknown workflow"}, 422: {"description": "invalid request or key reused"}})
def start_instance(body: StartIn, request: Request, key: str | None = KEY,
                   p: Principal = Depends(auth.current_principal)) -> JSONResponse:
    """Start an instance of a workflow as the caller (in `role`)."""
    d = deployment(request)
    _workflow(d, body.workflow)
    actor = _actor(p, body.role)
    return _answer(d.start(body.workflow, actor, body.values, key, provenance=_provenance(request, p, actor)), True)


@router.get("/instances/{instance}", response_model=InstanceOut, tags=["instances"],
            responses={403: {"description": "`role` is not one the caller holds"},
                       404: {"description": "unknown instance, or one the caller may not see"}})
def get_instance(instance: str, request: Request, role: str | None = Query(None, max_length=120),
                 p: Principal = Depends(auth.current_principal)) -> dict:
    """State, fields, deadline, consents, and the triggers from this state: open to the caller or why not."""
    d = deployment(request)
    row = d.visible_instance(p, instance)
    try:
        acting = p.grant(role)
    except AuthError as exc:
        if role is not None:
            raise HTTPException(403, str(exc)) from None
        acting = next((g for g in p.roles if g.split(".", 1)[0] in row["fields"].values()), p.roles[0])
    return {**row, "final": bool(row["final"]), "acting_role": acting, "state_title": d.state_title(row["workflow"], row["state"]),
            "actions": d.actions(row, f"{acting}:{p.person}")}


@router.post("/instances/{instance}/events", response_model=ResultOut, tags=["instances"],
             responses={**REFUSED, 202: {"model": ResultOut, "description": "queued, not applied yet"},
                        403: {"description": "role not granted or read-only"},
                        404: {"description": "unknown instance, or one the caller may not see"},
                        422: {"description": "invalid request or key reused"}})
def fire_event(instance: str, body: EventIn, request: Request, key: str | None = KEY,
               p: Principal = Depends(auth.current_principal)) -> JSONResponse:
    """Fire a trigger (or give / withdraw the caller's party's consent) as the caller."""
    d = deployment(request)
    d.visible_instance(p, instance)
    actor = _actor(p, body.role)
    prov = _provenance(request, p, actor)
    if body.withdraw:
        if body.values:
            raise HTTPException(422, "a withdrawal carries no values")
        return _answer(d.withdraw(instance, body.trigger, actor, key, provenance=prov), False)
    return _answer(d.fire(instance, body.trigger, actor, body.values, key, provenance=prov), False)


@router.get("/instances/{instance}/history", response_model=HistoryPage, tags=["instances"],
            responses={404: {"description": "unknown instance, or one the caller may not see"}})
def instance_history(instance: str, request: Request, limit: int = Query(100, ge=1, le=1000),
                     cursor: str | None = Query(None, max_length=20, pattern=r"^\d+$"),
                     p: Principal = Depends(auth.current_principal)) -> dict:
    """Every applied and refused event of the instance, in order, with who asked (data.principal)."""
    rows = deployment(request).history_page(p, instance, limit + 1, int(cursor) if cursor else None)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": str(rows[-1]["seq"]) if more else None}


# ---------------------------------------------------------------- overview, upcoming, reports, audit


@router.get("/upcoming", tags=["reads"], response_model=list[dict[str, Any]])
def upcoming(request: Request, days: int = Query(30, ge=0, le=3660),
             p: Principal = Depends(auth.current_principal), limit: int = Query(200, ge=1, le=1000),
             page: int = Query(1, ge=1, le=MAX_PAGE)) -> list[dict]:
    """Schedule occurrences, deadlines and meetings due within `days` days, by time, `limit` per page
    (deadlines and meetings of visible instances only)."""
    d = deployment(request)
    items = d.upcoming(days, limit, (page - 1) * limit)
    if p.is_admin:
        return items
    out = []
    for item in items:
        ident = item.get("instance")
        if ident:
            try:
                d.visible_instance(p, ident)
            except NotFound:
                continue
        out.append(item)
    return out


@router.get("/overview", tags=["reads"], response_model=dict[str, Any])
def overview(request: Request, _p: Principal = Depends(auth.current_principal), limit: int = Query(20, ge=1, le=1000),
             page: int = Query(1, ge=1, le=MAX_PAGE)) -> dict:
    """Per clause and state (open, overdue), one page of the overdue list and of each party's next steps,
    as `coopflow status` shows it (`page`: which page, how many pages)."""
    return deployment(request).overview(limit, page)


@router.get("/reports/{period}", tags=["reads"], response_model=dict[str, Any],
            responses={422: {"description": "not a period such as 2027H1, or one not begun or over before the agreement"}})
def report(period: str, request: Request, _p: Principal = Depends(auth.current_principal)) -> dict:
    """The figures of the review report for a quarter, half year or year (2027Q4, 2027H1, 2027), as `coopflow report`."""
    from engine.views.report import PeriodError

    d = deployment(request)
    try:
        return d.report(period)  # refused like the CLI: not a period, not begun yet, or over before the agreement
    except PeriodError as exc:
        raise HTTPException(422, str(exc)) from None


class AuditOut(BaseModel):
    ok: bool
    problems: list[str]
    rows: int
    anchors: int


@router.get("/audit", response_model=AuditOut, tags=["reads"], responses={403: {"description": "not an administrator"}})
def audit(request: Request, _p: Principal = Depends(auth.require_admin)) -> dict:
    """`coopflow audit verify`: chain, anchors and replay (administrators only)."""
    r = deployment(request).audit()
    return {"ok": r.ok, "problems": r.problems, "rows": r.rows, "anchors": r.anchors}
