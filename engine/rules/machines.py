"""One transitions `Machine` per workflow spec, whose conditions decide.

The machine is built from the validated spec: its states, and one machine transition per spec
transition carrying the conditions of `engine.rules.conditions` (role, guard, accepted and
required fields, approvals). `may` asks the machine whether a trigger may fire from a state
(`may_trigger`, which evaluates those conditions) and collects the verdict on every candidate;
`move` fires a decision already made, to get the state it ends in.

Each machine has exactly one model attached, for good: for each question the model is set to the
instance's stored state under the machine's lock. The state lives in the store, never in the
machine, and the cost of attaching models (which grows with their number, ~0.3 ms each) is paid
once per spec. Machines are kept for the last `KEEP` specs seen (a spec is immutable).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from threading import Lock

from transitions import Machine

from engine.policy.spec import TransitionSpec, WorkflowSpec
from engine.rules.conditions import CHOSEN, PROBE, Probe, conditions_of

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
    """The stand-in a question moves: holds the state for the duration of one call."""

    # Bound by Machine.add_model (only annotated here, so the machine still binds it): Machine._can_trigger.
    may_trigger: Callable[..., bool]

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

    def may(self, state: str, trigger: str, probe: Probe) -> bool:
        """May `trigger` fire from `state`? The verdict on each candidate evaluated lands in `probe`."""
        with self.lock:
            self.model.state = state
            return self.model.may_trigger(trigger, **{PROBE: probe})

    def move(self, state: str, trigger: str, chosen: int) -> str:
        """Fire transition `chosen` (by its trigger) from `state`; returns the state it ends in."""
        with self.lock:
            self.model.state = state
            if not self.machine.events[trigger].trigger(self.model, **{CHOSEN: chosen}):
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
