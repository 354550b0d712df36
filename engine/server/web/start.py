"""Starting a request: the processes my roles may start, and each one's form built from its fields."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from engine.auth.people import Principal
from engine.exceptions import UserError
from engine.rules import fields as fieldtypes
from engine.server.web import i18n
from engine.server.web.forms import Form, Poster, event_key, field_views, provenance, typed_values
from engine.server.web.rendering import SignedIn, deployment, gettext_of, not_found, render
from engine.service import Deployment

router = APIRouter(include_in_schema=False)


def _startable(d: Deployment, p: Principal) -> list[dict[str, Any]]:
    from engine.rules.actors import allowed, parse_actor

    out = []
    for spec in d.policy.workflows.values():
        roles = [r for r in p.roles if allowed(parse_actor(r, d.policy.config), spec.started_by, {})]
        if roles:
            out.append({"id": spec.id, "title": spec.title, "clause": spec.clause, "description": spec.description,
                        "roles": roles})
    return out


@router.get("/start")
def start_list(request: Request, p: SignedIn) -> Response:
    return render(request, "start_list.html", workflows=_startable(deployment(request), p))


def _no_such_process(request: Request) -> Response:
    _ = gettext_of(request)
    return not_found(request, _("There is no such process you may start."))


def _start_page(request: Request, p: Principal, wid: str, status: int = 200, error: str | None = None,
                values: dict[str, str] | None = None, role: str | None = None) -> Response:
    d = deployment(request)
    spec = d.policy.workflows.get(wid)
    choice = next((w for w in _startable(d, p) if w["id"] == wid), None)
    if spec is None or choice is None:
        return _no_such_process(request)
    names = [n for n in spec.fields if not n.startswith("source_")]
    if values is None:  # the first party field (who asks, who proposes) is the person's own party
        first = next((n for n in names if spec.fields[n].type == "party" and spec.fields[n].default is None), None)
        values = {first: (role or choice["roles"][0]).split(".", 1)[0]} if first else None
    return render(request, "start.html", status=status, spec=spec, roles=choice["roles"], role=role, error=error,
                  fields=field_views(spec, names, values=values), key=secrets.token_urlsafe(18),
                  parties=d.policy.config.parties)


@router.get("/start/{wid}")
def start_form(wid: str, request: Request, p: SignedIn) -> Response:
    return _start_page(request, p, wid)


@router.post("/start/{wid}")
def start(wid: str, request: Request, p: Poster, form: Form) -> Response:
    d, _ = deployment(request), gettext_of(request)
    spec = d.policy.workflows.get(wid)
    if spec is None:
        return _no_such_process(request)
    entered = {n[2:]: v for n, v in form.items() if n.startswith("f.")}
    again = lambda status, error: _start_page(request, p, wid, status, error, entered, form.get("role"))  # noqa: E731
    try:
        values = typed_values(request, spec, spec.fields, form)
        missing = [spec.fields[n].title or n for n in fieldtypes.missing_required(values, spec.fields)
                   if spec.fields[n].default is None]
        if missing:
            return again(422, _("Required: %(fields)s", fields=", ".join(missing)))
        actor = p.act_as(form.get("role") or None)
        result = d.start(wid, actor, values, event_key(form), provenance=provenance(request, p, actor))
    except (ValueError, UserError) as exc:  # a store fault is not the form's: 503 (server.app)
        return again(422, i18n.reason(str(exc), _))
    if not result.applied and not result.pending:
        return again(409, i18n.reason(result.text, _))
    return RedirectResponse(f"/i/{quote(result.instance)}", status_code=303)
