"""The functions APScheduler jobs point at: module-level, primitive arguments, no state of their own.

Each job only records that something fell due (an inbox row, an occurrence) and wakes the
daemon's loop; the loop applies it. The daemon registers itself here when it starts.
"""

from __future__ import annotations

from typing import Protocol


class JobTarget(Protocol):
    def on_schedule(self, schedule_id: str) -> None: ...
    def on_timers(self) -> None: ...
    def on_sweep(self) -> None: ...
    def on_digest(self) -> None: ...


_target: JobTarget | None = None


def register(target: JobTarget | None) -> None:
    global _target
    _target = target


def fire_schedule(schedule_id: str) -> None:
    if _target is not None:
        _target.on_schedule(schedule_id)


def fire_timers() -> None:
    if _target is not None:
        _target.on_timers()


def sweep() -> None:
    if _target is not None:
        _target.on_sweep()


def send_digest() -> None:
    if _target is not None:
        _target.on_digest()
