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

from engine import clock
from engine.exceptions import ExpressionError
from engine.notify import deliveries
from engine.policy.loader import Policy
from engine.policy.spec import is_expression
from engine.store import Tx, inbox
from engine.store import outbox as rows_of
from engine.store.database import SqlStore
from engine.store.outbox import Action
from engine.store.statuses import ActionKind, OutboxStatus

MAX_ATTEMPTS = 10
PENDING, DONE, FAILED = OutboxStatus.PENDING, OutboxStatus.DONE, OutboxStatus.FAILED


def dispatch_due(store: SqlStore, policy: Policy, limit: int = 100) -> int:
    """Run up to `limit` due actions in one transaction, each in its own savepoint; returns how many ran."""
    done = 0
    with store.transaction() as conn:
        for action in rows_of.due(conn, clock.now(), limit):
            try:
                with conn.begin_nested():
                    _run(conn, policy, action)
            except Exception as exc:  # an action failed: retry later, never lose it
                _retry(conn, action, exc)
            else:
                rows_of.mark_done(conn, action, clock.now())
            done += 1
    return done


def _run(conn: Tx, policy: Policy, action: Action) -> None:
    payload, source = action.payload, action.payload["source"]
    key = inbox.engine_key("outbox", action.id)
    if action.kind == ActionKind.START:
        inbox.submit(conn, inbox.START, instance=inbox.new_instance_id(payload["workflow"]), workflow=payload["workflow"],
                     actor="system", values=payload["values"], key=key, extra={"cause": source["instance"], **_nominal(source)})
    elif action.kind == ActionKind.NOTIFY:
        logger.bind(instance=source["instance"], workflow=source["workflow"], outcome="notified",
                    recipients=payload["recipients"]).info("notify {}: {}", ", ".join(payload["recipients"]), payload["message"])
        deliveries.create_from_outbox(conn, policy, action)  # e-mails and webhooks, sent after commit (engine.notify)
    elif action.kind == ActionKind.EMIT:
        event = {**source, "name": payload["name"], "data": payload["data"]}
        logger.bind(instance=source["instance"], workflow=source["workflow"], event=payload["name"]).info("event {}", payload["name"])
        for rule in policy.event_rules:
            if rule.on == payload["name"] and _holds(policy, rule.when, event):
                _fire_rule(conn, policy, rule, event, inbox.engine_key("outbox", action.id, rule.id))
    else:
        raise ValueError(f"unknown action kind {action.kind!r}")


def _nominal(source: dict[str, Any]) -> dict[str, Any]:
    """The causing event's nominal time, so deadlines of what it starts or fires count from it
    (engine.scheduling.timers.armed_from), however late the event itself was applied."""
    return {"nominal_at": source["nominal_at"]} if source.get("nominal_at") else {}


def _holds(policy: Policy, when: str | None, event: dict[str, Any]) -> bool:
    return when is None or bool(policy.expression(when).evaluate({"event": event}))


def _fire_rule(conn: Tx, policy: Policy, rule, event: dict[str, Any], key: str) -> None:
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


def _retry(conn: Tx, action: Action, exc: Exception) -> None:
    attempts = action.attempts + 1
    failed = attempts >= MAX_ATTEMPTS
    delay = timedelta(seconds=min(2 ** attempts, 3600))
    rows_of.mark_retry(conn, action, str(exc), clock.now() + delay, failed)
    log = logger.bind(instance=action.instance, outcome="failed" if failed else "retry")
    if failed:
        log.error("action {} #{} failed for good after {} attempts: {}", action.kind, action.id, attempts, exc)
    else:
        log.warning("action {} #{} failed (attempt {}), retrying in {}: {}", action.kind, action.id, attempts, delay, exc)
