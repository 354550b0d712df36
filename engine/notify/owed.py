"""Who owes the next step of an instance, as the roles and people a reminder or digest reaches.

The parties come from `engine.rules.duties.owed` (the roles that may fire a non-system transition
from the state, consents counted: what `coopflow status` calls who owes the next step); this
module only narrows each party down to the roles of those transitions and their people.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.policy.spec import SYSTEM, ConfigSpec, WorkflowSpec
from engine.rules import duties
from engine.rules.actors import pattern_parties


def owed_roles(spec: WorkflowSpec, state: str, fields: Mapping[str, Any], config: ConfigSpec,
               agreed: Mapping[str, Iterable[str]] = {}) -> dict[str, list[str]]:
    """`party.role` -> the triggers that role may fire from `state` (who owes the next step)."""
    out: dict[str, list[str]] = {}
    for party, triggers in duties.owed(spec, state, fields, config, agreed).items():
        for t in spec.transitions:
            if t.trigger not in triggers or not spec.leaves(t, state):
                continue
            for pattern in t.by:
                if pattern != SYSTEM and party in pattern_parties(pattern, fields, config):
                    owed = out.setdefault(f"{party}.{pattern.rpartition('.')[2]}", [])
                    if t.trigger not in owed:
                        owed.append(t.trigger)
    return out


def people(role_actor: str, config: ConfigSpec) -> list[str]:
    """The recipients of a `party.role`: `party.role:person` for each listed person, else the role itself."""
    party, _, role = role_actor.partition(".")
    listed = config.parties[party].roles[role].people
    return [f"{role_actor}:{p}" for p in listed] or [role_actor]
