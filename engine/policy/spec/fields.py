"""Workflow fields: the typed values an instance carries."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from engine.policy.spec.base import Strict

FieldType = Literal["str", "int", "float", "bool", "date", "datetime", "party", "actor", "enum", "list"]


class FieldSpec(Strict):
    """A typed instance field."""

    type: FieldType = "str"
    title: str | None = None
    required: bool = False
    default: Any = None
    values: list[str] | None = None

    @model_validator(mode="after")
    def _enum_values(self) -> FieldSpec:
        if self.type == "enum" and not self.values:
            raise ValueError("an enum field needs a non-empty 'values' list")
        if self.type != "enum" and self.values is not None:
            raise ValueError("'values' is only allowed on enum fields")
        return self
