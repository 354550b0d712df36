"""The instance a decision looks at, and what its expressions see.

Authorization looks at the instance as stored: who may fire (role patterns such as
`$recipient.focal_point`) and every `when` guard see the fields BEFORE the event, so a value
sent with the event cannot make its own sender eligible. Guards also see `given`: the values
supplied with this event (None for a field not supplied), for a check on what is being sent,
such as a visit date at least 3 days ahead.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.policy.expr import Expression, parse
from engine.policy.spec import ConfigSpec, WorkflowSpec
from engine.rules.actors import Actor

EMPTY: tuple[None, str, list[Any]] = (None, "", [])
"""Values that leave a required field unfilled."""


@dataclass(frozen=True)
class Situation:
    """An instance as stored, and who is acting on it when.

    `consents` (trigger -> parties that have consented, unexpired) lets a decision say whether a
    consent would complete the quorum; None when the caller has not read them (the executor
    counts them in the store). `config` resolves `approvals: {parties: all}` to the parties.
    """

    spec: WorkflowSpec
    instance: str
    state: str | None
    fields: Mapping[str, Any]
    actor: Actor
    now: datetime  # in the policy's time zone
    expressions: Mapping[str, Expression] = field(default_factory=dict)
    cache: MutableMapping[str, Expression] | None = None  # compiled here when not in `expressions`
    consents: Mapping[str, Collection[str]] | None = None
    config: ConfigSpec | None = None


Root = Callable[[Situation, Mapping[str, Any], Mapping[str, Any]], Any]
ROOTS: dict[str, Root] = {
    "fields": lambda s, fields, given: dict(fields),
    "given": lambda s, fields, given: {n: given.get(n) for n in s.spec.fields},
    "actor": lambda s, fields, given: s.actor.as_context(),
    "instance": lambda s, fields, given: {"id": s.instance, "workflow": s.spec.id, "state": s.state},
    "now": lambda s, fields, given: s.now.isoformat(),
}
"""What expressions see, by root name: each built from (situation, fields, values given)."""


def context(s: Situation, fields: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """What expressions see: `fields`, `given`, `actor`, `instance`, `now`."""
    return {root: build(s, fields, given) for root, build in ROOTS.items()}


def compiled(s: Situation, source: str) -> Expression:
    """A policy expression, compiled; raises ExpressionError."""
    found = s.expressions.get(source) or (s.cache or {}).get(source)
    if found is None:  # from a pinned older version of a workflow
        found = parse(source, dict.fromkeys(ROOTS))
        if s.cache is not None:
            s.cache[source] = found
    return found


def evaluate(s: Situation, source: str, ctx: Mapping[str, Any]) -> Any:
    """Evaluate a policy expression; raises ExpressionError."""
    return compiled(s, source).evaluate(ctx)
