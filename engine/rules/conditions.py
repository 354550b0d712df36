"""The conditions on a workflow's `transitions` machine: each one checks rules of a transition.

A transition of the machine carries, in this order, the conditions its spec calls for:
`Sender` (the fields sent are ones the transition `accepts`, and the actor fits its `by`
patterns), `Guard` (the `when` expression, only when there is one) and `Outcome` (the `require`d
fields are filled once the values sent are stored, the approvals are given by a party whose
consent counts; then it records that the transition may fire). `transitions` evaluates them in
order and stops at the first that fails, and each condition checks its rules in the order above,
so a candidate transition is refused for the first rule it breaks, and the first candidate (in the
policy's order) that passes them all is the one that fires. Rules that always sit next to each
other share a condition: each `Condition.check` costs about as much as the rule it calls.

`transitions` hands each condition the event data of the question (the machine sends it:
`send_event=True`): a `Probe`, an `EventData` that also carries the situation, the values sent,
and where verdicts are written. Only decisions evaluate the conditions: the replay of a decision
already made (`Rules.move`) runs the chosen transition's state change without them, so the state
moves whatever the fields have become since.

What a condition can read once is read when the machine is built (the role patterns, the fields a
transition accepts) or when it is first checked (the guard's compiled expression and the context
roots it reads); what a guard sees is built for the roots it reads, once per situation (`Probe.ctx`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from transitions import EventData, Machine
from transitions.core import Event, State

from engine.exceptions import ExpressionError
from engine.policy.expr import Expression
from engine.policy.spec import Approvals, TransitionSpec
from engine.rules import actors
from engine.rules.duties import approval_parties, awaiting
from engine.rules.reasons import Candidate, Reason
from engine.rules.situation import EMPTY, ROOTS, Root, Situation, compiled


class Probe(EventData):
    """One decision in progress, as the event data the machine's conditions see: what is judged,
    and the verdict on each candidate so far."""

    def __init__(self, state: State, event: Event, machine: Machine, model: object, situation: Situation,
                 values: Mapping[str, Any], fields: Mapping[str, Any], ctx: dict[str, Any] | None = None):
        super().__init__(state, event, machine, model, (), {})
        self.situation = situation
        self.values = values
        self.fields = fields  # stored fields with the values sent merged in
        self.candidates: list[Candidate] = []
        # What guards see (`engine.rules.situation.context`), built root by root as they read it;
        # decisions of one situation with the same values sent may share it.
        self.ctx = {} if ctx is None else ctx


class Condition:
    """Rules of transition `index`, called by `transitions`' `Condition.check` with the probe: True
    when they hold; a refusal is written to the probe (`refuse`). The machine holds the bound
    `__call__` (a bound method is called faster than an object), and the common case of each rule
    is written in it, without a further call (a decision's cost is mostly these checks)."""

    __slots__ = ("index", "t")

    def __init__(self, index: int, t: TransitionSpec):
        self.index, self.t = index, t

    def __call__(self, probe: Probe) -> bool:
        raise NotImplementedError

    def refuse(self, probe: Probe, code: Reason, reason: str, missing: tuple[str, ...] = ()) -> bool:
        probe.candidates.append(Candidate(self.index, self.t, reason, code, missing))
        return False


class Sender(Condition):
    """The event as sent: only fields the transition accepts, from an actor who fits one of the
    `by` patterns, read on the fields as stored."""

    __slots__ = ("accepted", "patterns", "refusals")
    KEEP = 256  # role refusal messages kept per transition (per actor and `$field` parties)

    def __init__(self, index: int, t: TransitionSpec):
        super().__init__(index, t)
        self.accepted = frozenset(t.accepts)
        self.patterns = actors.Patterns(t.by)
        self.refusals: dict[tuple, str] = {}

    def __call__(self, probe: Probe) -> bool:
        values = probe.values
        if values and not values.keys() <= self.accepted:
            t = self.t
            extra = [n for n in values if n not in self.accepted]
            return self.refuse(probe, Reason.FIELD_NOT_ACCEPTED,
                               f"'{t.trigger}' does not accept the field(s) {', '.join(extra)} (accepts: {', '.join(t.accepts) or 'none'})")
        s = probe.situation
        if self.patterns.admits(s.actor, s.fields):
            return True
        return self.refuse(probe, Reason.NOT_YOUR_ROLE, self.not_your_role(s.actor, s.fields))

    def not_your_role(self, actor: actors.Actor, fields: Mapping[str, Any]) -> str:
        """The message names the actor and the patterns resolved with the parties the fields name
        (kept: `actors.resolved` is about half of a role refusal)."""
        key = (actor.party, actor.role, actor.person, *[fields.get(f) for f in self.patterns.fields])
        try:
            message = self.refusals.get(key)
        except TypeError:  # a value that is not a party id (unhashable): not kept
            return self.role_refusal(actor, fields)
        if message is None:
            if len(self.refusals) >= self.KEEP:
                self.refusals.clear()
            message = self.refusals[key] = self.role_refusal(actor, fields)
        return message

    def role_refusal(self, actor: actors.Actor, fields: Mapping[str, Any]) -> str:
        return f"{actor} may not fire '{self.t.trigger}' (allowed: {actors.resolved(self.t.by, fields)})"


class Guard(Condition):
    """The `when` expression is true on the fields as stored (and `given`, the values sent)."""

    __slots__ = ("expression", "builders", "unmet")

    def __init__(self, index: int, t: TransitionSpec):
        super().__init__(index, t)
        self.expression: Expression | None = None  # `when`, once compiled (the same for every situation)
        self.builders: tuple[tuple[str, Root], ...] = ()  # the context roots it reads, and how each is built
        self.unmet = f"guard not met: {t.when}"

    def __call__(self, probe: Probe) -> bool:
        when = self.t.when
        if when is None:  # no guard: nothing to check (conditions_of adds Guard only with one)
            return True
        s, ctx = probe.situation, probe.ctx
        try:
            expression = self.expression
            if expression is None:
                expression = self.compile(s, when)
            for root, build in self.builders:
                if root not in ctx:
                    ctx[root] = build(s, s.fields, probe.values)
            met = expression.evaluate(ctx)
        except ExpressionError as exc:
            return self.refuse(probe, Reason.GUARD_ERROR, f"guard {when!r} could not be evaluated: {exc}")
        return True if met else self.refuse(probe, Reason.GUARD_FALSE, self.unmet)

    def compile(self, s: Situation, when: str) -> Expression:
        """`when` compiled (raises ExpressionError, then tried again next time), and the roots it reads."""
        expression = compiled(s, when)
        roots = dict.fromkeys(name.partition(".")[0] for name in expression.names)
        self.builders = tuple((root, ROOTS[root]) for root in roots if root in ROOTS)
        self.expression = expression
        return expression


class Outcome(Condition):
    """Last: every `require`d field is filled once the values sent are stored, and only a party whose
    consent counts may give an approval (the quorum itself decides consent vs move); then records
    the allowed candidate, with the consents still awaited when the situation knows them."""

    __slots__ = ()

    def __call__(self, probe: Probe) -> bool:
        t, fields = self.t, probe.fields
        for n in t.require:
            if fields.get(n) in EMPTY:
                missing = tuple(n for n in t.require if fields.get(n) in EMPTY)
                return self.refuse(probe, Reason.MISSING_FIELD, f"'{t.trigger}' needs the field(s) {', '.join(missing)}", missing)
        if t.approvals is None:
            probe.candidates.append(Candidate(self.index, t))
            return True
        return self.approved(probe, t.approvals)

    def approved(self, probe: Probe, approvals: Approvals) -> bool:
        s, t = probe.situation, self.t
        try:
            parties = approval_parties(approvals, s.config, probe.fields)
        except ValueError as exc:
            return self.refuse(probe, Reason.NOT_A_CONSENTING_PARTY, f"'{t.trigger}': {exc}")
        party = s.actor.party
        if party is None or (parties is not None and party not in parties):
            named = ", ".join(parties) if parties else "all parties" if parties is None else "no party can consent for this instance"
            return self.refuse(probe, Reason.NOT_A_CONSENTING_PARTY,
                               f"party '{party}' is not among those whose consent '{t.trigger}' needs ({named})")
        waiting = None
        if parties is not None and s.consents is not None:
            agreed = {*s.consents.get(t.trigger, ()), party}
            waiting = awaiting(approvals, parties, agreed)
        probe.candidates.append(Candidate(self.index, t, awaiting=waiting))
        return True


def conditions_of(index: int, t: TransitionSpec) -> list[Callable[[Probe], bool]]:
    """The conditions transition `index` carries on the machine, in the order they are checked."""
    out: list[Condition] = [Sender(index, t)]
    if t.when:
        out.append(Guard(index, t))
    out.append(Outcome(index, t))
    return [condition.__call__ for condition in out]
