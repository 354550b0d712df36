"""Who is calling: personal API tokens (Authorization: Bearer) and web console sessions (cookie).

`current_principal` is the FastAPI dependency every /api/v1 route (and the console) uses: it
returns the authenticated `Principal`, or answers 401. On writes (any method but GET/HEAD/
OPTIONS) a read-only token is refused (403), and a session must also send its CSRF token in
the `X-CSRF-Token` header (403 otherwise).

Sessions: `open_session` (after a password check) stores sha256 of a random session id in the
`sessions` table and sets the `coopflow_session` cookie (HttpOnly, SameSite=Lax, Secure when the
request came over HTTPS, also behind a proxy that says so); `close_session` deletes both. A
session lasts `SESSION_LIFETIME` at most and ends after `SESSION_IDLE` without a request.
`csrf_token(request)` is the session's CSRF token for forms; `check_csrf(request, token)`
raises 403 when it does not match.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from fastapi import Depends, HTTPException, Request, Response
from loguru import logger

from engine import clock
from engine.auth import authenticate_password, authenticate_token
from engine.auth.people import PASSWORD_SESSION, Principal, grants, principal_for
from engine.exceptions import AuthError
from engine.store import accounts as rows_of

COOKIE = "coopflow_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_LIFETIME = timedelta(hours=12)
SESSION_IDLE = timedelta(hours=2)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def client_address(request: Request) -> str:
    """The caller's address (uvicorn applies X-Forwarded-For from the trusted proxy)."""
    return request.client.host if request.client else "unknown"


def is_https(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def unauthenticated(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": 'Bearer realm="coopflow"'})


def _deployment(request: Request):
    return request.app.state.deployment


# ---- sessions


def open_session(request: Request, response: Response, principal: Principal) -> str:
    """Start a session for a principal who just proved their password; sets the cookie, returns the CSRF token."""
    store = _deployment(request).runtime.store
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = clock.now()
    with store.explained_errors(), store.transaction() as conn:
        rows_of.open_session(
            conn, now, id_hash=_digest(session_id), person=principal.person, csrf=csrf, client=principal.client[:200],
            created_at=now, last_seen_at=now, expires_at=now + SESSION_LIFETIME, data={})
    response.set_cookie(COOKIE, session_id, max_age=int(SESSION_LIFETIME.total_seconds()), httponly=True,
                        samesite="lax", secure=is_https(request), path="/")
    logger.bind(person=principal.person, client=principal.client).info("session opened")
    return csrf


def close_session(request: Request, response: Response) -> bool:
    """End the caller's session (if any) and clear the cookie; False when there was none."""
    session_id = request.cookies.get(COOKIE)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=is_https(request))
    if not session_id:
        return False
    store = _deployment(request).runtime.store
    with store.explained_errors(), store.transaction() as conn:
        return rows_of.close_session(conn, _digest(session_id))


def _session_principal(request: Request, session_id: str) -> tuple[Principal, str]:
    deployment = _deployment(request)
    store, config = deployment.runtime.store, deployment.policy.config
    now = clock.now()
    key = _digest(session_id)
    with store.explained_errors(), store.transaction() as conn:
        row = rows_of.session(conn, key)
        if row is None:
            raise unauthenticated("session unknown or ended: sign in again")
        account = rows_of.user(conn, row.person)
        if row.expires_at <= now or row.last_seen_at + SESSION_IDLE <= now:
            rows_of.close_session(conn, key)
            raise unauthenticated("session expired: sign in again")
        if account is None or account.disabled or not grants(config, row.person):
            rows_of.close_session(conn, key)
            raise unauthenticated(f"the account of {row.person} is disabled")
        rows_of.touch_session(conn, key, now)
    return principal_for(config, row.person, PASSWORD_SESSION, client_address(request)), row.csrf


def csrf_token(request: Request) -> str | None:
    """The CSRF token of the caller's session (after `current_principal` ran), else None."""
    return getattr(request.state, "csrf", None)


def check_csrf(request: Request, token: str | None) -> None:
    """403 unless `token` is the caller's session CSRF token."""
    expected = csrf_token(request)
    if not expected or not token or not hmac.compare_digest(expected, token):
        raise HTTPException(403, "missing or wrong CSRF token (send the X-CSRF-Token header)")


# ---- the dependency


def authenticate(request: Request) -> Principal:
    """The principal behind the request's bearer token or session cookie; 401 otherwise."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    deployment = _deployment(request)
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthenticated("use Authorization: Bearer <token>")
        try:
            principal = authenticate_token(deployment.runtime.store, token, client_address(request),
                                           config=deployment.policy.config)
        except AuthError as exc:
            raise unauthenticated(str(exc)) from None
        request.state.auth = "token"
    elif request.cookies.get(COOKIE):
        principal, request.state.csrf = _session_principal(request, request.cookies[COOKIE])
        request.state.auth = "session"
    else:
        raise unauthenticated("authentication required: Authorization: Bearer <token> or a console session")
    request.state.principal = principal
    return principal


def current_principal(request: Request, principal: Principal = Depends(authenticate)) -> Principal:
    """The authenticated principal; on writes also: not read-only, and a session's CSRF token sent."""
    if request.method not in SAFE_METHODS:
        if principal.read_only:
            raise HTTPException(403, f"{principal.person} is signed in read-only ({principal.method}): reads only")
        if request.state.auth == "session":
            check_csrf(request, request.headers.get(CSRF_HEADER))
    return principal


def require_admin(principal: Principal = Depends(current_principal)) -> Principal:
    if not principal.is_admin:
        raise HTTPException(403, f"{principal.person} is not an administrator")
    return principal


def password_principal(request: Request, person: str, password: str) -> Principal:
    """Check a password (throttled by engine.auth); 401, or 429 while the person or address is locked."""
    deployment = _deployment(request)
    try:
        return authenticate_password(deployment.runtime.store, person, password, client_address(request),
                                     config=deployment.policy.config)
    except AuthError as exc:
        status = 429 if str(exc).startswith("too many") else 401
        raise HTTPException(status, str(exc), headers={"Retry-After": "900"} if status == 429 else None) from None
