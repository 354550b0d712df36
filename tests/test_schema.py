"""Tests for engine.policy.schema and the committed schema/*.json: current, valid draft-07, and in agreement with the policy files."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import MINIMAL_FILES
from jsonschema import Draft7Validator

from engine.policy.schema import DRAFT_07, SCHEMAS, json_schema, render
from engine.policy.yamlsource import load_document

REPO = Path(__file__).resolve().parents[1]
KINDS = sorted(SCHEMAS)
SHIPPED = [
    ("config", REPO / "config.yaml"),
    *(("workflow", p) for p in sorted((REPO / "workflows").glob("*.yaml"))),
    *(("rules", p) for p in sorted((REPO / "rules").glob("*.yaml"))),
]
MINIMAL_KINDS = {"config.yaml": "config", "workflows/request.yaml": "workflow", "rules/rules.yaml": "rules"}


def editor_view(path: Path) -> Any:
    """A policy file as an editor's YAML 1.2 language server sees it: `on:` stays a key, dates are strings.

    yaml.safe_load would not do: YAML 1.1 turns the key `on` of event rules into True and
    `2025-05-02` into a date, which no JSON Schema validates.
    """
    data = load_document(path).data
    return json.loads(json.dumps(data, default=lambda v: v.isoformat() if isinstance(v, date) else str(v)))


def validator(kind: str) -> Draft7Validator:
    """A draft-07 validator for one kind of policy file."""
    return Draft7Validator(json_schema(kind))


def walk(node: Any):
    """Every dict nested anywhere in a JSON document."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


@pytest.mark.parametrize("kind", KINDS, ids=KINDS)
def test_committed_schema_is_current(kind):
    """schema/KIND.schema.json is exactly what `coopflow schema KIND` prints."""
    path = REPO / "schema" / f"{kind}.schema.json"
    assert path.is_file(), f"schema/{kind}.schema.json is missing: run `coopflow schema {kind} > schema/{kind}.schema.json`"
    assert path.read_text(encoding="utf-8") == render(kind), (
        f"schema/{kind}.schema.json is out of date with engine/spec.py: "
        f"regenerate it with `coopflow schema {kind} > schema/{kind}.schema.json`"
    )


@pytest.mark.parametrize("kind", KINDS, ids=KINDS)
def test_schema_is_valid_draft_07(kind):
    """The schema passes the draft-07 meta-schema, declares draft-07, and uses only draft-07 references."""
    schema = json.loads(render(kind))
    Draft7Validator.check_schema(schema)
    assert schema["$schema"] == DRAFT_07
    definitions = schema.get("definitions", {})
    for node in walk(schema):
        assert "$defs" not in node and "discriminator" not in node and "const" not in node
        ref = node.get("$ref")
        if isinstance(ref, str):
            assert ref.startswith("#/definitions/") and ref.removeprefix("#/definitions/") in definitions, ref


@pytest.mark.parametrize(("kind", "path"), SHIPPED, ids=[str(p.relative_to(REPO)) for _, p in SHIPPED])
def test_shipped_file_validates(kind, path):
    """Every shipped policy file is valid under its JSON Schema, and its editor modeline names that schema."""
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(kind).iter_errors(editor_view(path))]
    assert errors == []
    first = path.read_text(encoding="utf-8").splitlines()[0]
    if first.startswith("# yaml-language-server: $schema="):
        assert first.endswith(f"schema/{kind}.schema.json")


@pytest.mark.parametrize("rel", sorted(MINIMAL_KINDS), ids=sorted(MINIMAL_KINDS))
def test_minimal_policy_validates(rel, minimal_policy):
    """The minimal test policy is valid under the JSON Schemas too."""
    path = minimal_policy.parent / rel
    assert MINIMAL_FILES[rel] == path.read_text(encoding="utf-8")
    assert list(validator(MINIMAL_KINDS[rel]).iter_errors(editor_view(path))) == []


BROKEN = [
    ("workflow", "unknown_key", lambda d: d.update(colour="red")),
    ("workflow", "missing_key", lambda d: d.pop("clause")),
    ("workflow", "list_for_mapping", lambda d: d.update(states=["open", "answered"])),
    ("workflow", "bad_state_key", lambda d: d["states"].update(Open={"title": "Open"})),
    ("workflow", "from_mapping", lambda d: d["transitions"][0].update({"from": {"open": 1}})),
    ("workflow", "action_two_kinds", lambda d: d["transitions"][0]["then"][0].update(set={"kind": "urgent"})),
    ("workflow", "approvals_some", lambda d: d["transitions"][0].update(approvals={"parties": "some"})),
    ("workflow", "bad_field_type", lambda d: d["fields"]["subject"].update(type="text")),
    ("rules", "months_text", lambda d: d["schedules"][0]["every"].update(months="june")),
    ("rules", "month_13", lambda d: d["schedules"][0]["every"].update(months=[13])),
    ("rules", "unknown_rule_key", lambda d: d["events"][0].update(then=[])),
    ("config", "weekend_in_full", lambda d: d["calendar"].update(weekend=["saturday"])),
    ("config", "party_without_title", lambda d: d["parties"]["a"].pop("title")),
]


@pytest.mark.parametrize(("kind", "name", "breaks"), BROKEN, ids=[f"{k}-{n}" for k, n, _ in BROKEN])
def test_schema_rejects_broken_file(kind, name, breaks, minimal_policy):
    """The schema refuses a minimal policy file with a wrong key, type or value."""
    rel = {v: k for k, v in MINIMAL_KINDS.items()}[kind]
    data = editor_view(minimal_policy.parent / rel)
    breaks(data)
    assert list(validator(kind).iter_errors(data)), f"{name}: the schema accepted a broken {kind} file"


def test_schema_accepts_numeric_clause(minimal_policy):
    """`clause: 2` is accepted by the schema, as the loader accepts it."""
    data = editor_view(minimal_policy.parent / "workflows" / "request.yaml")
    data["clause"] = 2
    data["states"]["open"]["clause"] = 2.1
    assert list(validator("workflow").iter_errors(data)) == []
