"""The conditions on a workflow's `transitions` machine: each one checks one rule of a transition.

A transition of the machine carries, in this order, the conditions its spec calls for:
the fields sent (`accepts`), the role (`by`), the guard (`when`), the required fields
(`require`) and the approvals; then `Allowed`, which records that it may fire. `transitions`
evaluates them in order and stops at the first that fails, so a candidate transition is refused
for the first rule it breaks, and the first candidate (in the policy's order) that passes them
all is the one that fires.

A condition reads what it judges from the event's keyword arguments:

* `probe` (a `Probe`): the situation, the values sent, and where verdicts are written;
* `chosen` (a transition index): replaying a decision already made, to move the state — then
  only the chosen transition passes, whatever the fields have become since.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transitions import EventData

from engine.exceptions import ExpressionError
from engine.policy.spec import TransitionSpec
from engine.rules import actors
from engine.rules.duties import approval_parties, awaiting
from engine.rules.reasons import Candidate, Reason
from engine.rules.situation import EMPTY, Situation, context, evaluate

PROBE = "probe"
CHOSEN = "chosen"


class Probe:
    """One decision in progress: what is judged, and the verdict on each candidate so far."""

    __slots__ = ("situation", "values", "fields", "candidates", "_ctx")

    def __init__(self, situation: Situation, values: Mapping[str, Any], fields: Mapping[str, Any]):
        self.situation = situation
        self.values = values
        self.fields = fields  # stored fields with the values sent merged in
        self.candidates: list[Candidate] = []
        self._ctx: dict[str, Any] | None = None

    @property
    def ctx(self) -> dict[str, Any]:
        """What the guards see (built on first use: most transitions have no guard)."""
        if self._ctx is None:
            self._ctx = context(self.situation, self.situation.fields, self.values)
        return self._ctx


class Condition:
    """One rule of transition `index`; `verdict` returns None when it holds, else the refusal."""

    __slots__ = ("index", "t")

    def __init__(self, index: int, t: TransitionSpec):
        self.index, self.t = index, t

    def __call__(self, event: EventData) -> bool:
        kwargs = event.kwargs
        probe: Probe | None = kwargs.get(PROBE)
        if probe is None:
            return kwargs[CHOSEN] == self.index
        refused = self.verdict(probe)
        if refused is None:
            return True
        probe.candidates.append(Candidate(self.index, self.t, refused[1], refused[0], *refused[2:]))
        return False

    def verdict(self, probe: Probe) -> tuple | None:
        raise NotImplementedError


class Accepts(Condition):
    """Only fields the transition accepts may be sent with it."""

    def verdict(self, probe: Probe) -> tuple | None:
        t = self.t
        extra = [n for n in probe.values if n not in t.accepts]
        if not extra:
            return None
        return (Reason.FIELD_NOT_ACCEPTED,
                f"'{t.trigger}' does not accept the field(s) {', '.join(extra)} (accepts: {', '.join(t.accepts) or 'none'})")


class Role(Condition):
    """The actor fits one of the `by` patterns, read on the fields as stored."""

    def verdict(self, probe: Probe) -> tuple | None:
        s, t = probe.situation, self.t
        if actors.allowed(s.actor, t.by, s.fields):
            return None
        return Reason.NOT_YOUR_ROLE, f"{s.actor} may not fire '{t.trigger}' (allowed: {actors.resolved(t.by, s.fields)})"


class Guard(Condition):
    """The `when` expression is true on the fields as stored (and `given`, the values sent)."""

    def verdict(self, probe: Probe) -> tuple | None:
        when = self.t.when
        if when is None:  # no guard: nothing to check (conditions_of adds Guard only with one)
            return None
        try:
            met = evaluate(probe.situation, when, probe.ctx)
        except ExpressionError as exc:
            return Reason.GUARD_ERROR, f"guard {when!r} could not be evaluated: {exc}"
        return None if met else (Reason.GUARD_FALSE, f"guard not met: {when}")


class Require(Condition):
    """Every `require`d field is filled once the values sent are stored."""

    def verdict(self, probe: Probe) -> tuple | None:
        t, fields = self.t, probe.fields
        missing = tuple(n for n in t.require if fields.get(n) in EMPTY)
        if not missing:
            return None
        return Reason.MISSING_FIELD, f"'{t.trigger}' needs the field(s) {', '.join(missing)}", missing


class Approval(Condition):
    """Only a party whose consent counts may give it (the quorum itself decides consent vs move)."""

    def verdict(self, probe: Probe) -> tuple | None:
        s, t = probe.situation, self.t
        if t.approvals is None:  # no approvals: nothing to check (conditions_of adds Approval only with them)
            return None
        try:
            parties = approval_parties(t.approvals, s.config, probe.fields)
        except ValueError as exc:
            return Reason.NOT_A_CONSENTING_PARTY, f"'{t.trigger}': {exc}"
        party = s.actor.party
        if party is not None and (parties is None or party in parties):
            return None
        named = ", ".join(parties) if parties else "all parties" if parties is None else "no party can consent for this instance"
        return (Reason.NOT_A_CONSENTING_PARTY,
                f"party '{party}' is not among those whose consent '{t.trigger}' needs ({named})")


class Allowed(Condition):
    """Last: every rule holds; records the allowed candidate (with the consents still awaited, if known)."""

    def verdict(self, probe: Probe) -> tuple | None:
        t, s = self.t, probe.situation
        waiting = None
        if t.approvals is not None and s.consents is not None:
            parties = approval_parties(t.approvals, s.config, probe.fields)
            if parties is not None:
                agreed = set(s.consents.get(t.trigger, ()))
                if s.actor.party is not None:  # the system has no party (and None is never among `parties`)
                    agreed.add(s.actor.party)
                waiting = awaiting(t.approvals, parties, agreed)
        probe.candidates.append(Candidate(self.index, t, awaiting=waiting))
        return None


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
