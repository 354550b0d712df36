"""What every console page shares: the templates, rendering a page in the reader's language, who
is viewing, and the redirect to the sign-in form.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from engine.auth.people import Principal
from engine.server import auth
from engine.server.web import i18n
from engine.service import Deployment

TEMPLATES = Path(__file__).parent / "templates"
ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True, default_for_string=True),
                  trim_blocks=True, lstrip_blocks=True)

Gettext = Callable[..., str]


def deployment(request: Request) -> Deployment:
    return request.app.state.deployment


def gettext_of(request: Request) -> Gettext:
    """`_(text, **values)`: the text in the reader's language, `%(name)s` filled from `values`."""
    tr = i18n.translations(i18n.language(request))

    def gettext(text: str, **values: Any) -> str:
        out = tr.gettext(text)
        return out % values if values else out

    return gettext


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    d = deployment(request)
    lang = i18n.language(request)
    gettext = gettext_of(request)
    principal = getattr(request.state, "principal", None)
    html = ENV.get_template(name).render(
        request=request, _=gettext, lang=lang, languages=i18n.LANGUAGES, fmt=i18n.Formats(lang, d.policy.tz),
        reason=lambda text: i18n.reason(text, gettext), principal=principal, csrf=auth.csrf_token(request),
        agreement=d.policy.config.agreement.title, here=request.url.path, timezone=d.policy.config.timezone, **context)
    response = HTMLResponse(html, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def message_page(request: Request, status: int, title: str, text: str) -> HTMLResponse:
    return render(request, "message.html", status=status, title=title, text=text)


def not_found(request: Request, text: str) -> HTMLResponse:
    """The 404 page, saying `text` (already in the reader's language)."""
    _ = gettext_of(request)
    return message_page(request, 404, _("Not found"), text)


def viewer(request: Request) -> Principal | None:
    """The signed-in person (session cookie or bearer token), or None."""
    try:
        return auth.authenticate(request)
    except HTTPException:
        return None


def to_login(request: Request) -> RedirectResponse:
    return RedirectResponse("/login?next=" + quote(request.url.path), status_code=303)


class Answer(Exception):
    """Raised by a page's dependency where the page cannot go on: the request is answered with
    `response` instead (the sign-in redirect, a refused form). `install` registers the handler."""

    def __init__(self, response: Response):
        super().__init__(response.status_code)
        self.response = response


def signed_in(request: Request) -> Principal:
    """A page's dependency: the signed-in person, else the redirect to the sign-in form."""
    principal = viewer(request)
    if principal is None:
        raise Answer(to_login(request))
    return principal


SignedIn = Annotated[Principal, Depends(signed_in)]


def local_path(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no //) is followed after sign-in."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"
