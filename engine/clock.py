"""The one clock: every "now" in coopflow comes from here, so tests and the simulator can move it.

`COOPFLOW_CLOCK_START` (an ISO 8601 datetime with offset) starts the process clock at that
instant and lets it run at real speed from there: drills and tests use it to run a real daemon
"in June 2027" without waiting months.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

CLOCK_ENV = "COOPFLOW_CLOCK_START"


def _system() -> datetime:
    return datetime.now(timezone.utc)


def _refusing(message: str) -> Callable[[], datetime]:
    """A clock that reports a bad COOPFLOW_CLOCK_START when first read (not at import, where the
    CLI could not turn it into a clear message)."""

    def refuse() -> datetime:
        from engine.exceptions import CoopflowError

        raise CoopflowError(message)

    return refuse


def _from_env() -> Callable[[], datetime]:
    start = os.environ.get(CLOCK_ENV)
    if not start:
        return _system
    try:
        origin = datetime.fromisoformat(start)
    except ValueError:
        return _refusing(f"{CLOCK_ENV} is not an ISO 8601 datetime: {start!r} (e.g. 2027-06-01T07:00+07:00)")
    if origin.tzinfo is None:
        return _refusing(f"{CLOCK_ENV} needs a UTC offset, e.g. 2027-06-01T07:00+07:00")
    began = time.monotonic()
    return lambda: (origin + timedelta(seconds=time.monotonic() - began)).astimezone(timezone.utc)


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
        self.current = start.astimezone(timezone.utc)

    def now(self) -> datetime:
        return self.current

    def set(self, moment: datetime) -> None:
        self.current = moment.astimezone(timezone.utc)

    def advance(self, delta: timedelta) -> datetime:
        self.current += delta
        return self.current
