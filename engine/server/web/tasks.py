"""The console's home page, "Việc của tôi" (my tasks): what I owe now, and what waits on another party."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from engine import clock
from engine.auth.people import Principal
from engine.server.web.rendering import deployment, render, to_login, viewer
from engine.service import Deployment

router = APIRouter(include_in_schema=False)
EXITS = {"withdraw", "cancel"}


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
    return render(request, "tasks.html", **_tasks(deployment(request), p))


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
