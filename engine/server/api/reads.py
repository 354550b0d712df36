"""What people read across instances: upcoming, the overview, the review report's figures, the audit."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel

from engine.auth.people import Principal
from engine.server import auth
from engine.server.api.shared import MAX_PAGE, deployment

router = APIRouter()
TOTAL_HEADER = "X-Total-Count"
UPCOMING_ANSWER: dict[int | str, dict[str, Any]] = {200: {"description": "one page of what falls due, by time",
                         "headers": {TOTAL_HEADER: {"description": "how many items fall due in all (every page)",
                                                    "schema": {"type": "integer"}}}}}


@router.get("/upcoming", tags=["reads"], response_model=list[dict[str, Any]], responses=UPCOMING_ANSWER)
def upcoming(request: Request, days: int = Query(30, ge=0, le=3660),
             p: Principal = Depends(auth.current_principal), limit: int = Query(200, ge=1, le=1000),
             page: int = Query(1, ge=1, le=MAX_PAGE), *, response: Response) -> list[dict]:
    """Schedule occurrences, deadlines and meetings due within `days` days, by time, `limit` per page
    (deadlines and meetings of visible instances only); `X-Total-Count` says how many in all."""
    data = deployment(request).upcoming_for(p, days, limit, (page - 1) * limit)
    response.headers[TOTAL_HEADER] = str(data["total"])
    return data["items"]


@router.get("/overview", tags=["reads"], response_model=dict[str, Any])
def overview(request: Request, _p: Principal = Depends(auth.current_principal), limit: int = Query(20, ge=1, le=1000),
             page: int = Query(1, ge=1, le=MAX_PAGE)) -> dict:
    """Per clause and state (open, overdue), one page of the overdue list and of each party's next steps,
    as `coopflow status` shows it (`page`: which page, how many pages)."""
    return deployment(request).overview(limit, page)


@router.get("/reports/{period}", tags=["reads"], response_model=dict[str, Any],
            responses={422: {"description": "not a period such as 2027H1, or one not begun or over before the agreement"}})
def report(period: str, request: Request, _p: Principal = Depends(auth.current_principal)) -> dict:
    """The figures of the review report for a quarter, half year or year (2027Q4, 2027H1, 2027), as `coopflow report`."""
    from engine.views.report import PeriodError

    d = deployment(request)
    try:
        return d.report(period)  # refused like the CLI: not a period, not begun yet, or over before the agreement
    except PeriodError as exc:
        raise HTTPException(422, str(exc)) from None


class AuditOut(BaseModel):
    ok: bool
    problems: list[str]
    rows: int
    anchors: int


@router.get("/audit", response_model=AuditOut, tags=["reads"], responses={403: {"description": "not an administrator"}})
def audit(request: Request, _p: Principal = Depends(auth.require_admin)) -> dict:
    """`coopflow audit verify`: chain, anchors and replay (administrators only)."""
    r = deployment(request).audit()
    return {"ok": r.ok, "problems": r.problems, "rows": r.rows, "anchors": r.anchors}
