"""What the API's resources share: the deployment behind a request, strict request bodies,
deadlines as they are shown, and the bounds of paging."""

from __future__ import annotations

from datetime import datetime

from fastapi import Request
from pydantic import BaseModel, ConfigDict

from engine.service import Deployment

MAX_PAGE = 1_000_000  # a page number beyond any store (a larger one would overflow the SQL OFFSET)


def deployment(request: Request) -> Deployment:
    return request.app.state.deployment


class Strict(BaseModel):
    """A request body: unknown keys are refused (422), not ignored."""

    model_config = ConfigDict(extra="forbid")


class Deadline(BaseModel):
    due_at: datetime
    fires: str
