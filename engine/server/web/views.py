"""The console's pages: one route per page, each a thin call into the service layer.

GET pages render templates; every POST carries the CSRF token (the session's, or before sign-in
a double-submit cookie) and, where it submits an event, an idempotency key generated with the
form, so a reload or a double click applies the event once.
"""

from __future__ import annotations

import hmac
import json
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from engine import clock
from engine.auth import accounts
from engine.auth.people import Principal
from engine.exceptions import AuthError, CoopflowError, UserError
from engine.rules import duties
from engine.rules import fields as fieldtypes
from engine.server import auth
from engine.server.web import i18n
from engine.service import Deployment, NotFound

router = APIRouter(include_in_schema=False)
TEMPLATES = Path(__file__).parent / "templates"
ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True, default_for_string=True),
                  trim_blocks=True, lstrip_blocks=True)
LOGIN_CSRF = "coopflow_login_csrf"
SYSTEM = "system"
EXITS = {"withdraw", "cancel"}
INPUT_TYPES = {"int": "number", "float": "number", "date": "date", "datetime": "datetime-local"}


def _deployment(request: Request) -> Deployment:
    return request.app.state.deployment


def _gettext(request: Request):
    tr = i18n.translations(i18n.language(request))

    def gettext(text: str, **values: Any) -> str:
        out = tr.gettext(text)
        return out % values if values else out

    return gettext


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    d = _deployment(request)
    lang = i18n.language(request)
    gettext = _gettext(request)
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


def viewer(request: Request) -> Principal | None:
    """The signed-in person (session cookie or bearer token), or None."""
    try:
        return auth.authenticate(request)
    except HTTPException:
        return None


def to_login(request: Request) -> RedirectResponse:
    return RedirectResponse("/login?next=" + quote(request.url.path), status_code=303)


def _local_path(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no //) is followed after sign-in."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _posted(request: Request, form: dict[str, str]) -> Principal | Response:
    """The principal of a session form post with its CSRF token; else the page that refuses it."""
    principal = viewer(request)
    if principal is None:
        return to_login(request)
    _ = _gettext(request)
    try:
        auth.check_csrf(request, form.get("csrf"))
    except HTTPException:
        return message_page(request, 403, _("Form refused"), _(
            "This form has no valid security token (CSRF). Nothing was changed: open the page again and resend it."))
    if principal.read_only:
        return message_page(request, 403, _("Form refused"), _("You are signed in read-only."))
    return principal


def _provenance(request: Request, p: Principal, actor: str) -> dict[str, Any]:
    return {"principal": {"person": p.person, "role": actor.split(":", 1)[0], "auth": p.method,
                          "client": auth.client_address(request), "via": "console"}}


# ---------------------------------------------------------------- language, sign-in, sign-out, password


@router.get("/lang/{code}")
def switch_language(code: str, request: Request, next: str | None = None) -> Response:
    response = RedirectResponse(_local_path(next), status_code=303)
    if code in i18n.LANGUAGES:
        response.set_cookie(i18n.COOKIE, code, max_age=365 * 86400, httponly=True, samesite="lax",
                            secure=auth.is_https(request), path="/")
    return response


def _login_page(request: Request, status: int = 200, error: str | None = None, person: str = "",
                next: str | None = None) -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF) or secrets.token_urlsafe(32)
    response = render(request, "login.html", status=status, error=error, person=person, login_csrf=token,
                      next=_local_path(next))
    response.set_cookie(LOGIN_CSRF, token, max_age=3600, httponly=True, samesite="strict",
                        secure=auth.is_https(request), path="/login")
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, next=next)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_login, request, form)


def _login(request: Request, form: dict[str, str]) -> Response:
    _ = _gettext(request)
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
    response = RedirectResponse(_local_path(form.get("next")), status_code=303)
    auth.open_session(request, response, principal)
    response.delete_cookie(LOGIN_CSRF, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_logout, request, form)


def _logout(request: Request, form: dict[str, str]) -> Response:
    p = _posted(request, form)
    if not isinstance(p, Principal):
        return p
    response = RedirectResponse("/login", status_code=303)
    auth.close_session(request, response)
    return response


@router.get("/password")
def password_form(request: Request) -> Response:
    if viewer(request) is None:
        return to_login(request)
    return render(request, "password.html")


@router.post("/password")
async def change_password(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_change_password, request, form)


def _change_password(request: Request, form: dict[str, str]) -> Response:
    p = _posted(request, form)
    if not isinstance(p, Principal):
        return p
    _ = _gettext(request)
    new = form.get("new", "")
    if new != form.get("confirm", ""):
        return render(request, "password.html", status=422, error=_("The two new passwords differ."))
    try:
        auth.password_principal(request, p.person, form.get("current", ""))
    except HTTPException:
        return render(request, "password.html", status=403, error=_("The current password is wrong."))
    try:
        accounts.set_password(_deployment(request).runtime.store, p.person, new)
    except AuthError as exc:
        return render(request, "password.html", status=422,
                      error=_("The new password is not accepted: %(why)s", why=str(exc)))
    return render(request, "password.html", done=_("Password changed."))


# ---------------------------------------------------------------- my tasks


def working_days_left(d: Deployment, due: datetime | None) -> int | None:
    """Working days from today to the deadline's day (negative when it passed)."""
    if due is None:
        return None
    cal, tz = d.policy.calendar, d.policy.tz
    today, end = clock.now().astimezone(tz).date(), due.astimezone(tz).date()
    step = 1 if end >= today else -1
    count, day = 0, today
    while day != end:
        day += timedelta(days=step)
        if cal.is_working_day(day):
            count += step
    return count


def _spec(d: Deployment, row: dict[str, Any]):
    from engine.views.overview import Specs

    with d.runtime.store.reading() as conn:
        return Specs(conn, d.policy).get(row["workflow"], row.get("version"))


def _summary(d: Deployment, row: dict[str, Any]) -> dict[str, Any]:
    spec = d.policy.workflows.get(row["workflow"])
    state = spec.states.get(row["state"]) if spec else None
    fields = row.get("fields") or {}
    due = row["deadline"]["due_at"] if row.get("deadline") else row.get("due_at")
    return {"id": row["id"], "workflow": spec.title if spec else row["workflow"], "state": state.title if state else row["state"],
            "subject": fields.get("subject") or fields.get("issue") or fields.get("title") or "",
            "due_at": due, "days_left": working_days_left(d, due), "overdue": bool(due and due <= clock.now())}


@router.get("/")
def my_tasks(request: Request) -> Response:
    p = viewer(request)
    if p is None:
        return to_login(request)
    return render(request, "tasks.html", **_tasks(_deployment(request), p))


def _tasks(d: Deployment, p: Principal) -> dict[str, Any]:
    owed: dict[str, dict[str, Any]] = {}
    for task in d.tasks(p):
        if not set(task["triggers"]) <= EXITS:  # taking a request back is an option, not something owed
            owed.setdefault(task["instance"], task)
    visibility = d.visibility(p)
    rows = {r["id"]: r for r in d.instances() if not r["final"] and visibility.allows(r)}
    mine = [{**_summary(d, rows[i]), "triggers": t["triggers"]} for i, t in owed.items() if i in rows]
    waiting = [_summary(d, r) for i, r in rows.items() if i not in owed]
    far = datetime.max.replace(tzinfo=clock.now().tzinfo)
    waiting.sort(key=lambda s: (s["due_at"] or far, s["id"]))
    return {"mine": mine, "waiting": waiting}


# ---------------------------------------------------------------- start a request


def _field_views(spec, names, required: set[str] | None = None, values: dict[str, str] | None = None) -> list[dict]:
    out = []
    for name in names:
        f = spec.fields[name]
        default = "" if f.default is None or isinstance(f.default, str) and f.default.startswith("=") else str(f.default)
        out.append({"name": name, "title": f.title or name, "type": f.type, "choices": f.values or [],
                    "input": INPUT_TYPES.get(f.type, "text"), "step": "any" if f.type == "float" else None,
                    "required": f.required if required is None else name in required,
                    "value": (values or {}).get(name, default), "multiline": f.type == "str" and name in LONG_TEXT})
    return out


LONG_TEXT = {"subject", "answer", "issue", "conclusions", "result", "refusal_reason", "description", "summary"}


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
def start_list(request: Request) -> Response:
    p = viewer(request)
    if p is None:
        return to_login(request)
    return render(request, "start_list.html", workflows=_startable(_deployment(request), p))


def _start_page(request: Request, p: Principal, wid: str, status: int = 200, error: str | None = None,
                values: dict[str, str] | None = None, role: str | None = None) -> Response:
    d = _deployment(request)
    spec = d.policy.workflows.get(wid)
    choice = next((w for w in _startable(d, p) if w["id"] == wid), None)
    if spec is None or choice is None:
        _ = _gettext(request)
        return message_page(request, 404, _("Not found"), _("There is no such process you may start."))
    names = [n for n in spec.fields if not n.startswith("source_")]
    if values is None:  # the first party field (who asks, who proposes) is the person's own party
        first = next((n for n in names if spec.fields[n].type == "party" and spec.fields[n].default is None), None)
        values = {first: (role or choice["roles"][0]).split(".", 1)[0]} if first else None
    return render(request, "start.html", status=status, spec=spec, roles=choice["roles"], role=role, error=error,
                  fields=_field_views(spec, names, values=values), key=secrets.token_urlsafe(18),
                  parties=d.policy.config.parties)


@router.get("/start/{wid}")
def start_form(wid: str, request: Request) -> Response:
    p = viewer(request)
    if p is None:
        return to_login(request)
    return _start_page(request, p, wid)


@router.post("/start/{wid}")
async def start(wid: str, request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_start, request, wid, form)


def _values(request: Request, spec, names, form: dict[str, str]) -> dict[str, Any]:
    """The form's non-empty values, typed; ValueError naming the field (by its title) otherwise."""
    _ = _gettext(request)
    config = _deployment(request).policy.config
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


def _start(request: Request, wid: str, form: dict[str, str]) -> Response:
    p = _posted(request, form)
    if not isinstance(p, Principal):
        return p
    d, _ = _deployment(request), _gettext(request)
    spec = d.policy.workflows.get(wid)
    if spec is None:
        return message_page(request, 404, _("Not found"), _("There is no such process you may start."))
    entered = {n[2:]: v for n, v in form.items() if n.startswith("f.")}
    again = lambda status, error: _start_page(request, p, wid, status, error, entered, form.get("role"))  # noqa: E731
    try:
        values = _values(request, spec, spec.fields, form)
        missing = [spec.fields[n].title or n for n in fieldtypes.missing_required(values, spec.fields)
                   if spec.fields[n].default is None]
        if missing:
            return again(422, _("Required: %(fields)s", fields=", ".join(missing)))
        actor = p.act_as(form.get("role") or None)
        result = d.start(wid, actor, values, "web:" + form.get("key", "")[:60] if form.get("key") else None,
                         provenance=_provenance(request, p, actor))
    except (ValueError, UserError) as exc:  # a store fault is not the form's: 503 (server.app)
        return again(422, i18n.reason(str(exc), _))
    if not result.applied and not result.pending:
        return again(409, i18n.reason(result.text, _))
    return RedirectResponse(f"/i/{quote(result.instance)}", status_code=303)


# ---------------------------------------------------------------- one instance


def _actions(d: Deployment, p: Principal, row: dict[str, Any], spec) -> tuple[list[dict], list[dict]]:
    """(open, closed): the steps open to one of the person's roles now, and why the others are closed."""
    opened: dict[str, dict] = {}
    closed: dict[str, dict] = {}
    consented = {(c["trigger"], c["party"]) for c in row["consents"]}
    for role in p.roles:
        for a in d.actions(row, f"{role}:{p.person}"):
            if a["allowed"] and a["trigger"] not in opened:
                party = role.split(".", 1)[0]
                names = [n for n in a["accepts"] if n in spec.fields]
                opened[a["trigger"]] = {**a, "role": role, "fields": _field_views(spec, names, set(a["require"])),
                                        "agreed": (a["trigger"], party) in consented}
            elif not a["allowed"]:
                by = {tuple(t.by) for t in spec.transitions if t.trigger == a["trigger"]}
                if by and all(b == (SYSTEM,) for b in by):
                    continue  # the system's own steps (deadlines) are shown with the deadline
                closed.setdefault(a["trigger"], a)
    return list(opened.values()), [c for t, c in closed.items() if t not in opened]


def _consents(d: Deployment, row: dict[str, Any], spec) -> list[dict[str, Any]]:
    out = []
    for t in spec.transitions:
        if not t.approvals or row["state"] not in t.sources:
            continue
        agreed = [c for c in row["consents"] if c["trigger"] == t.trigger]
        have = {c["party"] for c in agreed}
        try:  # the parties that may consent, as the instance's fields name them (engine.rules.consent)
            parties = duties.approval_parties(t.approvals, d.policy.config, row["fields"] or {}) or []
        except ValueError:
            parties = []
        out.append({"trigger": t.trigger, "title": t.title or t.trigger, "agreed": agreed,
                    "awaited": [d.policy.config.parties[x].title if x in d.policy.config.parties else x
                                for x in parties if x not in have]})
    return out


def _diagram(spec, current: str) -> list[dict[str, Any]]:
    """The state graph as a list: each state, whether it is the current one, and where its steps lead."""
    out = []
    for sid, st in spec.states.items():
        steps = [{"title": t.title or t.trigger, "trigger": t.trigger,
                  "to": spec.states[t.dest].title if t.dest in spec.states else t.dest, "to_id": t.dest}
                 for t in spec.transitions if sid in t.sources]
        out.append({"id": sid, "title": st.title, "final": st.final, "current": sid == current,
                    "initial": sid == spec.initial, "steps": steps})
    return out


def _timeline(d: Deployment, instance: str, spec, _) -> list[dict[str, Any]]:
    rows = d.history(instance)
    titles = {t.trigger: t.title for t in spec.transitions} if spec else {}
    states = spec.states if spec else {}
    marks = {"consent": _("Consent"), "withdraw": _("Withdraw my consent")}  # not the step itself
    out = []
    for h in rows:
        who = ((h.get("data") or {}).get("principal") or {}).get("person") or h["actor"]
        step = titles.get(h["trigger"]) or h["trigger"] or h["kind"]
        if h["kind"] in marks:
            step = f"{marks[h['kind']]}: {step}"
        out.append({**h, "who": who, "step": step,
                    "to_title": states[h["to_state"]].title if h["to_state"] in states else h["to_state"]})
    return out


def _instance_page(request: Request, p: Principal, instance: str, status: int = 200,
                   notice: str | None = None, error: str | None = None) -> Response:
    d, _ = _deployment(request), _gettext(request)
    try:
        row = d.visible_instance(p, instance)
    except NotFound:
        return message_page(request, 404, _("Not found"), _("There is no such file, or you may not see it."))
    spec = _spec(d, row)
    from engine.server.web import graph
    from engine.views import diagram

    opened, closed = _actions(d, p, row, spec)
    deadline = row["deadline"]
    fires = None
    if deadline:
        t = next((t for t in spec.transitions if t.trigger == deadline["fires"] and row["state"] in t.sources), None)
        fires = {"trigger": deadline["fires"], "title": t.title if t else deadline["fires"],
                 "to": spec.states[t.dest].title if t and t.dest in spec.states else None}
    shown = [{"title": f.title or n, "value": (row["fields"] or {}).get(n), "type": f.type}
             for n, f in spec.fields.items() if (row["fields"] or {}).get(n) not in (None, "")]
    return render(request, "instance.html", status=status, row=row, spec=spec, state=spec.states.get(row["state"]),
                  fields=shown, deadline=deadline, fires=fires, days_left=working_days_left(d, deadline["due_at"]) if deadline else None,
                  overdue=bool(deadline and deadline["due_at"] <= clock.now()), consents=_consents(d, row, spec),
                  opened=opened, closed=closed, graph=_diagram(spec, row["state"]), svg=graph.svg(spec, row["state"]),
                  mermaid=diagram.mermaid(spec),
                  timeline=_timeline(d, row["id"], spec, _), key=secrets.token_urlsafe(18), notice=notice, error=error)


@router.get("/i/{instance}")
def instance_view(instance: str, request: Request) -> Response:
    p = viewer(request)
    if p is None:
        return to_login(request)
    return _instance_page(request, p, instance)


@router.post("/i/{instance}")
async def act(instance: str, request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_act, request, instance, form)


def _act(request: Request, instance: str, form: dict[str, str]) -> Response:
    p = _posted(request, form)
    if not isinstance(p, Principal):
        return p
    d, _ = _deployment(request), _gettext(request)
    try:
        row = d.visible_instance(p, instance)
    except NotFound:
        return message_page(request, 404, _("Not found"), _("There is no such file, or you may not see it."))
    spec = _spec(d, row)
    trigger = form.get("trigger", "")
    accepts = {n for t in spec.transitions if t.trigger == trigger for n in t.accepts if n in spec.fields}
    key = "web:" + form["key"][:60] + ":" + trigger[:40] if form.get("key") else None
    try:
        values = _values(request, spec, sorted(accepts), form)
        actor = p.act_as(form.get("role") or None)
        prov = _provenance(request, p, actor)
        if form.get("withdraw") == "1":
            result = d.withdraw(instance, trigger, actor, key, provenance=prov)
        else:
            result = d.fire(instance, trigger, actor, values, key, provenance=prov)
    except (ValueError, UserError) as exc:  # a store fault is not the form's: 503 (server.app)
        return _instance_page(request, p, instance, 422, error=i18n.reason(str(exc), _))
    if result.applied and " -> " in result.text:
        step = next((t.title for t in spec.transitions if t.trigger == trigger and t.title), trigger)
        return _instance_page(request, p, instance, 200, notice=_("Done: %(step)s.", step=step))
    if result.applied or result.pending:
        return _instance_page(request, p, instance, 200, notice=i18n.reason(result.text, _) or _("Done."))
    return _instance_page(request, p, instance, 409, error=i18n.reason(result.text, _))


# ---------------------------------------------------------------- overview, calendar, reports, audit


@router.get("/overview")
def overview(request: Request) -> Response:
    p = viewer(request)
    if p is None:
        return to_login(request)
    return render(request, "overview.html", data=_deployment(request).overview())


@router.get("/calendar")
def calendar(request: Request, days: int = 90) -> Response:
    p = viewer(request)
    if p is None:
        return to_login(request)
    from engine.server import api

    days = max(1, min(days, 3660))
    return render(request, "calendar.html", items=api.upcoming(request, days, p, limit=500, page=1), days=days)


def _current_period(d: Deployment) -> str:
    today = clock.now().astimezone(d.policy.tz)
    return f"{today.year}H{1 if today.month <= 6 else 2}"


@router.get("/reports")
def reports(request: Request, period: str | None = None) -> Response:
    p = viewer(request)
    if p is None:
        return to_login(request)
    d, _ = _deployment(request), _gettext(request)
    period = (period or _current_period(d)).strip()
    try:
        data = d.report(period)
    except ValueError as exc:  # PeriodError
        return render(request, "report.html", status=422, data=None, period=period, error=_period_problem(_, period, exc))
    return render(request, "report.html", data=data, period=data["period"], error=None)


def _period_problem(_, period: str, exc: Exception) -> str:
    from engine.views.report import PeriodRefused

    if isinstance(exc, PeriodRefused):
        return _("“%(period)s” cannot be reported: it has not begun yet, or it ended before the agreement took effect.",
                 period=period)
    return _("“%(period)s” is not a period: write a quarter, a half year or a year, e.g. 2027Q1, 2027H1, 2027.", period=period)


@router.get("/reports/{period}.{fmt}")
def report_download(period: str, fmt: str, request: Request) -> Response:
    p = viewer(request)
    if p is None:
        return to_login(request)
    from engine.views import report

    _ = _gettext(request)
    writers = {"md": (report.markdown, "text/markdown; charset=utf-8"), "html": (report.render_html, "text/html; charset=utf-8"),
               "json": (lambda data: json.dumps(data, ensure_ascii=False, indent=2), "application/json; charset=utf-8"),
               "pdf": (report.pdf, "application/pdf"),
               "docx": (report.docx, "application/vnd.openxmlformats-officedocument.wordprocessingml.document")}
    if fmt not in writers:
        return message_page(request, 404, _("Not found"), _("Reports download as pdf, docx, html, md or json."))
    try:
        data = _deployment(request).report(period)
    except ValueError as exc:  # PeriodError
        return message_page(request, 422, _("Not found"), _period_problem(_, period, exc))
    write, media = writers[fmt]
    try:
        body = write(data)
    except CoopflowError as exc:  # the PDF needs Pango on the server
        return message_page(request, 503, _("Not available"), str(exc))
    body = body.encode("utf-8") if isinstance(body, str) else body
    return Response(body, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="coopflow-report-{data["period"]}.{fmt}"'})


@router.get("/audit")
def audit(request: Request) -> Response:
    p = viewer(request)
    if p is None:
        return to_login(request)
    _ = _gettext(request)
    if not p.is_admin:
        return message_page(request, 403, _("Administrators only"), _("Only administrators see the audit status."))
    return render(request, "audit.html", report=_deployment(request).audit())
