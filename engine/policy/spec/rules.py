"""rules/*.yaml: schedules (calendar rules, host rotations) and event rules."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from engine.policy.spec.base import SYSTEM, Clause, EventName, Id, Strict, Weekday, time_of_day


class DayRule(Strict):
    """Which day of each period (a month, or a quarter): exactly one of

    * `nth_working_day`: the n-th working day, 1..23 (negative counts from the period's end);
    * `day`: a day of the month (months only), moved by `shift` when it is not a working day;
    * `weekday` with `nth`: the n-th (or, negative, n-th last) such weekday of the period,
      counting only the ones that are working days when `working` is true, else moved by `shift`
      (nth 1..5 or -1..-5, in a quarter too).
    """

    nth_working_day: int | None = None
    day: Annotated[int, Field(ge=1, le=31)] | None = None
    weekday: Weekday | None = None
    nth: int | None = None
    working: bool = False
    shift: Literal["next", "previous", "same_weekday", "none"] = "next"

    @model_validator(mode="after")
    def _one(self) -> DayRule:
        if sum(v is not None for v in (self.nth_working_day, self.day, self.weekday)) != 1:
            raise ValueError("give exactly one of nth_working_day, day or weekday (with nth)")
        if self.nth_working_day is not None and not (1 <= abs(self.nth_working_day) <= 23):
            raise ValueError("nth_working_day must be 1..23, or -1..-23 counting from the month's end")
        if self.weekday is None:
            if self.nth is not None or self.working:
                raise ValueError("'nth' and 'working' go with 'weekday' (e.g. {weekday: thu, nth: -1})")
            if self.shift == "same_weekday":
                raise ValueError("shift 'same_weekday' goes with 'weekday'; use next, previous or none")
        elif self.nth is None or self.nth == 0 or abs(self.nth) > 5:
            raise ValueError("with 'weekday' give 'nth': 1 (the first) .. 5, or -1 (the last) .. -5")
        return self


class CalendarRule(Strict):
    """When a schedule falls: a day (`day`) in each listed month or quarter, or listed dates."""

    months: list[Annotated[int, Field(ge=1, le=12)]] | None = None
    quarters: list[Annotated[int, Field(ge=1, le=4)]] | None = None
    dates: list[date] | None = None
    day: DayRule | None = None
    at: str = "08:00"

    @field_validator("months", "quarters", "dates")
    @classmethod
    def _listed(cls, items: list | None) -> list | None:
        if items is None:
            return None
        if not items:
            raise ValueError("name at least one")
        if len(set(items)) != len(items):
            raise ValueError("an item is listed twice")
        return sorted(items)

    @model_validator(mode="after")
    def _cycle(self) -> CalendarRule:
        given = [k for k in ("months", "quarters", "dates") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of months, quarters or dates")
        if self.dates is not None:
            if self.day is not None:
                raise ValueError("'dates' are the days themselves: leave 'day' out")
            return self
        if self.day is None:
            raise ValueError(f"with '{given[0]}' say which day: e.g. day: {{nth_working_day: 1}}")
        if self.quarters is not None and self.day.day is not None:
            raise ValueError("a day of the month needs 'months'; in a quarter use nth_working_day or weekday")
        return self

    @field_validator("at")
    @classmethod
    def _time(cls, at: str) -> str:
        return time_of_day(at)

    @property
    def periods(self) -> list[tuple[int, int]]:
        """(first month, number of months) of each period in a year; none for `dates`."""
        if self.months is not None:
            return [(m, 1) for m in self.months]
        return [(3 * q - 2, 3) for q in self.quarters or ()]


class RotationEra(Strict):
    """From the occurrence on or after `from`, `first` hosts and the turns follow `rotate`."""

    from_: date = Field(alias="from")
    rotate: list[Id] | None = None
    first: Id | None = None

    @model_validator(mode="after")
    def _first_in(self) -> RotationEra:
        if self.first is not None and self.rotate is not None and self.first not in self.rotate:
            raise ValueError(f"first host '{self.first}' is not in rotate ({', '.join(self.rotate)})")
        return self


class HostRotation(Strict):
    """Hosts take turns in `rotate` order. The occurrence on or after `from` (default: the
    agreement's effective date) is hosted by `first` (default: the first listed); `changes`
    state a new order (or first host) from a later occurrence, leaving earlier ones as they were."""

    rotate: list[Id]
    field: Id = "host"
    from_: date | None = Field(default=None, alias="from")
    first: Id | None = None
    changes: list[RotationEra] = []

    @field_validator("rotate")
    @classmethod
    def _two(cls, rotate: list[str]) -> list[str]:
        if not rotate:
            raise ValueError("name the parties that take turns")
        if len(set(rotate)) != len(rotate):
            raise ValueError("a party is listed twice in rotate")
        return rotate

    @model_validator(mode="after")
    def _order(self) -> HostRotation:
        if self.first is not None and self.first not in self.rotate:
            raise ValueError(f"first host '{self.first}' is not in rotate ({', '.join(self.rotate)})")
        starts = [c.from_ for c in self.changes]
        if starts != sorted(set(starts)) or (self.from_ and starts and starts[0] <= self.from_):
            raise ValueError("changes must come in date order, each after 'from' and the one before")
        return self


class ScheduleSpec(Strict):
    id: Id
    title: str | None = None
    clause: Clause | None = None
    start: Id
    every: CalendarRule
    host: HostRotation | None = None
    with_: dict[Id, Any] = Field(default={}, alias="with")
    actor: str = Field(default=SYSTEM, alias="as")


class FireTarget(Strict):
    workflow: Id
    trigger: Id
    instance: str


class StartTarget(Strict):
    workflow: Id
    with_: dict[Id, Any] = Field(default={}, alias="with")


class EventRuleSpec(Strict):
    id: Id
    title: str | None = None
    clause: Clause | None = None
    on: EventName
    when: str | None = None
    start: StartTarget | None = None
    fire: FireTarget | None = None

    @model_validator(mode="after")
    def _one_target(self) -> EventRuleSpec:
        if (self.start is None) == (self.fire is None):
            raise ValueError("give exactly one of start or fire")
        return self


class RulesFile(Strict):
    """rules/*.yaml: schedules and event rules."""

    schedules: list[ScheduleSpec] = []
    events: list[EventRuleSpec] = []
