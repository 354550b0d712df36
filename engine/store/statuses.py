"""The fixed words the store keeps in its status, kind and outcome columns, as `StrEnum`s.

A member IS its string (`InboxStatus.PENDING == "pending"`), so rows written before these
enums existed, and code not yet moved to them, read and compare the same. The values are
stored data: renaming one needs a migration (engine/store/migrations), adding one does not.
"""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """inbox.kind and history.kind: what an event asks for."""

    START = "start"
    FIRE = "fire"
    WITHDRAW = "withdraw"


class InboxStatus(StrEnum):
    """inbox.status: where an event stands."""

    PENDING = "pending"
    APPLIED = "applied"
    REFUSED = "refused"
    CANCELLED = "cancelled"


class Outcome(StrEnum):
    """history.outcome: what an applied-for event did (or that an operator cancelled it first)."""

    APPLIED = "applied"
    REFUSED = "refused"
    CANCELLED = "cancelled"


class TimerStatus(StrEnum):
    """timers.status: a deadline armed on entering a state, disarmed on leaving it, or fired."""

    ARMED = "armed"
    DISARMED = "disarmed"
    FIRED = "fired"


class ReminderStatus(StrEnum):
    """reminders.status: armed and disarmed with its deadline's timer, then sent (or failed: a broken template)."""

    ARMED = "armed"
    DISARMED = "disarmed"
    SENT = "sent"
    FAILED = "failed"


class ActionKind(StrEnum):
    """outbox.kind: what an after-commit action does."""

    EMIT = "emit"
    START = "start"
    NOTIFY = "notify"


class OutboxStatus(StrEnum):
    """outbox.status: an after-commit action waiting, done, or given up after its attempts."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class DeliveryStatus(StrEnum):
    """deliveries.status: one message to one recipient on one channel."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEAD = "dead"


class Channel(StrEnum):
    """deliveries.channel: how a message travels."""

    EMAIL = "email"
    WEBHOOK = "webhook"


class MessageKind(StrEnum):
    """deliveries.kind: which template a message was written from (docs/notifications.md)."""

    NOTIFY = "notify"
    OVERDUE = "overdue"
    REMIND = "remind"
    DIGEST = "digest"


class LoginOutcome(StrEnum):
    """login_attempts.outcome."""

    OK = "ok"
    FAILED = "failed"
    LOCKED = "locked"
    DISABLED = "disabled"
    UNLOCKED = "unlocked"


class ClockMark(StrEnum):
    """coopflow_meta 'clock': which clock wrote the store's history (drills refuse a real store)."""

    REAL = "real"
    DRILL = "drill"
