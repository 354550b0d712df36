"""The web console: server-rendered pages in Vietnamese (English on request) at `/`.

`install(app)` mounts the static files at /static and the console's routes; engine.server.app
calls it. The routes are grouped by page: `session` (language, sign-in, sign-out, password),
`tasks` (my tasks), `start` (starting a request), `instance` (one file and its steps) and
`oversight` (overview, calendar, reports, audit); `rendering` and `forms` hold what they share
(rendering a page, the viewer, CSRF-checked posts, fields as inputs). Pages are Jinja2
templates (autoescaped) in templates/, strings come from the gettext catalogs in locale/
(engine.server.web.i18n), forms carry the session's CSRF token and an idempotency key.
docs/web.md is the guide.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    from engine.server.web import instance, oversight, session, start, tasks
    from engine.server.web.rendering import Answer

    app.add_exception_handler(Answer, lambda request, exc: exc.response)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (session, tasks, start, instance, oversight):
        app.include_router(module.router)
