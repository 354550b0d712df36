"""One transitions `Machine` per workflow spec, whose conditions decide.

The machine is built from the validated spec: its states, and one machine transition per spec
transition carrying the conditions of `engine.rules.conditions` (role, guard, accepted and
required fields, approvals). `may` asks whether a trigger may fire from a state: it takes the
transitions the machine holds for that trigger and state, in the policy's order, and has
`transitions`' `Condition.check` evaluate each one's conditions until a transition passes them all
(what `may_trigger` does, without what it does per call that these machines never need: an
`Event` object built per question, the scan of the triggers, the `prepare` callbacks, of which
there are none); the verdict on every candidate lands in the probe. `move` fires a decision
already made (the machine's own trigger), to get the state it ends in.

Each machine has exactly one model attached, for good: for each question the model is set to the
instance's stored state under the machine's lock. The state lives in the store, never in the
machine, and the cost of attaching models (which grows with their number, ~0.3 ms each) is paid
once per spec. Machines are kept for the last `KEEP` specs seen (a spec is immutable).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from threading import Lock
from typing import Any

from transitions import Machine
from transitions.core import Transition

from engine.policy.spec import TransitionSpec, WorkflowSpec
from engine.rules.conditions import Probe, conditions_of
from engine.rules.reasons import Candidate
from engine.rules.situation import Situation

KEEP = 256


class _Machine(Machine):
    """A machine that never changes once built: the triggers leaving each state are indexed.

    `Machine.get_triggers` scans every event on each call, and `may_trigger` calls it for every
    question (about two thirds of a decision's cost on the shipped workflows); the index answers
    the same lists in the same order.
    """

    def freeze(self) -> None:
        self._leaving: dict[str, list[str]] = {}
        for trigger, event in self.events.items():
            for source in event.transitions:
                self._leaving.setdefault(source, []).append(trigger)

    def get_triggers(self, *states) -> list[str]:
        leaving = getattr(self, "_leaving", None)
        if leaving is None:  # still being built
            return super().get_triggers(*states)
        if len(states) == 1:
            state = states[0]
            return leaving.get(getattr(state, "name", state), [])
        names = {getattr(state, "name", state) for state in states}
        return [t for t in self.events if any(t in leaving.get(n, ()) for n in names)]


class _Model:
    """The stand-in a replay moves: holds the state for the duration of one call."""

    def __init__(self, state: str):
        self.state = state


class Rules:
    """A workflow spec's machine, and the questions asked of it."""

    def __init__(self, spec: WorkflowSpec):
        self.spec = spec
        self.sources = [spec.sources_of(t) for t in spec.transitions]  # "*" read as every non-final state
        self.machine = _Machine(
            model=None, states=list(spec.states), initial=spec.initial, auto_transitions=False,
            send_event=True, ignore_invalid_triggers=False,
            transitions=[{"trigger": t.trigger, "source": self.sources[i], "dest": t.dest,
                          "conditions": conditions_of(i, t)} for i, t in enumerate(spec.transitions)],
        )
        self.machine.freeze()
        self.model = _Model(spec.initial)
        self.machine.add_model(self.model)
        self.lock = Lock()

    def knows(self, trigger: str) -> bool:
        return trigger in self.machine.events

    def triggers(self, state: str) -> list[str]:
        """Every trigger leaving `state` (conditions not evaluated), in the policy's order."""
        return self.machine.get_triggers(state)

    def edges(self) -> Iterator[tuple[str, TransitionSpec]]:
        """(source state, transition) for every edge of the machine, in the policy's order."""
        for t, sources in zip(self.spec.transitions, self.sources, strict=False):
            for source in sources:
                yield source, t

    def candidates(self, state: str, trigger: str) -> list[Transition]:
        """The machine's transitions for `trigger` from `state`, in the policy's order (none: [])."""
        event = self.machine.events.get(trigger)
        return event.transitions.get(state, []) if event is not None else []

    def judge(self, state: str, trigger: str, candidates: list[Transition], situation: Situation,
              values: Mapping[str, Any], fields: Mapping[str, Any], ctx: dict[str, Any] | None = None) -> list[Candidate]:
        """Evaluate the conditions of `candidates` (`candidates(state, trigger)`) with `transitions`'
        `Condition.check`, in order, until a transition passes them all; returns the verdict on each
        candidate evaluated (the last one allowed, when one is). No lock: the model is not moved,
        and a condition writes only to its probe."""
        machine = self.machine
        probe = Probe(machine.states[state], machine.events[trigger], machine, self.model, situation, values, fields, ctx)
        for transition in candidates:
            probe.transition = transition
            for condition in transition.conditions:
                if not condition.check(probe):
                    break
            else:
                probe.result = True
                break
        return probe.candidates

    def move(self, state: str, trigger: str, chosen: int) -> str:
        """Fire transition `chosen` (by its trigger) from `state`; returns the state it ends in."""
        with self.lock:
            self.model.state = state
            if not self.machine.events[trigger].trigger(self.model, chosen):
                raise RuntimeError(f"transition {chosen} did not fire from {state}")
            return self.model.state


_rules: OrderedDict[int, Rules] = OrderedDict()
_lock = Lock()


def rules_for(spec: WorkflowSpec) -> Rules:
    """The machine of `spec`, built on first use."""
    found = _rules.get(id(spec))
    if found is not None and found.spec is spec:
        return found
    with _lock:
        found = _rules.get(id(spec))
        if found is None or found.spec is not spec:
            found = _rules[id(spec)] = Rules(spec)
            while len(_rules) > KEEP:
                _rules.popitem(last=False)
        return found


class MachineCache:
    """What the executor holds: moves an instance along the transition its decision chose."""

    def move(self, version: str, spec: WorkflowSpec, state: str, trigger: str, chosen: int) -> str:
        """Run transition `chosen` (fired by `trigger`) from `state`; returns the new state."""
        return rules_for(spec).move(state, trigger, chosen)
