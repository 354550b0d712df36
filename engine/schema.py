"""JSON Schemas (draft-07, what editors support) for the policy files, generated from engine.spec."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from engine.spec import ConfigSpec, RulesFile, WorkflowSpec

SCHEMAS: dict[str, type[BaseModel]] = {"workflow": WorkflowSpec, "rules": RulesFile, "config": ConfigSpec}
DRAFT_07 = "http://json-schema.org/draft-07/schema#"


def json_schema(kind: str) -> dict[str, Any]:
    """The draft-07 schema of one kind of policy file (`workflow`, `rules` or `config`)."""
    schema = SCHEMAS[kind].model_json_schema(by_alias=True)
    text = json.dumps(schema).replace('"#/$defs/', '"#/definitions/')
    schema = json.loads(text)
    if "$defs" in schema:
        schema["definitions"] = schema.pop("$defs")
    return {"$schema": DRAFT_07, "$id": f"coopflow-{kind}.schema.json", **schema}


def render(kind: str) -> str:
    """The schema as the committed file holds it."""
    return json.dumps(json_schema(kind), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
