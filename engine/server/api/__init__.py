"""The JSON API under /api/v1: sign-in, the caller, workflows, instances, events, history, reads.

The actor of every write is the authenticated person acting in a role config.yaml grants them
(`role` in the body chooses among their grants); bodies carry no actor. Acting as `system` is
for administrators only. Reads show only what the caller's parties take part in; anything else
answers 404, exactly like an unknown id. docs/api.md is the guide; docs/openapi.json the contract.

One module per resource, each with its own router, joined here in the order the document lists them:

* `caller`    — sign-in (console session, `coopflow login`'s token), /me, /me/token, /me/tasks;
* `workflows` — the clauses of the agreement;
* `instances` — instances, their events (start, fire, consent, withdraw) and history;
* `reads`     — upcoming, the overview, the review report's figures, the audit;
* `shared`    — what they share: the deployment behind a request, strict bodies, deadlines, paging bounds.
"""

from __future__ import annotations

from fastapi import APIRouter

from engine.server.api import caller, instances, reads, workflows
from engine.server.api.reads import upcoming

router = APIRouter()
for _module in (caller, workflows, instances, reads):
    router.include_router(_module.router)

__all__ = ["router", "upcoming"]
