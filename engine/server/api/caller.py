"""Sign-in and the caller: the console's session, `coopflow login`'s token, /me, /me/token, /me/tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field, field_validator

from engine.auth import tokens
from engine.auth.people import Principal
from engine.server import auth
from engine.server.api.shared import Strict, deployment

router = APIRouter()
SIGN_IN_REFUSED: dict[int | str, dict[str, Any]] = {401: {"description": "unknown person or wrong password"}, 429: {"description": "locked"}}


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

    @field_validator("expires")
    @classmethod
    def _a_lifetime(cls, value: str) -> str:
        tokens.parse_expires(value)  # refused (422) before the password is checked, so a typo costs no attempt
        return value


class LoginOut(BaseModel):
    person: str
    token_id: str
    token: str


@router.post("/session", response_model=SessionOut, tags=["auth"], responses=SIGN_IN_REFUSED)
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


@router.post("/login", response_model=LoginOut, status_code=201, tags=["auth"], responses=SIGN_IN_REFUSED)
def login(body: LoginIn, request: Request) -> LoginOut:
    """Exchange a password for a fresh personal API token (`coopflow login`); throttled like every sign-in."""
    principal = auth.password_principal(request, body.person, body.password)
    token_id, token = deployment(request).issue_token(principal.person, body.expires, read_only=body.read_only,
                                                      name=body.name or "coopflow login")
    return LoginOut(person=principal.person, token_id=token_id, token=token)


class MeOut(BaseModel):
    person: str
    party: str | None
    roles: list[str]
    acting_role: str | None
    admin: bool
    read_only: bool
    method: str
    timezone: str = Field(description="the agreement's time zone (IANA name), in which people read times")


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
    deployment(request).revoke_token(p.method.removeprefix("token:"))
    return Response(status_code=204)


@router.get("/me/tasks", response_model=list[TaskOut], tags=["me"])
def my_tasks(request: Request, p: Principal = Depends(auth.current_principal)) -> list[dict]:
    """What the caller may (and so owes to) do now, soonest deadline first."""
    return deployment(request).tasks(p)
