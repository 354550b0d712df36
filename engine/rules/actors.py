"""Actors (`party.role[:person]`) and the role patterns that say who may do what.

A role pattern in a policy is one of:
  - `system`            the engine itself (deadlines, schedules, rules);
  - `ROLE`              that role in any party, e.g. `leader`;
  - `PARTY.ROLE`        that role in one party, e.g. `police.leader`;
  - `$FIELD.ROLE`       that role in the party named by a party-typed field, e.g. `$recipient.focal_point`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from engine.exceptions import UserError
from engine.policy.spec import SYSTEM, ConfigSpec

ACTOR_RE = re.compile(r"^([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)(?::([a-z][a-z0-9_.\-]*))?$")


@dataclass(frozen=True)
class Actor:
    """Who submits an event: a person (optional) in a role of a party, or the system."""

    party: str | None
    role: str
    person: str | None = None

    @property
    def is_system(self) -> bool:
        return self.party is None and self.role == SYSTEM

    @cached_property
    def text(self) -> str:
        """`party.role[:person]`, or `system`: made once (`str`, the guards' `actor.id`, every history row)."""
        if self.is_system:
            return SYSTEM
        return f"{self.party}.{self.role}" + (f":{self.person}" if self.person else "")

    def __str__(self) -> str:
        return self.text

    def as_context(self) -> dict[str, Any]:
        """The actor as expressions see it (`actor.party`, `actor.role`, `actor.person`, `actor.id`)."""
        return {"party": self.party, "role": self.role, "person": self.person, "id": self.text}


SYSTEM_ACTOR = Actor(None, SYSTEM)


def parse_actor(text: str, config: ConfigSpec) -> Actor:
    """Parse and check `party.role[:person]` (or `system`) against config.yaml.

    Raises:
        UserError: malformed, or naming a party, role or person config.yaml does not declare.
    """
    text = text.strip()
    if text == SYSTEM:
        return SYSTEM_ACTOR
    match = ACTOR_RE.match(text)
    if not match:
        raise UserError(f"actor '{text}' is not of the form party.role or party.role:person")
    party_id, role_id, person = match.groups()
    party = config.parties.get(party_id)
    if party is None:
        raise UserError(f"unknown party '{party_id}'; known: {', '.join(sorted(config.parties))}")
    role = party.roles.get(role_id)
    if role is None:
        raise UserError(
            f"party '{party_id}' has no role '{role_id}'; known: {', '.join(sorted(party.roles))}"
        )
    if person is not None and role.people and person not in role.people:
        raise UserError(f"'{person}' is not listed as {party_id}.{role_id} in config.yaml")
    return Actor(party_id, role_id, person)


def pattern_problem(pattern: str, config: ConfigSpec, party_fields: set[str]) -> str | None:
    """Why a role pattern is invalid for this config, or None when it is fine."""
    if pattern == SYSTEM:
        return None
    all_roles = {r for p in config.parties.values() for r in p.roles}
    head, _, role = pattern.rpartition(".")
    if not head:
        return None if role in all_roles else f"unknown role '{role}'; known: {', '.join(sorted(all_roles))}"
    if head.startswith("$"):
        field = head[1:]
        if field not in party_fields:
            known = ", ".join(sorted(party_fields)) or "none"
            return f"'{field}' is not a party field of this workflow (party fields: {known})"
        return None if role in all_roles else f"unknown role '{role}'; known: {', '.join(sorted(all_roles))}"
    party = config.parties.get(head)
    if party is None:
        return f"unknown party '{head}'; known: {', '.join(sorted(config.parties))}"
    if role not in party.roles:
        return f"party '{head}' has no role '{role}'; known: {', '.join(sorted(party.roles))}"
    return None


def _parsed(pattern: str) -> tuple[str | None, str | None, str | None]:
    """(role, party, party field) of a role pattern; the role None for `system`, party and field None
    for a bare role."""
    if pattern == SYSTEM:
        return None, None, None
    head, _, role = pattern.rpartition(".")
    if head.startswith("$"):
        return role, None, head[1:]
    return role, head or None, None


class Patterns:
    """Role patterns read once (a transition's `by`): `admits` then only compares strings, and only
    for the patterns naming the actor's role."""

    __slots__ = ("fields", "system", "by_role")

    def __init__(self, patterns: Sequence[str]):
        parsed = [_parsed(p) for p in patterns]
        self.fields = tuple(dict.fromkeys(field for _, _, field in parsed if field is not None))  # read by `$field` patterns
        self.system = any(role is None for role, _, _ in parsed)  # `system` is among them
        self.by_role: dict[str, list[tuple[str | None, str | None]]] = {}  # role -> (party, party field) of each pattern
        for role, at, field in parsed:
            if role is not None:
                self.by_role.setdefault(role, []).append((at, field))

    def admits(self, actor: Actor, fields: Mapping[str, Any]) -> bool:
        """Does `actor` fit any of the patterns, given the instance's current fields?"""
        party, role = actor.party, actor.role
        if party is None and role == SYSTEM:
            return self.system
        for at, field in self.by_role.get(role, ()):
            if (fields.get(field) if field is not None else at if at is not None else party) == party:
                return True
        return False


def matches(actor: Actor, pattern: str, fields: Mapping[str, Any]) -> bool:
    """Does `actor` fit the role pattern, given the instance's current fields?"""
    return Patterns((pattern,)).admits(actor, fields)


def resolved(patterns: list[str], fields: Mapping[str, Any]) -> str:
    """The patterns as people read them: `$recipient.focal_point` shown as `police.focal_point`
    when the instance's `recipient` names a party (left as written while the field is empty)."""
    def one(pattern: str) -> str:
        head, _, role = pattern.rpartition(".")
        party = fields.get(head[1:]) if head.startswith("$") else None
        return f"{party}.{role}" if isinstance(party, str) and party else pattern

    return ", ".join(dict.fromkeys(one(p) for p in patterns))


def allowed(actor: Actor, patterns: Sequence[str], fields: Mapping[str, Any]) -> bool:
    """True when the actor fits any of the patterns."""
    return Patterns(patterns).admits(actor, fields)


def pattern_parties(pattern: str, fields: Mapping[str, Any], config: ConfigSpec) -> list[str]:
    """The parties a role pattern names (`$field.role`, `party.role` or a bare `role`) that have that role."""
    if pattern == SYSTEM:
        return []
    head, _, role = pattern.rpartition(".")
    candidates: Sequence[object]
    if head.startswith("$"):
        candidates = [fields.get(head[1:])]
    elif head:
        candidates = [head]
    else:
        candidates = sorted(config.parties)
    return [p for p in candidates if isinstance(p, str) and p in config.parties and role in config.parties[p].roles]


def recipients(pattern: str, config: ConfigSpec, fields: Mapping[str, Any]) -> list[str]:
    """Expand a notify pattern into the `party.role` actors it names, people included when listed."""
    role = pattern.rpartition(".")[2]
    out = []
    for party_id in pattern_parties(pattern, fields, config):
        people = config.parties[party_id].roles[role].people
        out.extend([f"{party_id}.{role}:{p}" for p in people] or [f"{party_id}.{role}"])
    return out
