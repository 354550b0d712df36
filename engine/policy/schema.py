"""JSON Schemas (draft-07, what editors support) for the policy files, generated from engine.policy.spec."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from engine.policy.spec import ConfigSpec, RulesFile, WorkflowSpec

SCHEMAS: dict[str, type[BaseModel]] = {"workflow": WorkflowSpec, "rules": RulesFile, "config": ConfigSpec}
DRAFT_07 = "http://json-schema.org/draft-07/schema#"


def json_schema(kind: str) -> dict[str, Any]:
    """The draft-07 schema of one kind of policy file (`workflow`, `rules` or `config`)."""
    schema = SCHEMAS[kind].model_json_schema(by_alias=True)
    text = json.dumps(schema).replace('"#/$defs/', '"#/definitions/')
    schema = _draft_07(json.loads(text))
    if "$defs" in schema:
        schema["definitions"] = schema.pop("$defs")
    return {"$schema": DRAFT_07, "$id": f"coopflow-{kind}.schema.json", **schema}


SCHEMA_MAPS = ("properties", "patternProperties", "definitions", "$defs")
"""Keywords whose value maps names to schemas (the mapping itself is not a schema)."""
VALUES = ("default", "examples", "enum", "const")
"""Keywords whose value is data, not a schema."""


def _draft_07(schema: Any) -> Any:
    """Rewrite what pydantic generates into what draft-07 editors read as the models mean it.

    * `const` (draft-06 and later, ignored by some editors) becomes a one-item `enum`;
    * a mapping with id-pattern keys (`states`, `fields`, `parties`) refuses other keys, as the
      models do: `patternProperties` alone would let `Open:` through.
    """
    if isinstance(schema, list):
        return [_draft_07(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _draft_07(sub) for name, sub in value.items()}
        elif key in VALUES:
            out[key] = value
        else:
            out[key] = _draft_07(value)
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if "patternProperties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def render(kind: str) -> str:
    """The schema as the committed file holds it."""
    return json.dumps(json_schema(kind), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
