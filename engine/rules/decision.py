"""Which transition an event fires, or why none: the pure decision (no database).

Authorization looks at the instance as stored: who may fire (role patterns such as
`$recipient.focal_point`) and every `when` guard see the fields BEFORE the event, so a value
sent with the event cannot make its own sender eligible. The values sent are limited to the
fields the transition `accepts`; `require` is checked on the result (stored + supplied).
A start accepts every declared field (it is where the party fields are set) and is checked
on the fields it would create.

Guards also see `given`: the values supplied with this event (None for a field not supplied),
for a check on what is being sent, such as a visit date at least 3 days ahead.

The executor calls `decide` and then does the bookkeeping that needs the store (approvals,
consents, writes); `options` answers the same question for every trigger leaving a state,
for views that show what an actor could do.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.exceptions import ExpressionError
from engine.policy.expr import Expression, parse
from engine.policy.spec import TransitionSpec, WorkflowSpec
from engine.rules import actors
from engine.rules.actors import Actor
from engine.rules.fields import missing_required

EMPTY = (None, "", [])


@dataclass(frozen=True)
class Candidate:
    """One transition with the event's trigger that leaves the current state."""

    index: int
    transition: TransitionSpec
    reason: str | None = None  # why it may not fire; None when it may

    @property
    def allowed(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class Decision:
    """The outcome of deciding one event: a chosen candidate, or the reasons none fits."""

    trigger: str | None
    fields: dict[str, Any]  # stored fields with the supplied values merged in
    candidates: tuple[Candidate, ...] = ()
    problem: str | None = None  # a refusal before any candidate (closed instance, unknown trigger, start)

    @property
    def chosen(self) -> Candidate | None:
        if self.problem is not None:
            return None
        return next((c for c in self.candidates if c.allowed), None)

    @property
    def refusal(self) -> str | None:
        """The reason shown to the user when nothing may fire, else None."""
        if self.problem is not None:
            return self.problem
        if self.chosen is not None:
            return None
        return "; ".join(dict.fromkeys(c.reason for c in self.candidates if c.reason))


@dataclass(frozen=True)
class Situation:
    """An instance as stored, and who is acting on it when."""

    spec: WorkflowSpec
    instance: str
    state: str | None
    fields: Mapping[str, Any]
    actor: Actor
    now: datetime  # in the policy's time zone
    expressions: Mapping[str, Expression] = field(default_factory=dict)
    cache: MutableMapping[str, Expression] | None = None  # compiled here when not in `expressions`


def context(s: Situation, fields: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """What expressions see: `fields`, `given`, `actor`, `instance`, `now`."""
    return {
        "fields": dict(fields),
        "given": {n: given.get(n) for n in s.spec.fields},
        "actor": s.actor.as_context(),
        "instance": {"id": s.instance, "workflow": s.spec.id, "state": s.state},
        "now": s.now.isoformat(),
    }


def evaluate(s: Situation, source: str, ctx: Mapping[str, Any]) -> Any:
    """Evaluate a policy expression; raises ExpressionError."""
    compiled = s.expressions.get(source) or (s.cache or {}).get(source)
    if compiled is None:  # from a pinned older version of a workflow
        compiled = parse(source, {k: None for k in ctx})
        if s.cache is not None:
            s.cache[source] = compiled
    return compiled.evaluate(ctx)


def decide_start(s: Situation, values: Mapping[str, Any]) -> Decision:
    """May the actor start an instance with these (coerced) values?"""
    spec = s.spec
    fields = {**s.fields, **values}
    if not actors.allowed(s.actor, spec.started_by, fields):
        return Decision(None, fields, problem=f"{s.actor} may not start '{spec.id}' (allowed: {', '.join(spec.started_by)})")
    missing = missing_required(fields, spec.fields)
    if missing:
        return Decision(None, fields, problem=f"missing required field(s): {', '.join(missing)}")
    return Decision(None, fields)


def decide(s: Situation, trigger: str, values: Mapping[str, Any]) -> Decision:
    """Which transition `trigger` fires from the stored state for this actor and these (coerced) values."""
    spec, state = s.spec, s.state
    fields = {**s.fields, **values}
    if spec.states[state].final:
        return Decision(trigger, fields, problem=f"instance is closed: state '{state}' is final")
    found = [(i, t) for i, t in enumerate(spec.transitions) if t.trigger == trigger and spec.leaves(t, state)]
    if not found:
        known = ", ".join(sorted({t.trigger for t in spec.transitions if spec.leaves(t, state)})) or "none"
        if trigger not in {t.trigger for t in spec.transitions}:
            problem = f"unknown trigger '{trigger}' for workflow '{spec.id}'; from '{state}': {known}"
        else:
            problem = f"trigger '{trigger}' is not allowed from state '{state}' (allowed: {known})"
        return Decision(trigger, fields, problem=problem)
    ctx = context(s, s.fields, values)
    candidates = tuple(Candidate(i, t, _why_not(s, t, ctx, values, fields)) for i, t in found)
    return Decision(trigger, fields, candidates)


def options(s: Situation) -> dict[str, Decision]:
    """Every trigger leaving the stored state, decided for this actor with no values supplied."""
    triggers = dict.fromkeys(t.trigger for t in s.spec.transitions if s.state in s.spec.states and s.spec.leaves(t, s.state))
    return {trigger: decide(s, trigger, {}) for trigger in triggers}


def _why_not(s: Situation, t: TransitionSpec, ctx: Mapping[str, Any], values: Mapping[str, Any],
             fields: Mapping[str, Any]) -> str | None:
    """Why `t` may not fire (fields sent, role, guard, required fields), or None when it may."""
    extra = [n for n in values if n not in t.accepts]
    if extra:
        return f"'{t.trigger}' does not accept the field(s) {', '.join(extra)} (accepts: {', '.join(t.accepts) or 'none'})"
    if not actors.allowed(s.actor, t.by, s.fields):
        return f"{s.actor} may not fire '{t.trigger}' (allowed: {', '.join(t.by)})"
    if t.when:
        try:
            met = evaluate(s, t.when, ctx)
        except ExpressionError as exc:
            return f"guard {t.when!r} could not be evaluated: {exc}"
        if not met:
            return f"guard not met: {t.when}"
    missing = [n for n in t.require if fields.get(n) in EMPTY]
    if missing:
        return f"'{t.trigger}' needs the field(s) {', '.join(missing)}"
    return None
