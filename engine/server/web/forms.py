"""The console's forms: reading a post, refusing one without its CSRF token, the provenance an
event carries, and a workflow's fields as form inputs and back as typed values.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from engine.auth.people import Principal
from engine.policy.spec import WorkflowSpec
from engine.rules import fields as fieldtypes
from engine.server import auth
from engine.server.web.rendering import Answer, SignedIn, deployment, gettext_of, message_page

INPUT_TYPES = {"int": "number", "float": "number", "date": "date", "datetime": "datetime-local"}
LONG_TEXT = {"subject", "answer", "issue", "conclusions", "result", "refusal_reason", "description", "summary"}


async def read_form(request: Request) -> dict[str, str]:
    """A post's dependency: its form's text fields (read once per request, in the event loop; the
    page itself, a plain function, runs in the thread pool)."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


Form = Annotated[dict[str, str], Depends(read_form)]


def poster(request: Request, principal: SignedIn, form: Form) -> Principal:
    """A session form post's dependency: its principal, the form's CSRF token checked; else the
    page that refuses it."""
    _ = gettext_of(request)
    try:
        auth.check_csrf(request, form.get("csrf"))
    except HTTPException:
        raise Answer(message_page(request, 403, _("Form refused"), _(
            "This form has no valid security token (CSRF). Nothing was changed: open the page again and resend it."))) from None
    if principal.read_only:
        raise Answer(message_page(request, 403, _("Form refused"), _("You are signed in read-only.")))
    return principal


Poster = Annotated[Principal, Depends(poster)]


def provenance(request: Request, p: Principal, actor: str) -> dict[str, Any]:
    return {"principal": {"person": p.person, "role": actor.split(":", 1)[0], "auth": p.method,
                          "client": auth.client_address(request), "via": "console"}}


def event_key(form: dict[str, str], *parts: str) -> str | None:
    """The idempotency key of the form's event ("web:" + the form's key, cut short), None without one."""
    if not form.get("key"):
        return None
    return ":".join(["web:" + form["key"][:60], *parts])


def field_views(spec: WorkflowSpec, names, required: set[str] | None = None,
                values: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The inputs of `names`: label, type, choices, whether required and the value to show."""
    out = []
    for name in names:
        f = spec.fields[name]
        default = "" if f.default is None or isinstance(f.default, str) and f.default.startswith("=") else str(f.default)
        out.append({"name": name, "title": f.title or name, "type": f.type, "choices": f.values or [],
                    "input": INPUT_TYPES.get(f.type, "text"), "step": "any" if f.type == "float" else None,
                    "required": f.required if required is None else name in required,
                    "value": (values or {}).get(name, default), "multiline": f.type == "str" and name in LONG_TEXT})
    return out


def typed_values(request: Request, spec: WorkflowSpec, names, form: dict[str, str]) -> dict[str, Any]:
    """The form's non-empty values, typed; ValueError naming the field (by its title) otherwise."""
    _ = gettext_of(request)
    config = deployment(request).policy.config
    out = {}
    for name in names:
        raw = form.get("f." + name, "").strip()
        if raw == "":
            continue
        f = spec.fields[name]
        try:
            out[name] = fieldtypes.coerce(name, f, raw, config)
        except ValueError:
            raise ValueError(_("“%(field)s”: the value “%(value)s” is not valid here.", field=f.title or name,
                               value=raw[:80])) from None
    return out
