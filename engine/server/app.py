"""The HTTP application: the JSON API under /api/v1, the web console at /, health and metrics.

`create_app(deployment)` builds one FastAPI application over a service-layer `Deployment`.
`coopflow run` serves it in a thread beside the daemon (`serve_in_thread`); `coopflow serve`
runs it alone, against the same store, behind a reverse proxy.

Only /healthz, /readyz and /metrics answer without a login; every other route depends on an
authenticated principal (engine.server.auth). Errors are RFC 9457 problem documents.
"""

from __future__ import annotations

import threading
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.exceptions import CoopflowError
from engine.service import Deployment
from engine.store.reads import BadCursor

PROBLEM = "application/problem+json"
PROBLEM_BASE = "https://coopflow.invalid/problems/"  # stable type URIs; the host is never dereferenced

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def problem(status: int, kind: str, title: str, detail: str | None = None, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem response with a stable `type`."""
    body = {"type": PROBLEM_BASE + kind, "title": title, "status": status, **({"detail": detail} if detail else {}), **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def create_app(deployment: Deployment) -> FastAPI:
    """The whole HTTP surface of one deployment."""
    app = FastAPI(title="coopflow", version=_version(), openapi_url="/api/v1/openapi.json",
                  docs_url="/api/v1/docs", redoc_url=None)
    app.state.deployment = deployment
    http = deployment.policy.config.http

    @app.middleware("http")
    async def guard(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > http.max_body):
            return problem(413, "too-large", "Request too large", f"at most {http.max_body} bytes")
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https":
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    if http.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=http.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "Idempotency-Key"])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        kind = {401: "unauthenticated", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
                422: "invalid-request", 429: "too-many-attempts"}.get(
            exc.status_code, "http-error")
        title = HTTPStatus(exc.status_code).phrase if exc.status_code in HTTPStatus._value2member_map_ else kind
        detail = str(exc.detail) if exc.detail and str(exc.detail) != title else None
        response = problem(exc.status_code, kind, title, detail)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "")} for e in exc.errors()]
        return problem(422, "invalid-request", "Invalid request", "; ".join(
            f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors), errors=errors)

    @app.exception_handler(CoopflowError)
    async def refused(_request: Request, exc: CoopflowError):
        from engine.exceptions import AuthError
        from engine.service import NotFound
        from engine.store.database import StoreError
        from engine.store.inbox import KeyReused

        if isinstance(exc, StoreError):
            return problem(503, "store-unavailable", "Store unavailable", str(exc))
        if isinstance(exc, NotFound):
            return problem(404, "not-found", "Not found", str(exc))
        if isinstance(exc, AuthError):
            return problem(403, "forbidden", "Forbidden", str(exc))
        if isinstance(exc, KeyReused):
            return problem(422, "idempotency-key-reused", "Idempotency-Key reused for another request", str(exc))
        return problem(422, "invalid-request", "Invalid request", str(exc))

    @app.exception_handler(BadCursor)
    async def bad_cursor(_request: Request, exc: BadCursor):
        return problem(422, "invalid-request", "Invalid request", str(exc))

    @app.exception_handler(Exception)
    async def crashed(_request: Request, exc: Exception):
        logger.opt(exception=exc).error("internal error serving a request")
        return problem(500, "internal", "Internal error", "the error is in the server log")

    @app.get("/healthz", include_in_schema=True, tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "store unreachable or no leader"}})
    def readyz() -> Response:
        """The store is reachable and a daemon holds the leader lease."""
        try:
            leader = deployment.runtime.daemon_running()
        except Exception as exc:  # a store error: not ready
            return problem(503, "not-ready", "Store unreachable", type(exc).__name__)
        if not leader:
            return problem(503, "not-ready", "No daemon holds the leader lease")
        audit = getattr(deployment.runtime.store, "audit", None)  # the store's id: the CLI compares it with its own
        return JSONResponse({"status": "ready", "leader": leader, "store": audit.store_id if audit else None})

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def metrics() -> Response:
        """Prometheus text exposition."""
        from engine.server import metrics as m

        return Response(m.render(deployment), media_type=m.CONTENT_TYPE)

    _include_routers(app)
    return app


def _include_routers(app: FastAPI) -> None:
    """The API and the console, each in its own module."""
    from engine.server import api

    app.include_router(api.router, prefix="/api/v1")
    from engine.server.openapi import document_problems

    document_problems(app)
    try:
        from engine.server import web
    except ImportError:  # the console is optional while it is being built
        return
    web.install(app)


def _version() -> str:
    from engine import __version__

    return __version__


class ServerThread(threading.Thread):
    """uvicorn in a background thread (the daemon's main thread keeps the signals)."""

    def __init__(self, deployment: Deployment, host: str, port: int):
        import uvicorn

        super().__init__(name="http", daemon=True)
        config = uvicorn.Config(create_app(deployment), host=host, port=port, log_config=None, access_log=False,
                                server_header=False, proxy_headers=True, forwarded_allow_ips="127.0.0.1")
        self.server = uvicorn.Server(config)

    def run(self) -> None:
        self.server.run()

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.join(timeout)
