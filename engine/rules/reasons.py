"""Why a step may not be taken: stable reason codes, and the verdict on one candidate transition.

The code is for programs (the HTTP API puts it in its problem+json as `code`); the message is
for people and says the same thing in words, naming the roles, fields or parties concerned.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from engine.policy.spec import TransitionSpec


class Reason(StrEnum):
    """Why an event is refused (or, for `NEEDS_APPROVAL`, why it only records a consent)."""

    UNKNOWN_TRIGGER = "unknown_trigger"          # the workflow has no such trigger
    WRONG_STATE = "wrong_state"                  # the trigger exists, but not from the current state
    INSTANCE_CLOSED = "instance_closed"          # the instance is in a final state
    NOT_YOUR_ROLE = "not_your_role"              # the actor fits none of the transition's `by` patterns
    GUARD_FALSE = "guard_false"                  # the `when` guard is false
    GUARD_ERROR = "guard_error"                  # the `when` guard could not be evaluated
    FIELD_NOT_ACCEPTED = "field_not_accepted"    # a value was sent for a field the transition does not accept
    MISSING_FIELD = "missing_field"              # a field the transition (or the start) requires is empty
    INVALID_VALUE = "invalid_value"              # a value sent is not of its field's type
    NOT_A_CONSENTING_PARTY = "not_a_consenting_party"  # the actor's party is not among those whose consent counts
    NEEDS_APPROVAL = "needs_approval"            # may be fired, but only records a consent until the quorum is met
    MAY_NOT_START = "may_not_start"              # the actor may not start this workflow
    REFUSED = "refused"                          # any other refusal (unknown instance, a consent to withdraw, ...)
    INTERNAL_ERROR = "internal_error"            # a bug: the event is refused rather than block the inbox


@dataclass(slots=True)
class Candidate:
    """One transition with the event's trigger that leaves the current state, and its verdict
    (read-only; not frozen for the cost of a frozen dataclass's `__init__`, as `Decision`).

    `reason`/`code` say why it may not fire (both None when it may). `awaiting` is set when it
    may fire but needs approvals and the consents given so far are known: the parties whose
    consent is still missing after this actor's (empty when this consent completes the quorum).
    """

    index: int
    transition: TransitionSpec
    reason: str | None = None
    code: Reason | None = None
    missing: tuple[str, ...] = ()  # the empty required fields, with MISSING_FIELD
    awaiting: tuple[str, ...] | None = None

    @property
    def allowed(self) -> bool:
        return self.reason is None

    @property
    def records_consent(self) -> bool:
        """Allowed, but only a consent is recorded: other parties still have to agree."""
        return self.allowed and bool(self.awaiting)
