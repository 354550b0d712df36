"""The clauses of the agreement: /workflows and /workflows/{workflow} (states, transitions, fields)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from engine.auth.people import Principal
from engine.server import auth
from engine.server.api.shared import deployment
from engine.service import Deployment, NotFound

router = APIRouter()


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


def known_workflow(d: Deployment, wid: str):
    """The spec of workflow `wid` in the current policy (NotFound: a 404)."""
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
    s = known_workflow(deployment(request), workflow)
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
