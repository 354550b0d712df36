"""What became of an inbox event (`Outcome`), and how a refused event is recorded.

A refusal keeps nothing of the event but its inbox outcome and one history row saying why
(and, for a deadline's event, the timer marked fired: its one chance was taken).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from engine.exceptions import UserError
from engine.execution import intake
from engine.logs import event_logger
from engine.rules.reasons import Reason
from engine.scheduling import timers
from engine.store import inbox
from engine.store.batch import Batch, EventWrites, store_failure


class Refusal(UserError):
    """An event that must change nothing; the message is the reason shown to the user, `code` its stable code."""

    def __init__(self, message: str, code: str = Reason.REFUSED):
        super().__init__(message)
        self.code = code


@dataclass
class Outcome:
    """What became of one inbox event."""

    status: str
    text: str
    instance: str
    kind: str = ""
    workflow: str | None = None
    trigger: str | None = None
    actor: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    armed: list[timers.Timer] = field(default_factory=list)

    @property
    def applied(self) -> bool:
        return self.status == inbox.APPLIED


def refuse(batch: Batch, row, instance_row, reason: str, now, code: str = Reason.REFUSED) -> Outcome:
    """Record the refusal; if even that fails (text a store or the hash rejects, a bug), record
    it again with everything reduced to escaped text, and as a last resort mark the row alone."""
    for safe in (False, True):
        writes = EventWrites()
        try:
            outcome = _record_refusal(writes, row, instance_row, reason, now, safe, code)
            batch.accept(writes)
        except Exception as exc:
            if store_failure(exc):
                raise
            logger.opt(exception=exc).error("could not record the refusal of inbox #{}{}", row["id"],
                                            " even as escaped text" if safe else "; recording it as escaped text")
            continue
        return outcome
    text = intake.safe_text(f"refused: {reason}")
    writes = EventWrites()
    writes.mark(row["id"], inbox.REFUSED, text + " (not recorded in history)", now)
    batch.accept(writes)
    return Outcome(inbox.REFUSED, intake.safe_text(reason), intake.safe_text(row["instance"]), kind=row["kind"])

def _record_refusal(writes: EventWrites, row, instance_row, reason: str, now, safe: bool, code: str = Reason.REFUSED) -> Outcome:
    def text(v: str, limit: int | None = None) -> str:
        return intake.safe_text(v, limit) if safe else v

    def clean(v: str | None, limit: int | None = None) -> str | None:
        return v if v is None else text(v, limit)

    workflow = clean(instance_row["workflow"] if instance_row else row["workflow"], 120)
    state = clean(instance_row["state"] if instance_row else None, 120)
    instance, trigger, actor = text(row["instance"], 120), clean(row["trigger"], 120), text(row["actor"], 200)
    reason = text(reason)
    data = {"set": row["payload"].get("set", {}), "code": str(code), **provenance(row)}
    writes.history(instance=instance, inbox_id=row["id"], at=now, kind=row["kind"], workflow=workflow,
                   trigger=trigger, from_state=state, to_state=state, actor=actor, outcome=inbox.REFUSED,
                   reason=reason, data=intake.safe_data(data) if safe else data)
    if row["payload"].get("timer"):
        writes.fired(row["payload"]["timer"])  # its one chance was taken; the refusal says why
    writes.mark(row["id"], inbox.REFUSED, f"refused: {reason}", now)
    event_logger(instance=instance, workflow=workflow, trigger=trigger, actor=actor,
                 outcome=inbox.REFUSED, reason=reason, **{"from": state}).warning("refused {}: {}", row["kind"], reason)
    return Outcome(inbox.REFUSED, reason, instance, kind=row["kind"], workflow=workflow, trigger=trigger,
                   actor=actor, from_state=state, to_state=state, provenance=provenance(row))


def provenance(row) -> dict[str, Any]:
    """Where an event came from (a rule, a schedule, a timer, an outbox row), for history."""
    return {k: v for k, v in row["payload"].items() if k != "set"}
