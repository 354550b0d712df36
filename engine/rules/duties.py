"""Who may fire a step, whose consent it needs, what each party owes next, and what counts as late.

Read from the workflow spec alone (no database, no actor): the overview, the report and the
diagram use these, and the decision's conditions use the same approval reading.

* **who owes the next step**: for an open instance, every party whose roles may fire a
  transition leaving the current state, other than a ``system`` or an ``optional`` one: ``$field.role`` is
  resolved with the instance's current fields, ``party.role`` names the party, a bare ``role``
  means every party having that role. Guards (``when``) are not evaluated. For a transition
  that needs several parties' consent, a party that has already consented no longer owes it.
* **a lateness transition**: one that only the system may fire, leaving a state whose deadline
  fires it (``overdue``, ``escalate``, ``deemed_received``, ``invitation_overdue``). Deadline
  transitions that people may also fire (``request_reports``, ``meeting_time``) only move an
  instance on schedule and do not count.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from engine.policy.spec import SYSTEM, Approvals, ConfigSpec, PartiesFrom, TransitionSpec, WorkflowSpec
from engine.rules import consent
from engine.rules.actors import Actor, matches, pattern_parties


def system_only(t: TransitionSpec) -> bool:
    """Only the engine itself (a deadline, a schedule, a rule) may fire `t`."""
    return set(t.by) == {SYSTEM}


def approval_parties(approvals: Approvals, config: ConfigSpec | None,
                     fields: Mapping[str, Any] | None = None) -> list[str] | None:
    """The parties whose consent counts (every party of the agreement for `all`; None if unknown).

    Parties named by the instance (`in` / `others_than`, engine.rules.consent) need its `fields`
    and `config`; ValueError (user text) when a field names something that is not a party."""
    if isinstance(approvals.parties, PartiesFrom):
        return consent.eligible_parties(approvals, fields, config) if fields is not None and config is not None else None
    if approvals.parties == "all":
        return list(config.parties) if config is not None else None
    return list(approvals.parties)


def quorum(approvals: Approvals, parties: Collection[str]) -> int:
    """How many distinct parties must consent: `quorum`, or all of them."""
    return approvals.quorum or len(parties)


def awaiting(approvals: Approvals, parties: list[str], agreed: Iterable[str]) -> tuple[str, ...]:
    """The parties still to consent after `agreed` (empty once the quorum is met)."""
    counted = {p for p in agreed if p in parties}
    if len(counted) >= quorum(approvals, parties):
        return ()
    return tuple(p for p in parties if p not in counted)


def owed(spec: WorkflowSpec, state: str, fields: Mapping[str, Any], config: ConfigSpec,
         consented: Mapping[str, Iterable[str]] | None = None) -> dict[str, list[str]]:
    """Party -> triggers it may fire from `state` (system-only steps left out, consents counted)."""
    out: dict[str, list[str]] = {}
    st = spec.states.get(state)
    if st is None or st.final:
        return out
    consented = consented or {}
    for t in spec.transitions:
        if t.optional or not spec.leaves(t, state):
            continue
        parties = list(dict.fromkeys(p for pattern in t.by for p in pattern_parties(pattern, fields, config)))
        if t.approvals is not None:
            try:
                needed = approval_parties(t.approvals, config, fields) or []
            except ValueError:  # a field naming no party: nobody can consent (firing says why)
                needed = []
            done = set(consented.get(t.trigger, ()))
            parties = [p for p in parties if p in needed and p not in done]
        for party in parties:
            if t.trigger not in out.setdefault(party, []):
                out[party].append(t.trigger)
    return out


def is_late(spec: WorkflowSpec, t: TransitionSpec, from_state: str | None) -> bool:
    """Is `t`, fired from `from_state`, a lateness transition (system-only, fired by that state's deadline)?"""
    if not system_only(t):
        return False
    st = spec.states.get(from_state) if from_state is not None else None
    return st is not None and st.deadline is not None and st.deadline.fire == t.trigger


def late_transition(spec: WorkflowSpec, index: int | None, trigger: str | None, from_state: str | None) -> bool:
    """`is_late` for a recorded event: its transition by index, else any with its trigger from that state."""
    if isinstance(index, int) and 0 <= index < len(spec.transitions):
        return is_late(spec, spec.transitions[index], from_state)
    return any(t.trigger == trigger and is_late(spec, t, from_state) for t in spec.transitions)


def named_steps(spec: WorkflowSpec, actors: Iterable[Actor]) -> dict[tuple[str | None, str | None], set[str]]:
    """Where `actors` are named for a step of `spec` that is owed (not `optional:`, such as taking a
    request back): (party field, party) -> the states those steps leave. A pattern `$field.role`
    gives (field, the actor's party): owed on instances whose field names that party; a pattern
    naming no field gives (None, None): owed on every instance in those states. Guards (`when`)
    are not evaluated, as for who owes the next step."""
    out: dict[tuple[str | None, str | None], set[str]] = {}
    actors = list(actors)
    for t in spec.transitions:
        if t.optional:
            continue
        for pattern in t.by:
            head = pattern.rpartition(".")[0]
            field = head[1:] if head.startswith("$") else None
            for actor in actors:
                if matches(actor, pattern, {field: actor.party} if field else {}):
                    out.setdefault((field, actor.party if field else None), set()).update(spec.sources_of(t))
    return out
