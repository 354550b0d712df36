"""The console's session pages: the language switch, sign-in, sign-out and changing one's password.

Before sign-in there is no session to hold a CSRF token, so the sign-in form carries a
double-submit cookie (`coopflow_login_csrf`, only sent to /login) and the same value in the form.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from engine.auth import accounts
from engine.exceptions import AuthError
from engine.server import auth
from engine.server.web import i18n
from engine.server.web.forms import Form, Poster
from engine.server.web.rendering import SignedIn, deployment, gettext_of, local_path, render

router = APIRouter(include_in_schema=False)
LOGIN_CSRF = "coopflow_login_csrf"


@router.get("/lang/{code}")
def switch_language(code: str, request: Request, next: str | None = None) -> Response:
    response = RedirectResponse(local_path(next), status_code=303)
    if code in i18n.LANGUAGES:
        response.set_cookie(i18n.COOKIE, code, max_age=365 * 86400, httponly=True, samesite="lax",
                            secure=auth.is_https(request), path="/")
    return response


def _login_page(request: Request, status: int = 200, error: str | None = None, person: str = "",
                next: str | None = None) -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF) or secrets.token_urlsafe(32)
    response = render(request, "login.html", status=status, error=error, person=person, login_csrf=token,
                      next=local_path(next))
    response.set_cookie(LOGIN_CSRF, token, max_age=3600, httponly=True, samesite="strict",
                        secure=auth.is_https(request), path="/login")
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, next=next)


@router.post("/login")
def login(request: Request, form: Form) -> Response:
    _ = gettext_of(request)
    person, expected = form.get("person", "").strip(), request.cookies.get(LOGIN_CSRF)
    if not expected or not hmac.compare_digest(expected, form.get("csrf", "")):
        return _login_page(request, 403, _("This form has no valid security token (CSRF). Nothing was changed: "
                                           "open the page again and resend it."), person)
    try:
        principal = auth.password_principal(request, person, form.get("password", ""))
    except HTTPException as exc:
        text = (_("Too many failed sign-ins: try again later.") if exc.status_code == 429
                else _("Unknown person or wrong password."))
        return _login_page(request, exc.status_code, text, person, form.get("next"))
    response = RedirectResponse(local_path(form.get("next")), status_code=303)
    auth.open_session(request, response, principal)
    response.delete_cookie(LOGIN_CSRF, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, p: Poster) -> Response:
    response = RedirectResponse("/login", status_code=303)
    auth.close_session(request, response)
    return response


@router.get("/password")
def password_form(request: Request, p: SignedIn) -> Response:
    return render(request, "password.html")


@router.post("/password")
def change_password(request: Request, p: Poster, form: Form) -> Response:
    _ = gettext_of(request)
    new = form.get("new", "")
    if new != form.get("confirm", ""):
        return render(request, "password.html", status=422, error=_("The two new passwords differ."))
    try:
        auth.password_principal(request, p.person, form.get("current", ""))
    except HTTPException:
        return render(request, "password.html", status=403, error=_("The current password is wrong."))
    try:
        accounts.set_password(deployment(request).runtime.store, p.person, new)
    except AuthError as exc:
        return render(request, "password.html", status=422,
                      error=_("The new password is not accepted: %(why)s", why=str(exc)))
    return render(request, "password.html", done=_("Password changed."))
