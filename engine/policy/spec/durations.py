"""Spans of time: durations (working days, days or hours) and the deadlines of states."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from engine.policy.spec.base import Clause, Id, Strict


class Duration(Strict):
    """A span of time: exactly one of working days, calendar days or hours."""

    working_days: Annotated[int, Field(ge=0, le=3660)] | None = None
    days: Annotated[int, Field(ge=0, le=3660)] | None = None
    hours: Annotated[float, Field(gt=0, le=87840)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Duration:
        given = [k for k in ("working_days", "days", "hours") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of working_days, days or hours"
                + (f" (found {', '.join(given)})" if given else "")
            )
        return self

    def describe(self) -> str:
        """Human text such as '5 working days'."""
        for key, unit in (("working_days", "working day"), ("days", "day"), ("hours", "hour")):
            value = getattr(self, key)
            if value is not None:
                shown = int(value) if float(value).is_integer() else value
                return f"{shown} {unit}{'' if shown == 1 else 's'}"
        return ""


class Deadline(Duration):
    """How long an instance may stay in a state before `fire` is triggered by the system.

    With `at`, the deadline is the datetime held in that field; the duration is the fallback
    used while the field is empty.
    """

    fire: Id
    at: Id | None = None
    clause: Clause | None = None
    remind: Duration | list[Duration] | None = None  # reminders before it expires (docs/policy.md)

    def reminders(self) -> list[Duration]:
        """The `remind` spans, one or several, longest first (so the earliest reminder comes first)."""
        spans = [] if self.remind is None else self.remind if isinstance(self.remind, list) else [self.remind]
        return sorted(spans, key=lambda d: (d.working_days or 0, d.days or 0, d.hours or 0), reverse=True)
