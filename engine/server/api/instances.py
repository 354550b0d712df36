"""Instances: the list, one instance (with what the caller may do now), its events and its history.

Writes act as the caller in a granted role (`role` in the body; `system` for administrators only);
refusals are 409 problems whose `detail` is the reason the CLI prints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from engine.auth.people import Principal
from engine.exceptions import AuthError
from engine.rules.actors import SYSTEM
from engine.server import auth
from engine.server.api.shared import Deadline, Strict, deployment
from engine.server.api.workflows import known_workflow
from engine.service import Result

router = APIRouter()

REFUSED: dict[int | str, dict[str, Any]] = {409: {"description": "refused by the agreement (problem type `refused`, the reason in `detail`)"}}
KEY = Header(None, alias="Idempotency-Key", max_length=200,
             description="the same key with the same request returns the first outcome; with another request: 422")


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
    awaiting_consent: dict[str, list[str]] = Field(
        description="trigger -> the parties whose consent the step still needs (only triggers that need some)")
    acting_role: str | None = Field(description="the role `actions` were decided for")
    actions: list[Action]


class InstancePage(BaseModel):
    items: list[InstanceSummary]
    next_cursor: str | None
    total: int = Field(description="how many instances match the filters in all, of those the caller may see")


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
        from engine.server.app import problem  # (app imports this package: imported when a refusal is answered)

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
    return {"items": [{**r, "state_title": d.state_title(r["workflow"], r["state"])} for r in items], "next_cursor": nxt,
            "total": d.visible_count(p, workflow, state)}


@router.post("/instances", response_model=ResultOut, status_code=201, tags=["instances"],
             responses={**REFUSED, 202: {"model": ResultOut, "description": "queued, not applied yet"},
                        403: {"description": "role not granted, read-only, or system without being an administrator"},
                        404: {"description": "unknown workflow"}, 422: {"description": "invalid request or key reused"}})
def start_instance(body: StartIn, request: Request, key: str | None = KEY,
                   p: Principal = Depends(auth.current_principal)) -> JSONResponse:
    """Start an instance of a workflow as the caller (in `role`)."""
    d = deployment(request)
    known_workflow(d, body.workflow)
    actor = _actor(p, body.role)
    return _answer(d.start(body.workflow, actor, body.values, key, provenance=_provenance(request, p, actor)), True)


@router.get("/instances/{instance}", response_model=InstanceOut, tags=["instances"],
            responses={403: {"description": "`role` is not one the caller holds"},
                       404: {"description": "unknown instance, or one the caller may not see"}})
def get_instance(instance: str, request: Request, role: str | None = Query(None, max_length=120),
                 p: Principal = Depends(auth.current_principal)) -> dict:
    """State, fields, deadline, consents given and awaited, and the triggers from this state: open to the caller or why not."""
    d = deployment(request)
    row = d.visible_instance(p, instance)
    try:
        acting = p.grant(role)
    except AuthError as exc:
        if role is not None:
            raise HTTPException(403, str(exc)) from None
        acting = next((g for g in p.roles if g.split(".", 1)[0] in row["fields"].values()), p.roles[0])
    return {**row, "final": bool(row["final"]), "acting_role": acting, "state_title": d.state_title(row["workflow"], row["state"]),
            "awaiting_consent": d.awaiting_consent(row), "actions": d.actions(row, f"{acting}:{p.person}")}


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
