"""The outbox: actions that run after their transition commits — emit, start, notify.

Delivery is at least once and the effect exactly once: starts and rule firings become inbox rows
whose idempotency key is derived from the outbox row, so a retry after a crash finds the row it
already wrote. A failing action is retried with exponential backoff and is never dropped
silently: after MAX_ATTEMPTS it is marked `failed` and logged as an error.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from loguru import logger
from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from engine import clock
from engine.exceptions import ExpressionError
from engine.notify import deliveries
from engine.policy.loader import Policy, is_expression
from engine.store import inbox
from engine.store.database import SqlStore, outbox

MAX_ATTEMPTS = 10
PENDING, DONE, FAILED = "pending", "done", "failed"


def dispatch_due(store: SqlStore, policy: Policy, limit: int = 100) -> int:
    """Run up to `limit` due actions in one transaction, each in its own savepoint; returns how many ran."""
    done = 0
    query = _DUE_PG if store.dialect == "postgresql" else _DUE
    with store.transaction() as conn:
        for row in conn.execute(query, {"now": clock.now(), "limit": limit}).mappings().all():
            try:
                with conn.begin_nested():
                    _run(conn, policy, row)
            except Exception as exc:  # an action failed: retry later, never lose it
                _retry(conn, row, exc)
            else:
                conn.execute(_MARK_DONE, {"row_id": row["id"], "status": DONE, "done_at": clock.now(), "attempts": row["attempts"] + 1})
            done += 1
    return done


_DUE = (select(outbox).where(outbox.c.status == PENDING, outbox.c.next_at <= bindparam("now"))
        .order_by(outbox.c.id).limit(bindparam("limit")))
_DUE_PG = _DUE.with_for_update(skip_locked=True)
_MARK_DONE = update(outbox).where(outbox.c.id == bindparam("row_id"))


def _run(conn: Connection, policy: Policy, row) -> None:
    payload, source = row["payload"], row["payload"]["source"]
    key = inbox.engine_key("outbox", row["id"])
    if row["kind"] == "start":
        inbox.submit(conn, inbox.START, instance=inbox.new_instance_id(payload["workflow"]), workflow=payload["workflow"],
                     actor="system", values=payload["values"], key=key, extra={"cause": source["instance"], **_nominal(source)})
    elif row["kind"] == "notify":
        logger.bind(instance=source["instance"], workflow=source["workflow"], outcome="notified",
                    recipients=payload["recipients"]).info("notify {}: {}", ", ".join(payload["recipients"]), payload["message"])
        deliveries.create_from_outbox(conn, policy, row)  # e-mails and webhooks, sent after commit (engine.notify)
    elif row["kind"] == "emit":
        event = {**source, "name": payload["name"], "data": payload["data"]}
        logger.bind(instance=source["instance"], workflow=source["workflow"], event=payload["name"]).info("event {}", payload["name"])
        for rule in policy.event_rules:
            if rule.on == payload["name"] and _holds(policy, rule.when, event):
                _fire_rule(conn, policy, rule, event, inbox.engine_key("outbox", row["id"], rule.id))
    else:
        raise ValueError(f"unknown action kind {row['kind']!r}")


def _nominal(source: dict[str, Any]) -> dict[str, Any]:
    """The causing event's nominal time, so deadlines of what it starts or fires count from it
    (engine.scheduling.timers.armed_from), however late the event itself was applied."""
    return {"nominal_at": source["nominal_at"]} if source.get("nominal_at") else {}


def _holds(policy: Policy, when: str | None, event: dict[str, Any]) -> bool:
    return when is None or bool(policy.expression(when).evaluate({"event": event}))


def _fire_rule(conn: Connection, policy: Policy, rule, event: dict[str, Any], key: str) -> None:
    context = {"event": event}
    extra = {"rule": rule.id, "cause": event["instance"], **_nominal(event)}
    if rule.start:
        values = {k: _value(policy, v, context) for k, v in rule.start.with_.items()}
        sub = inbox.submit(conn, inbox.START, instance=inbox.new_instance_id(rule.start.workflow), workflow=rule.start.workflow,
                           actor="system", values=values, key=key, extra=extra)
    else:
        target = policy.expression(rule.fire.instance.lstrip("=").strip()).evaluate(context)
        if not target:
            raise ExpressionError(f"rule '{rule.id}': instance expression {rule.fire.instance!r} gave nothing")
        sub = inbox.submit(conn, inbox.FIRE, instance=str(target), trigger=rule.fire.trigger, actor="system", key=key, extra=extra)
    logger.bind(instance=sub.instance, rule=rule.id, event=event["name"]).info("rule {} fired on {}", rule.id, event["name"])


def _value(policy: Policy, value: Any, context: dict) -> Any:
    return policy.expression(value[1:].strip()).evaluate(context) if is_expression(value) else value


def _retry(conn: Connection, row, exc: Exception) -> None:
    attempts = row["attempts"] + 1
    failed = attempts >= MAX_ATTEMPTS
    delay = timedelta(seconds=min(2 ** attempts, 3600))
    conn.execute(update(outbox).where(outbox.c.id == row["id"]).values(
        attempts=attempts, last_error=str(exc), status=FAILED if failed else PENDING, next_at=clock.now() + delay))
    log = logger.bind(instance=row["instance"], outcome="failed" if failed else "retry")
    if failed:
        log.error("action {} #{} failed for good after {} attempts: {}", row["kind"], row["id"], attempts, exc)
    else:
        log.warning("action {} #{} failed (attempt {}), retrying in {}: {}", row["kind"], row["id"], attempts, delay, exc)
