"""One transitions `Machine` per workflow version, shared by all its instances.

A model is attached only while one event is applied (attaching costs grow with the number of
attached models), and the state lives in the store, never in the machine.
"""

from __future__ import annotations

from threading import Lock

from transitions import Machine

from engine.spec import WorkflowSpec

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
    """Machines by workflow version, built on first use."""

    def __init__(self) -> None:
        self._machines: dict[str, Machine] = {}
        self._lock = Lock()

    def move(self, version: str, spec: WorkflowSpec, state: str, trigger: str, chosen: int) -> str:
        """Run transition `chosen` (fired by `trigger`) from `state`; returns the new state."""
        with self._lock:
            machine = self._machines.get(version)
            if machine is None:
                machine = self._machines[version] = build(spec)
            model = _Model(state)
            machine.add_model(model, initial=state)
            try:
                if not machine.events[trigger].trigger(model, **{CHOSEN: chosen}):
                    raise RuntimeError(f"transition {chosen} did not fire from {state}")
                return model.state
            finally:
                machine.remove_model(model)
