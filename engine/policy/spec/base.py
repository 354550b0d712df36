"""What every policy model shares: the strict base model, ids and names, weekdays, times of day."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints

ID_PATTERN = r"^[a-z][a-z0-9_]*$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
EventName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")]
PersonId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.\-]*$")]
Clause = Annotated[
    str,
    BeforeValidator(
        lambda v: str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v,
        json_schema_input_type=str | int | float,  # the JSON Schema accepts `clause: 2` as the loader does
    ),
    StringConstraints(min_length=1),
]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
SYSTEM = "system"
ANY_STATE = "*"


class Strict(BaseModel):
    """Base of every policy model: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


TIME_PATTERN = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def time_of_day(at: str) -> str:
    """`at` itself when it is a time of day as HH:MM (24-hour), else ValueError."""
    if not TIME_PATTERN.match(at):
        raise ValueError(f"'{at}' is not a time of day as HH:MM (24-hour)")
    return at
