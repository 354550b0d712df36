"""The pages that look across files: the overview, the calendar, the review reports (shown and
downloaded) and, for administrators, the audit status.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response

from engine import clock
from engine.exceptions import CoopflowError
from engine.server.web.rendering import Gettext, SignedIn, deployment, gettext_of, message_page, render
from engine.service import Deployment

router = APIRouter(include_in_schema=False)
CALENDAR_LIMIT = 500  # items on the calendar page


@router.get("/overview")
def overview(request: Request, p: SignedIn) -> Response:
    return render(request, "overview.html", data=deployment(request).overview())


@router.get("/calendar")
def calendar(request: Request, p: SignedIn, days: int = 90) -> Response:
    d = deployment(request)
    days = max(1, min(days, 3660))
    items = d.upcoming_for(p, days, CALENDAR_LIMIT)["items"]  # deadlines and meetings of the files I may see
    return render(request, "calendar.html", items=items, days=days)


def _current_period(d: Deployment) -> str:
    today = clock.now().astimezone(d.policy.tz)
    return f"{today.year}H{1 if today.month <= 6 else 2}"


@router.get("/reports")
def reports(request: Request, p: SignedIn, period: str | None = None) -> Response:
    d, _ = deployment(request), gettext_of(request)
    period = (period or _current_period(d)).strip()
    try:
        data = d.report(period)
    except ValueError as exc:  # PeriodError
        return render(request, "report.html", status=422, data=None, period=period, error=_period_problem(_, period, exc))
    return render(request, "report.html", data=data, period=data["period"], error=None)


def _period_problem(_: Gettext, period: str, exc: Exception) -> str:
    from engine.views.report import PeriodRefused

    if isinstance(exc, PeriodRefused):
        return _("“%(period)s” cannot be reported: it has not begun yet, or it ended before the agreement took effect.",
                 period=period)
    return _("“%(period)s” is not a period: write a quarter, a half year or a year, e.g. 2027Q1, 2027H1, 2027.", period=period)


@router.get("/reports/{period}.{fmt}")
def report_download(period: str, fmt: str, request: Request, p: SignedIn) -> Response:
    from engine.views import report

    _ = gettext_of(request)
    writers = {"md": (report.markdown, "text/markdown; charset=utf-8"), "html": (report.render_html, "text/html; charset=utf-8"),
               "json": (lambda data: json.dumps(data, ensure_ascii=False, indent=2), "application/json; charset=utf-8"),
               "pdf": (report.pdf, "application/pdf"),
               "docx": (report.docx, "application/vnd.openxmlformats-officedocument.wordprocessingml.document")}
    if fmt not in writers:
        return message_page(request, 404, _("Not found"), _("Reports download as pdf, docx, html, md or json."))
    try:
        data = deployment(request).report(period)
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
def audit(request: Request, p: SignedIn) -> Response:
    _ = gettext_of(request)
    if not p.is_admin:
        return message_page(request, 403, _("Administrators only"), _("Only administrators see the audit status."))
    return render(request, "audit.html", report=deployment(request).audit())
