"""What a transition does after it fires (`then:`): emit, start, set, notify."""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Any

from pydantic import BaseModel, Discriminator, Field, Tag

from engine.policy.spec.base import EventName, Id, Strict


class EmitAction(Strict):
    emit: EventName
    data: dict[Id, Any] = {}


class StartAction(Strict):
    start: Id
    with_: dict[Id, Any] = Field(default={}, alias="with")


class SetAction(Strict):
    set: dict[Id, Any]


class NotifyAction(Strict):
    notify: list[str]
    message: str


ACTION_KEYS = ("emit", "start", "set", "notify")


def _action_tag(value: Any) -> str | None:
    keys: Collection[str]
    if isinstance(value, dict):
        keys = value.keys()
    elif isinstance(value, BaseModel):
        keys = type(value).model_fields
    else:  # a string, list or number where an action belongs: no kind, so a clear error
        return None
    found = [k for k in ACTION_KEYS if k in keys]
    return found[0] if len(found) == 1 else None


Action = Annotated[
    Annotated[EmitAction, Tag("emit")] | Annotated[StartAction, Tag("start")] | Annotated[SetAction, Tag("set")] | Annotated[NotifyAction, Tag("notify")],
    Discriminator(
        _action_tag,
        custom_error_type="action_kind",
        custom_error_message="an action is a mapping with exactly one of the keys emit, start, set, notify",
    ),
]


def is_expression(value: Any) -> bool:
    """Values written `=...` in `set`, `with` and `data` are expressions, everything else literal."""
    return isinstance(value, str) and value.startswith("=")
