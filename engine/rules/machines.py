"""One transitions `Machine` per workflow spec, whose conditions decide.

The machine is built from the validated spec: its states, and one machine transition per spec
transition and source state carrying the conditions of `engine.rules.conditions` (who sends what,
the guard, the required fields and approvals). `judge` asks whether a trigger may fire from a
state: it takes the transitions the machine holds for that trigger and state, in the policy's
order, and has `transitions`' `Condition.check` evaluate each one's conditions until a transition
passes them all (what `may_trigger` does, without what it does per call that these machines never
need: an `Event` object built per question, the scan of the triggers, the `prepare` callbacks, of
which there are none); the verdict on every candidate lands in the probe.

`move` replays a decision already made: it runs the chosen machine transition's state change
(`Transition._change_state`: the source state's exit, the model set to the destination, the
destination's enter; private in `transitions` 0.9, which pyproject.toml pins below 0.10, and
tests/test_rules.py replays a choice) on a stand-in model holding the stored state, and returns
the state it ends in. It does not fire the trigger again: `Event.trigger` would evaluate every
candidate's conditions again until the chosen one, and `Transition.execute` the chosen one's and
its (empty) callbacks, each with its log calls: a replay cost 2.5 times the state change alone
(bench/rules.py), when the decision has evaluated the conditions already. These
machines are built without callbacks (`prepare`, `before`, `after`, the machine's own), so the
state change is all that firing would do once the conditions have passed.

No model is attached to a machine: the state lives in the store, a question's probe or a replay's
stand-in holds it for the duration of one call, so nothing is shared between threads and no lock
is needed. Machines are kept for the last `KEEP` specs seen (a spec is immutable).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from threading import Lock
from typing import Any

from transitions import EventData, Machine
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

    __slots__ = ("state",)

    def __init__(self, state: str):
        self.state = state


class Rules:
    """A workflow spec's machine, and the questions asked of it."""

    def __init__(self, spec: WorkflowSpec):
        self.spec = spec
        self.sources = [spec.sources_of(t) for t in spec.transitions]  # "*" read as every non-final state
        machine = self.machine = _Machine(model=None, states=list(spec.states), initial=spec.initial,
                                          auto_transitions=False, send_event=True, ignore_invalid_triggers=False)
        self.moves: dict[tuple[str, str, int], Transition] = {}  # (source, trigger, index) -> machine transition
        for i, t in enumerate(spec.transitions):
            sources: list[Any] = self.sources[i]  # (typed so: the stubs want lists of str | Enum | State, of str | Callable)
            conditions: list[Any] = conditions_of(i, t)
            machine.add_transition(t.trigger, sources, t.dest, conditions=conditions)
            for source in sources:
                self.moves[source, t.trigger, i] = machine.events[t.trigger].transitions[source][-1]
        machine.freeze()

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
        candidate evaluated (the last one allowed, when one is). The probe holds no model: the
        conditions read the situation, and a condition writes only to its probe."""
        machine = self.machine
        probe = Probe(machine.states[state], machine.events[trigger], machine, None, situation, values, fields, ctx)
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
        """Run the state change of transition `chosen` (fired by `trigger`) from `state`, a choice
        `judge` made; returns the state it ends in."""
        transition = self.moves.get((state, trigger, chosen))
        if transition is None:
            raise RuntimeError(f"transition {chosen} ('{trigger}') does not leave {state}")
        machine, model = self.machine, _Model(state)
        transition._change_state(EventData(machine.states[state], machine.events[trigger], machine, model, (), {}))
        return model.state


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
