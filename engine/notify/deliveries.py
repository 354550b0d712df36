"""Durable deliveries: one row per recipient and channel, created once from a notify outbox row,
sent after commit by the daemon, retried with exponential backoff and jitter, then dead-lettered.

States: pending -> sending (claimed; `next_at` is the claim's expiry) -> sent | pending (retry)
| dead. A row left `sending` by a crash is due again when its claim expires, and is resent with
the same Message-ID / X-Coopflow-Delivery id so the receiver can recognise the duplicate.
"""

from __future__ import annotations

import random
import threading
from datetime import timedelta
from typing import Any

from loguru import logger

from engine import clock
from engine.notify import channels, messages, templates
from engine.store import Tx, inbox
from engine.store import deliveries as rows_of
from engine.store.database import SqlStore
from engine.store.deliveries import Delivery
from engine.store.outbox import Action
from engine.store.statuses import Channel, DeliveryStatus, MessageKind

PENDING, SENDING, SENT, DEAD = DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.SENT, DeliveryStatus.DEAD
STATUSES = tuple(s.value for s in DeliveryStatus)  # plain strings (click.Choice shows an enum by its names)
MAX_DELAY = 6 * 3600.0


# --------------------------------------------------------------------------- creating


def create_from_outbox(conn: Tx, policy, action: Action) -> int:
    """Write the deliveries of a notify outbox row (idempotent); returns how many were new."""
    payload, source = action.payload, action.payload["source"]
    if policy.config.notifications is None:
        return 0
    kind = _kind(policy, source)
    contexts: dict[str, dict] = {}

    def context(recipient: str) -> dict[str, Any]:
        if not contexts:  # the shared part once; the recipient per message
            contexts[""] = messages.for_notify(conn, policy, source, payload["message"], source.get("actor", "system"))
        return {**contexts[""], "recipient": messages.recipient(policy.config, recipient)}

    extra = {"workflow": source["workflow"], "state": source["state"], "trigger": source["trigger"], "message": payload["message"]}
    return write(conn, policy, inbox.engine_key("outbox", action.id), action.instance, kind, payload["recipients"], context, extra)


def write(conn: Tx, policy, key: str, instance: str | None, kind: MessageKind, recipients: list[str], context,
          webhook_fields: dict[str, Any] | None = None) -> int:
    """Write one delivery per recipient with an address and one webhook per party that has one
    (keys `{key}:{recipient}:{channel}`, so writing twice writes nothing); returns how many were new.

    `context(recipient)` gives the template context; `webhook_fields` (None: no webhooks) are added
    to each webhook's JSON. Recipients reached by neither are logged as unreachable.
    """
    notifications = policy.config.notifications
    path = templates.folder(policy.root, notifications)
    created, unreachable = 0, []
    parties: dict[str, list[str]] = {}
    for recipient in recipients:
        role_actor, _, person = recipient.partition(":")
        party = role_actor.partition(".")[0]
        parties.setdefault(party, []).append(recipient)
        address = notifications.contacts.get(person) if person else None
        address = address or notifications.contacts.get(role_actor)
        if address is None:
            if webhook_fields is None or party not in notifications.webhooks:
                unreachable.append(recipient)
            continue
        subject, text = templates.render(path, kind, context(recipient))
        created += _insert(conn, key, instance, kind, channels.EMAIL, recipient, address, {"subject": subject, "text": text})
    for party, names in parties.items():
        url = notifications.webhooks.get(party)
        if url is None or webhook_fields is None:
            continue
        shown = context(party)
        subject, text = templates.render(path, kind, shown)
        message = {"kind": kind, "subject": subject, "text": text, "link": shown["link"], "party": party,
                   "recipients": names, "instance": instance, **webhook_fields}
        created += _insert(conn, key, instance, kind, channels.WEBHOOK, party, url, message)
    if unreachable:
        logger.bind(instance=instance, outcome="unreachable").warning(
            "{}: no e-mail address or webhook for {}", kind, ", ".join(unreachable))
    return created


def _insert(conn: Tx, key: str, instance: str | None, kind: MessageKind, channel: Channel, recipient: str,
            address: str, message: dict[str, Any]) -> int:
    return int(rows_of.insert(conn, f"{key}:{recipient}:{channel}", instance, kind, channel, recipient, address, message,
                              clock.now()))


def _kind(policy, source) -> MessageKind:
    """`overdue` when the transition is a state's deadline firing, else `notify`."""
    spec = policy.workflows.get(source["workflow"])
    state = spec.states.get(source.get("from") or "") if spec else None
    if state is not None and state.deadline is not None and state.deadline.fire == source["trigger"]:
        return MessageKind.OVERDUE
    return MessageKind.NOTIFY


# --------------------------------------------------------------------------- sending


def claim_due(store: SqlStore, policy, limit: int = 20) -> list[Delivery]:
    """Mark up to `limit` due deliveries `sending` (one attempt more) and return them."""
    notifications = policy.config.notifications
    timeout = notifications.timeout if notifications else 10.0
    now = clock.now()
    with store.transaction() as conn:
        return rows_of.claim_due(conn, now, now + timedelta(seconds=3 * timeout + 60), limit)


def send(store: SqlStore, policy, rows: list[Delivery]) -> dict[str, int]:
    """Send claimed deliveries one by one; each outcome is committed on its own."""
    counts: dict[str, int] = {SENT: 0, PENDING: 0, DEAD: 0}
    notifications = policy.config.notifications
    for row in rows:
        log = logger.bind(instance=row.instance, delivery=row.id, channel=row.channel, recipient=row.recipient)
        try:
            if notifications is None:
                raise channels.Permanent("notifications are no longer configured")
            if row.channel == channels.EMAIL:
                if notifications.smtp is None:
                    raise channels.Permanent("no smtp server configured under notifications")
                channels.send_email(notifications.smtp, policy.root, notifications.timeout, row)
            else:
                channels.send_webhook(notifications.webhook, policy.root, notifications.timeout, row)
        except Exception as exc:
            attempts = notifications.attempts if notifications else 1
            dead = isinstance(exc, channels.Permanent) or row.attempts >= attempts
            error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, channels.Permanent) else str(exc)
            if dead:
                _mark(store, row.id, DEAD, last_error=error)
                log.bind(outcome="dead").error("delivery #{} ({} to {}) is a dead letter after {} attempt(s): {}",
                                               row.id, row.channel, row.address, row.attempts, error)
                counts[DEAD] += 1
            else:
                delay = backoff(notifications.backoff, row.attempts)
                _mark(store, row.id, PENDING, last_error=error, next_at=clock.now() + timedelta(seconds=delay))
                log.bind(outcome="retry").warning("delivery #{} ({} to {}) failed (attempt {} of {}), retrying in {:.0f} s: {}",
                                                  row.id, row.channel, row.address, row.attempts, attempts, delay, error)
                counts[PENDING] += 1
        else:
            _mark(store, row.id, SENT, sent_at=clock.now())
            log.bind(outcome="sent").info("delivery #{} sent: {} to {} ({})", row.id, row.channel, row.address,
                                          row.message["subject"])
            counts[SENT] += 1
    return counts


def release_claims(store: SqlStore) -> int:
    """Make deliveries left `sending` (by a leader that crashed or lost its lease) due now: the
    daemon that takes the lease sends them again at once, with the same Message-ID."""
    with store.transaction() as conn:
        count = rows_of.release_claims(conn, clock.now())
    if count:
        logger.bind(outcome="resend").warning("{} delivery(ies) left sending by the previous leader will be sent again", count)
    return count


def deliver_due(store: SqlStore, policy, limit: int = 20) -> int:
    """Claim and send what is due; returns how many were attempted."""
    rows = claim_due(store, policy, limit)
    if rows:
        send(store, policy, rows)
    return len(rows)


def backoff(base: float, attempts: int) -> float:
    """Exponential backoff with jitter: base·2^(n-1), capped at 6 h, times a random 0.5–1.0."""
    return min(base * 2 ** (attempts - 1), MAX_DELAY) * random.uniform(0.5, 1.0)


def _mark(store: SqlStore, delivery_id: int, status: DeliveryStatus, **values) -> None:
    with store.transaction() as conn:
        rows_of.mark(conn, delivery_id, status, **values)


# --------------------------------------------------------------------------- operators


def listing(store: SqlStore, status: str | None = None) -> list[Delivery]:
    with store.reading() as conn:
        return rows_of.listing(conn, status)


def retry(store: SqlStore, delivery_id: int | None = None) -> int:
    """Queue dead letters again (one by id, or all when None); returns how many."""
    with store.transaction() as conn:
        return rows_of.requeue_dead(conn, clock.now(), delivery_id)


class Sender(threading.Thread):
    """The daemon's delivery worker: sends while this daemon holds the leader lease, so a slow or
    refusing server never holds up the inbox."""

    IDLE = 1.0

    def __init__(self, daemon):
        super().__init__(name="coopflow-deliveries", daemon=True)
        self.owner = daemon

    def run(self) -> None:
        owner = self.owner
        while not owner.stop.is_set():
            busy = 0
            try:
                if owner.lease is not None and owner.lease.held and owner.runtime.policy.config.notifications:
                    busy = deliver_due(owner.runtime.store, owner.runtime.policy)
            except Exception as exc:  # store unavailable: the main loop reports it; try again later
                logger.warning("deliveries: {}", str(exc).splitlines()[0][:200])
            if not busy:
                owner.stop.wait(self.IDLE)
