"""The conditions on a workflow's `transitions` machine: each one checks one rule of a transition.

A transition of the machine carries, in this order, the conditions its spec calls for:
the fields sent (`accepts`), the role (`by`), the guard (`when`), the required fields
(`require`) and the approvals; then `Allowed`, which records that it may fire. `transitions`
evaluates them in order and stops at the first that fails, so a candidate transition is refused
for the first rule it breaks, and the first candidate (in the policy's order) that passes them
all is the one that fires.

`transitions` hands each condition the event data of the question (the machine sends it:
`send_event=True`), which is one of:

* a `Probe` (an `EventData` that also carries the situation, the values sent, and where verdicts
  are written): deciding;
* the machine's own `EventData` of a trigger whose one argument is a transition index: replaying a
  decision already made, to move the state — then only the chosen transition passes, whatever the
  fields have become since.

What a condition can read once is read when the machine is built (the role patterns, the fields a
transition accepts); what a guard sees is built for the roots it reads, once per situation
(`Probe.context`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from transitions import EventData, Machine
from transitions.core import Event, State

from engine.exceptions import ExpressionError
from engine.policy.spec import TransitionSpec
from engine.rules import actors
from engine.rules.duties import approval_parties, awaiting
from engine.rules.reasons import Candidate, Reason
from engine.rules.situation import EMPTY, ROOTS, Situation, compiled


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
        self.ctx = {} if ctx is None else ctx  # decisions of one situation with the same values sent may share it

    def context(self, roots: Collection[str]) -> dict[str, Any]:
        """What a guard reading `roots` sees (`engine.rules.situation.context`, only those roots)."""
        ctx = self.ctx
        for root in roots:
            if root not in ctx:
                build = ROOTS.get(root)
                if build is not None:
                    ctx[root] = build(self.situation, self.situation.fields, self.values)
        return ctx


class Condition:
    """One rule of transition `index`, called by `transitions`' `Condition.check` with the event data:
    True when the rule holds; a refusal is written to the probe (`refuse`). Each rule is written in
    its `__call__` (no further call per check: a decision's cost is mostly these checks)."""

    __slots__ = ("index", "t")

    def __init__(self, index: int, t: TransitionSpec):
        self.index, self.t = index, t

    def __call__(self, event: EventData) -> bool:
        raise NotImplementedError

    def replays(self, event: EventData) -> bool:
        """Replaying a choice (the event data is the machine's own): only transition `args[0]` passes."""
        return next(iter(event.args)) == self.index

    def refuse(self, probe: Probe, code: Reason, reason: str, missing: tuple[str, ...] = ()) -> bool:
        probe.candidates.append(Candidate(self.index, self.t, reason, code, missing))
        return False


class Accepts(Condition):
    """Only fields the transition accepts may be sent with it."""

    __slots__ = ("accepted",)

    def __init__(self, index: int, t: TransitionSpec):
        super().__init__(index, t)
        self.accepted = frozenset(t.accepts)

    def __call__(self, event: EventData) -> bool:
        if not isinstance(event, Probe):
            return self.replays(event)
        values = event.values
        if values.keys() <= self.accepted:
            return True
        t = self.t
        extra = [n for n in values if n not in self.accepted]
        return self.refuse(event, Reason.FIELD_NOT_ACCEPTED,
                           f"'{t.trigger}' does not accept the field(s) {', '.join(extra)} (accepts: {', '.join(t.accepts) or 'none'})")


class Role(Condition):
    """The actor fits one of the `by` patterns, read on the fields as stored."""

    __slots__ = ("patterns", "refusals")
    KEEP = 256  # refusal messages kept per transition (per actor and `$field` parties)

    def __init__(self, index: int, t: TransitionSpec):
        super().__init__(index, t)
        self.patterns = actors.Patterns(t.by)
        self.refusals: dict[tuple, str] = {}

    def __call__(self, event: EventData) -> bool:
        if not isinstance(event, Probe):
            return self.replays(event)
        s = event.situation
        actor, fields = s.actor, s.fields
        if self.patterns.admits(actor, fields):
            return True
        # The message names the actor and the patterns resolved with the parties the fields name.
        key = (actor.party, actor.role, actor.person, *[fields.get(f) for f in self.patterns.fields])
        try:
            message = self.refusals.get(key)
        except TypeError:  # a value that is not a party id (unhashable): not kept
            return self.refuse(event, Reason.NOT_YOUR_ROLE, self.refusal(actor, fields))
        if message is None:
            if len(self.refusals) >= self.KEEP:
                self.refusals.clear()
            message = self.refusals[key] = self.refusal(actor, fields)
        return self.refuse(event, Reason.NOT_YOUR_ROLE, message)

    def refusal(self, actor: actors.Actor, fields: Mapping[str, Any]) -> str:
        return f"{actor} may not fire '{self.t.trigger}' (allowed: {actors.resolved(self.t.by, fields)})"


class Guard(Condition):
    """The `when` expression is true on the fields as stored (and `given`, the values sent)."""

    __slots__ = ("roots",)

    def __init__(self, index: int, t: TransitionSpec):
        super().__init__(index, t)
        self.roots: frozenset[str] | None = None  # the context roots `when` reads, once compiled

    def __call__(self, event: EventData) -> bool:
        if not isinstance(event, Probe):
            return self.replays(event)
        when = self.t.when
        if when is None:  # no guard: nothing to check (conditions_of adds Guard only with one)
            return True
        try:
            expression = compiled(event.situation, when)
            roots = self.roots
            if roots is None:
                roots = self.roots = frozenset(name.partition(".")[0] for name in expression.names)
            met = expression.evaluate(event.context(roots))
        except ExpressionError as exc:
            return self.refuse(event, Reason.GUARD_ERROR, f"guard {when!r} could not be evaluated: {exc}")
        return True if met else self.refuse(event, Reason.GUARD_FALSE, f"guard not met: {when}")


class Require(Condition):
    """Every `require`d field is filled once the values sent are stored."""

    def __call__(self, event: EventData) -> bool:
        if not isinstance(event, Probe):
            return self.replays(event)
        t, fields = self.t, event.fields
        for n in t.require:
            if fields.get(n) in EMPTY:
                break
        else:
            return True
        missing = tuple(n for n in t.require if fields.get(n) in EMPTY)
        return self.refuse(event, Reason.MISSING_FIELD, f"'{t.trigger}' needs the field(s) {', '.join(missing)}", missing)


class Approval(Condition):
    """Only a party whose consent counts may give it (the quorum itself decides consent vs move)."""

    def __call__(self, event: EventData) -> bool:
        if not isinstance(event, Probe):
            return self.replays(event)
        s, t = event.situation, self.t
        if t.approvals is None:  # no approvals: nothing to check (conditions_of adds Approval only with them)
            return True
        try:
            parties = approval_parties(t.approvals, s.config, event.fields)
        except ValueError as exc:
            return self.refuse(event, Reason.NOT_A_CONSENTING_PARTY, f"'{t.trigger}': {exc}")
        party = s.actor.party
        if party is not None and (parties is None or party in parties):
            return True
        named = ", ".join(parties) if parties else "all parties" if parties is None else "no party can consent for this instance"
        return self.refuse(event, Reason.NOT_A_CONSENTING_PARTY,
                           f"party '{party}' is not among those whose consent '{t.trigger}' needs ({named})")


class Allowed(Condition):
    """Last: every rule holds; records the allowed candidate (with the consents still awaited, if known)."""

    def __call__(self, event: EventData) -> bool:
        if not isinstance(event, Probe):
            return self.replays(event)
        t, s = self.t, event.situation
        waiting = None
        if t.approvals is not None and s.consents is not None:
            parties = approval_parties(t.approvals, s.config, event.fields)
            if parties is not None:
                agreed = set(s.consents.get(t.trigger, ()))
                if s.actor.party is not None:  # the system has no party (and None is never among `parties`)
                    agreed.add(s.actor.party)
                waiting = awaiting(t.approvals, parties, agreed)
        event.candidates.append(Candidate(self.index, t, awaiting=waiting))
        return True


def conditions_of(index: int, t: TransitionSpec) -> list[Condition]:
    """The conditions transition `index` carries on the machine, in the order they are checked."""
    out: list[Condition] = [Accepts(index, t), Role(index, t)]
    if t.when:
        out.append(Guard(index, t))
    if t.require:
        out.append(Require(index, t))
    if t.approvals is not None:
        out.append(Approval(index, t))
    out.append(Allowed(index, t))
    return out
