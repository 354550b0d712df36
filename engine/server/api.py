"""The JSON API under /api/v1 (resources: workflows, instances, events, history, tasks, ...)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from engine.auth.people import Principal
from engine.server import auth

router = APIRouter()


class Credentials(BaseModel):
    person: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(BaseModel):
    person: str
    csrf_token: str


@router.post("/session", response_model=SessionOut, tags=["auth"],
             responses={401: {"description": "unknown person or wrong password"}, 429: {"description": "locked"}})
def sign_in(body: Credentials, request: Request, response: Response) -> SessionOut:
    """Sign in to the web console: sets the `coopflow_session` cookie; send `csrf_token` as X-CSRF-Token on writes."""
    principal = auth.password_principal(request, body.person, body.password)
    return SessionOut(person=principal.person, csrf_token=auth.open_session(request, response, principal))


@router.delete("/session", status_code=204, tags=["auth"])
def sign_out(request: Request, response: Response, _p: Principal = Depends(auth.current_principal)) -> Response:
    """End the caller's console session."""
    auth.close_session(request, response)
    response.status_code = 204
    return response
