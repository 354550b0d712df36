"""The console's home page, "Việc của tôi" (my tasks): what I owe now, and what waits on another party.

Both lists are read one page at a time in SQL (engine.store.worklist), soonest deadline first:
"mine" holds the open files I may see on which one of my roles is named for a step from their
state (other than taking a request back), "waiting" the other open files I may see.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from engine import clock
from engine.auth.people import Principal
from engine.server.web.rendering import SignedIn, deployment, render
from engine.service import Deployment
from engine.store import worklist
from engine.store.reads import BadCursor

router = APIRouter(include_in_schema=False)
PAGE = 50  # files per list on one page


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
def my_tasks(request: Request, p: SignedIn, mine: str | None = None, waiting: str | None = None) -> Response:
    return render(request, "tasks.html", **_tasks(deployment(request), p, mine, waiting))


def _tasks(d: Deployment, p: Principal, mine_after: str | None, waiting_after: str | None) -> dict[str, Any]:
    """One page of what I owe now and one of what waits on others, soonest deadline first."""
    mine, mine_next = d.worklist(p, True, PAGE, _cursor_or_none(mine_after))
    waiting, waiting_next = d.worklist(p, False, PAGE, _cursor_or_none(waiting_after))
    return {"mine": [_summary(d, r) for r in mine], "mine_next": mine_next, "mine_after": mine_after,
            "waiting": [_summary(d, r) for r in waiting], "waiting_next": waiting_next, "waiting_after": waiting_after}


def _cursor_or_none(text: str | None) -> str | None:
    """A cursor this page handed out, checked; a bad one starts from the first page."""
    if not text:
        return None
    try:
        worklist.check_cursor(text)
    except BadCursor:
        return None
    return text
