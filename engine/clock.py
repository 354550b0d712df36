"""The one clock: every "now" in coopflow comes from here, so tests and the simulator can move it.

`COOPFLOW_CLOCK_START` (an ISO 8601 datetime with offset) makes this a drill clock running at
real speed: drills and tests use it to run a real daemon "in June 2027" without waiting months.

* `VIRTUAL` alone: the clock reads VIRTUAL when this process starts (each process its own start);
* `VIRTUAL@REAL`: the clock reads VIRTUAL at the real instant REAL, so every process given the
  same value sees the same now (`COOPFLOW_CLOCK_START="2027-06-01T08:00+07:00@$(date -Iseconds)"`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from engine import settings

CLOCK_ENV = settings.CLOCK_START


def _system() -> datetime:
    return datetime.now(UTC)


def _refusing(message: str) -> Callable[[], datetime]:
    """A clock that reports a bad COOPFLOW_CLOCK_START when first read (not at import, where the
    CLI could not turn it into a clear message)."""

    def refuse() -> datetime:
        from engine.exceptions import SettingError

        raise SettingError(message)

    return refuse


def _parse(text: str, what: str) -> datetime | str:
    """An aware datetime, or the message saying why `text` is not one."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return f"{CLOCK_ENV} {what} is not an ISO 8601 datetime: {text!r} (e.g. 2027-06-01T07:00+07:00)"
    if moment.tzinfo is None:
        return f"{CLOCK_ENV} {what} needs a UTC offset, e.g. 2027-06-01T07:00+07:00"
    return moment


def drill_start() -> str | None:
    """The COOPFLOW_CLOCK_START value when this process runs a drill clock, else None."""
    return settings.clock_start()


def _from_env() -> Callable[[], datetime]:
    start = drill_start()
    if not start:
        return _system
    virtual, sep, real = start.partition("@")
    origin = _parse(virtual, "start")
    if isinstance(origin, str):
        return _refusing(origin)
    if sep:
        anchor = _parse(real, "anchor (after @)")
        if isinstance(anchor, str):
            return _refusing(anchor)
        shift = origin - anchor  # the same in every process: virtual now = real now + shift
        return lambda: (_system() + shift).astimezone(UTC)
    began = time.monotonic()
    return lambda: (origin + timedelta(seconds=time.monotonic() - began)).astimezone(UTC)


_source: Callable[[], datetime] = _from_env()


def to_wall(moment: datetime) -> datetime:
    """The system-clock instant at which this clock will read `moment` (for APScheduler, which
    keeps the system time): the same instant unless COOPFLOW_CLOCK_START shifted this clock."""
    return moment - (now() - _system())


def now() -> datetime:
    """The current instant, timezone-aware (UTC)."""
    return _source()


def set_source(source: Callable[[], datetime] | None) -> None:
    """Replace the clock (tests, simulator); None restores the system clock."""
    global _source
    _source = source or _system


@contextmanager
def using(source: Callable[[], datetime]) -> Iterator[None]:
    """Run a block with another clock, restoring the previous one afterwards."""
    global _source
    previous, _source = _source, source
    try:
        yield
    finally:
        _source = previous


class SteppedClock:
    """A virtual clock that moves only when told: `clock.now()`, `clock.advance(...)`, `clock.set(...)`."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("a clock needs an aware datetime")
        self.current = start.astimezone(UTC)

    def now(self) -> datetime:
        return self.current

    def set(self, moment: datetime) -> None:
        self.current = moment.astimezone(UTC)

    def advance(self, delta: timedelta) -> datetime:
        self.current += delta
        return self.current
