"""One transitions `Machine` per workflow version, shared by all its instances.

Each machine has exactly one model attached, for good: before an event is applied the model is
set to the instance's stored state, and the state it ends in is written back to the store. So
the state lives in the store, never in the machine, and the cost of attaching models (which
grows with their number, and was ~0.3 ms per event when a model was attached for each event)
is paid once per workflow version.
"""

from __future__ import annotations

from threading import Lock

from transitions import Machine

from engine.policy.spec import WorkflowSpec

CHOSEN = "chosen"


class _Model:
    """The stand-in an event moves: holds the state for the duration of one transition."""

    def __init__(self, state: str):
        self.state = state


def build(spec: WorkflowSpec) -> Machine:
    """A machine whose transition i fires only when the executor chose transition i."""
    transitions = []
    for i, t in enumerate(spec.transitions):
        transitions.append({
            "trigger": t.trigger,
            "source": spec.sources_of(t),
            "dest": t.dest,
            "conditions": [lambda event, i=i: event.kwargs.get(CHOSEN) == i],
        })
    return Machine(
        model=None, states=list(spec.states), transitions=transitions, initial=spec.initial,
        auto_transitions=False, send_event=True, ignore_invalid_triggers=False,
    )


class MachineCache:
    """Machines (with their one model) by workflow version, built on first use."""

    def __init__(self) -> None:
        self._machines: dict[str, tuple[Machine, _Model]] = {}
        self._lock = Lock()

    def move(self, version: str, spec: WorkflowSpec, state: str, trigger: str, chosen: int) -> str:
        """Run transition `chosen` (fired by `trigger`) from `state`; returns the new state."""
        with self._lock:
            if version not in self._machines:
                machine = build(spec)
                model = _Model(spec.initial)
                machine.add_model(model)
                self._machines[version] = (machine, model)
            machine, model = self._machines[version]
            model.state = state
            if not machine.events[trigger].trigger(model, **{CHOSEN: chosen}):
                raise RuntimeError(f"transition {chosen} did not fire from {state}")
            return model.state
