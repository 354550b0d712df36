"""Which transition an event fires, or why none: the pure decision (no database).

The question is put to the workflow's `transitions` machine (`engine.rules.machines`), whose
conditions check each candidate transition: the values sent are limited to the fields the
transition `accepts`; the role and the guard see the instance as stored (`engine.rules.situation`);
`require` is checked on the result (stored + supplied); a step that needs approvals may be given
only by a party whose consent counts. A start accepts every declared field (it is where the party
fields are set) and is checked on the fields it would create.

Every refusal has a stable code (`engine.rules.reasons.Reason`) beside its message. The executor
calls `decide` and then does the bookkeeping that needs the store (consents, writes);
`get_triggers` answers the same question for every trigger leaving a state, for views that show
what an actor could do, and `may` whether one trigger may fire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.rules import actors
from engine.rules.fields import missing_required
from engine.rules.machines import rules_for
from engine.rules.reasons import Candidate, Reason
from engine.rules.situation import EMPTY, Situation, context, evaluate

__all__ = ["EMPTY", "Candidate", "Decision", "Reason", "Situation", "context", "decide", "decide_start",
           "evaluate", "get_triggers", "may", "options"]


@dataclass(slots=True)
class Decision:
    """The outcome of deciding one event: a chosen candidate, or the reasons none fits.

    Not a frozen dataclass: its `__init__` costs about four times as much (bench/rules.py), and a
    decision is made per trigger every time an actor's options are shown. Treat it as read-only."""

    trigger: str | None
    fields: dict[str, Any]  # stored fields with the supplied values merged in
    candidates: tuple[Candidate, ...] = ()
    problem: str | None = None  # a refusal before any candidate (closed instance, unknown trigger, start)
    problem_code: Reason | None = None

    @property
    def chosen(self) -> Candidate | None:
        if self.problem is not None:
            return None
        return next((c for c in self.candidates if c.allowed), None)

    @property
    def allowed(self) -> bool:
        """May fire (or, for a start, may start)."""
        return self.refusal is None

    @property
    def refusal(self) -> str | None:
        """The reason shown to the user when nothing may fire, else None."""
        if self.problem is not None:
            return self.problem
        if self.chosen is not None:
            return None
        return "; ".join(dict.fromkeys(c.reason for c in self.candidates if c.reason)) or None

    @property
    def code(self) -> Reason | None:
        """The refusal's code (the first candidate's when several were refused); NEEDS_APPROVAL when
        the chosen step only records a consent; None when it may fire."""
        if self.problem is not None:
            return self.problem_code
        chosen = self.chosen
        if chosen is not None:
            return Reason.NEEDS_APPROVAL if chosen.records_consent else None
        return next((c.code for c in self.candidates if c.code), None)


def decide_start(s: Situation, values: Mapping[str, Any]) -> Decision:
    """May the actor start an instance with these (coerced) values?"""
    spec = s.spec
    fields = {**s.fields, **values}
    if not actors.allowed(s.actor, spec.started_by, fields):
        return Decision(None, fields, problem=f"{s.actor} may not start '{spec.id}' (allowed: {actors.resolved(spec.started_by, fields)})",
                        problem_code=Reason.MAY_NOT_START)
    missing = missing_required(fields, spec.fields)
    if missing:
        return Decision(None, fields, problem=f"missing required field(s): {', '.join(missing)}",
                        problem_code=Reason.MISSING_FIELD)
    return Decision(None, fields)


def decide(s: Situation, trigger: str, values: Mapping[str, Any], ctx: dict[str, Any] | None = None) -> Decision:
    """Which transition `trigger` fires from the stored state for this actor and these (coerced) values.

    `ctx`: what the guards see, when the caller decides several triggers of one situation with the
    same values (`get_triggers`); made here when a guard first needs it otherwise."""
    spec, state = s.spec, s.state
    fields = {**s.fields, **values}  # the decision's own: the executor updates it with `set` actions
    if state is None:  # no stored state: a start is decided by decide_start (KeyError, as spec.states[None] raised)
        raise KeyError("decide needs the instance's stored state; a start is decided by decide_start")
    if spec.states[state].final:
        return Decision(trigger, fields, problem=f"instance is closed: state '{state}' is final",
                        problem_code=Reason.INSTANCE_CLOSED)
    rules = rules_for(spec)
    candidates = rules.candidates(state, trigger)
    if not candidates:
        known = ", ".join(sorted(rules.triggers(state))) or "none"
        if rules.knows(trigger):
            return Decision(trigger, fields, problem=f"trigger '{trigger}' is not allowed from state '{state}' (allowed: {known})",
                            problem_code=Reason.WRONG_STATE)
        return Decision(trigger, fields, problem=f"unknown trigger '{trigger}' for workflow '{spec.id}'; from '{state}': {known}",
                        problem_code=Reason.UNKNOWN_TRIGGER)
    return Decision(trigger, fields, tuple(rules.judge(state, trigger, candidates, s, values, fields, ctx)))


def may(s: Situation, trigger: str, values: Mapping[str, Any] | None = None) -> bool:
    """May the actor fire `trigger` now (a consent counts as may)?"""
    return decide(s, trigger, values or {}).allowed


def get_triggers(s: Situation) -> dict[str, Decision]:
    """Every trigger leaving the stored state, in the policy's order, decided for this actor with no values sent."""
    state = s.state
    if state not in s.spec.states:
        return {}
    rules, none = rules_for(s.spec), dict[str, Any]()
    if state is None or s.spec.states[state].final:
        return {trigger: decide(s, trigger, none) for trigger in rules.triggers(state)}
    ctx: dict[str, Any] = {}  # what the guards see, the same for every trigger (built as they read it)
    # What `decide` does once the state is known to be open and each trigger to leave it.
    return {trigger: Decision(trigger, dict(s.fields), tuple(rules.judge(state, trigger, rules.candidates(state, trigger),
                                                                         s, none, s.fields, ctx)))
            for trigger in rules.triggers(state)}


options = get_triggers  # the name views used first
