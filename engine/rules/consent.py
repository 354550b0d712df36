"""Who may consent to a transition that needs approvals, and how many consents it needs.

`approvals.parties` is `all` (every party of config.yaml), a fixed list, or parties named by the
instance (`PartiesFrom`): those in a field (a party field, or a list field of party ids), or among
a fixed list, minus the party in another field ("the parties other than the requester"). The
quorum counts over exactly these parties; a consent recorded earlier by a party that is no longer
eligible (a field changed) does not count.

Decision on state changes: a consent is given to a trigger of an instance, not to a state, so it
survives a state change while the trigger can still fire (a leader's consent to cancel a meeting
holds whether the reports are in or not); it ends when the transition fires, when the party
withdraws it, or when `expires` passes. docs/policy.md says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.policy.spec import Approvals, ConfigSpec, PartiesFrom, WorkflowSpec


def eligible_parties(approvals: Approvals, fields: Mapping[str, Any], config: ConfigSpec) -> list[str]:
    """The parties whose consent counts, in config order for `all`, else as named.

    Raises ValueError (user text) when a field names something that is not a party.
    """
    chosen = approvals.parties
    if chosen == "all":
        return list(config.parties)
    if not isinstance(chosen, PartiesFrom):
        return list(chosen)
    if chosen.in_ is not None:
        value = fields.get(chosen.in_)
        base = [] if value in (None, "") else (list(value) if isinstance(value, list) else [value])
        unknown = [str(p) for p in base if p not in config.parties]
        if unknown:
            raise ValueError(f"field '{chosen.in_}' names {', '.join(unknown)}, which is not a party "
                             f"(parties: {', '.join(config.parties)})")
    else:
        base = list(chosen.among) if chosen.among is not None else list(config.parties)
    left_out = fields.get(chosen.others_than) if chosen.others_than else None
    return [p for p in dict.fromkeys(base) if p != left_out]


def needed(approvals: Approvals, fields: Mapping[str, Any], config: ConfigSpec) -> tuple[list[str], int]:
    """(eligible parties, quorum); ValueError (user text) when no quorum can ever be reached."""
    parties = eligible_parties(approvals, fields, config)
    quorum = approvals.quorum or len(parties)
    if not parties:
        raise ValueError(f"no party can consent: {describe(approvals)} names none for this instance")
    if quorum > len(parties):
        raise ValueError(f"quorum {quorum} cannot be reached: only {len(parties)} part{'y' if len(parties) == 1 else 'ies'} "
                         f"({', '.join(parties)}) can consent")
    return parties, quorum


def describe(approvals: Approvals) -> str:
    """E.g. 'all parties', 'dic, police', 'the parties in inspected other than requester'."""
    chosen = approvals.parties
    if chosen == "all":
        return "all parties"
    if not isinstance(chosen, PartiesFrom):
        return ", ".join(chosen)
    text = (f"the parties in {chosen.in_}" if chosen.in_ else
            f"{', '.join(chosen.among)}" if chosen.among is not None else "the parties")
    return f"{text} other than {chosen.others_than}" if chosen.others_than else text


def awaiting(spec: WorkflowSpec, state: str, fields: Mapping[str, Any], config: ConfigSpec,
             agreed: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Trigger -> the parties whose consent it still needs from `state`, given (trigger, party)
    consents already recorded; only the parties that can still consent are named."""
    done: dict[str, set[str]] = {}
    for trigger, party in agreed:
        done.setdefault(trigger, set()).add(party)
    out: dict[str, list[str]] = {}
    for t in spec.transitions:
        if t.approvals is None or t.trigger in out or not spec.leaves(t, state):
            continue
        try:
            parties = eligible_parties(t.approvals, fields, config)
        except ValueError:
            continue
        out[t.trigger] = [p for p in parties if p not in done.get(t.trigger, set())]
    return out
