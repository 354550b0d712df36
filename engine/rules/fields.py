"""Typed instance fields: turn user input into the canonical JSON value a field stores.

Stored values are always JSON-compatible: dates and datetimes are ISO 8601 strings (datetimes
with their UTC offset), parties are party ids, actors are `party.role[:person]` strings.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from engine.policy.spec import ConfigSpec, FieldSpec

TRUE = {"true", "yes", "on", "1"}
FALSE = {"false", "no", "off", "0"}


def coerce(name: str, spec: FieldSpec, value: Any, config: ConfigSpec) -> Any:
    """Check and convert one value (a CLI string or a YAML/JSON value) for field `name`.

    Raises:
        ValueError: with a message naming the field, what it expects and what it got.
    """
    if value is None:
        return None
    try:
        return _CONVERTERS[spec.type](value, spec, config)
    except (ValueError, TypeError) as exc:
        detail = f": {exc}" if str(exc) else ""
        raise ValueError(f"field '{name}' expects {_expected(spec)}, got {value!r}{detail}") from None


def coerce_all(
    values: Mapping[str, Any], fields: Mapping[str, FieldSpec], config: ConfigSpec
) -> dict[str, Any]:
    """Coerce a mapping of field values; unknown field names are a ValueError."""
    out = {}
    for name, value in values.items():
        spec = fields.get(name)
        if spec is None:
            known = ", ".join(sorted(fields)) or "none"
            raise ValueError(f"unknown field '{name}'; this workflow's fields: {known}")
        out[name] = coerce(name, spec, value, config)
    return out


def missing_required(values: Mapping[str, Any], fields: Mapping[str, FieldSpec]) -> list[str]:
    """Names of required fields that hold no value."""
    return [n for n, f in fields.items() if f.required and values.get(n) in (None, "", [])]


def defaults(fields: Mapping[str, FieldSpec]) -> dict[str, Any]:
    """Initial values of a new instance's fields.

    The policy loader has already turned every default into its field's canonical JSON value
    (`typed_defaults`); each instance gets its own copy, so a list default is never shared.
    """
    return {n: copy.deepcopy(f.default) for n, f in fields.items()}


def typed_defaults(
    fields: Mapping[str, FieldSpec], config: ConfigSpec
) -> tuple[dict[str, FieldSpec], list[tuple[str, str]]]:
    """The fields with each default converted to its canonical value, and (name, message) per default that does not convert.

    A default that does not convert is kept as written (the policy is refused anyway).
    """
    typed: dict[str, FieldSpec] = {}
    problems: list[tuple[str, str]] = []
    for name, spec in fields.items():
        if spec.default is None:
            typed[name] = spec
            continue
        try:
            if isinstance(spec.default, str) and spec.default.startswith("="):
                raise ValueError(f"field '{name}': a default is a value, not an expression ('=...' is not evaluated here)")
            value = coerce(name, spec, spec.default, config)
        except ValueError as exc:
            problems.append((name, str(exc)))
            typed[name] = spec
            continue
        typed[name] = spec if value == spec.default and type(value) is type(spec.default) else spec.model_copy(update={"default": value})
    return typed, problems


def _expected(spec: FieldSpec) -> str:
    if spec.type == "enum":
        return "one of " + ", ".join(spec.values or [])
    return {
        "str": "text",
        "int": "a whole number",
        "float": "a number",
        "bool": "true or false",
        "date": "a date as YYYY-MM-DD",
        "datetime": "a date and time as YYYY-MM-DDTHH:MM[+07:00]",
        "party": "a party id",
        "actor": "an actor as party.role[:person]",
        "list": "a list",
    }[spec.type]


def _str(value: Any, spec: FieldSpec, config: ConfigSpec) -> str:
    if isinstance(value, (dict, list)):
        raise TypeError
    return str(value)


def _int(value: Any, spec: FieldSpec, config: ConfigSpec) -> int:
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError
    return int(value)


def _float(value: Any, spec: FieldSpec, config: ConfigSpec) -> float:
    if isinstance(value, bool):
        raise TypeError
    return float(value)


def _bool(value: Any, spec: FieldSpec, config: ConfigSpec) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE | FALSE:
        return text in TRUE
    raise ValueError


def _date(value: Any, spec: FieldSpec, config: ConfigSpec) -> str:
    if isinstance(value, datetime):
        raise TypeError
    if isinstance(value, date):
        return value.isoformat()
    return date.fromisoformat(str(value)).isoformat()


def _datetime(value: Any, spec: FieldSpec, config: ConfigSpec) -> str:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(config.timezone))
    return moment.isoformat()


def _party(value: Any, spec: FieldSpec, config: ConfigSpec) -> str:
    if value not in config.parties:
        raise ValueError(f"known parties: {', '.join(sorted(config.parties))}")
    return value


def _actor(value: Any, spec: FieldSpec, config: ConfigSpec) -> str:
    from engine.rules.actors import parse_actor

    return str(parse_actor(str(value), config))


def _enum(value: Any, spec: FieldSpec, config: ConfigSpec) -> str:
    if str(value) not in (spec.values or []):
        raise ValueError
    return str(value)


def _list(value: Any, spec: FieldSpec, config: ConfigSpec) -> list:
    if isinstance(value, list):
        return _json_items(value)
    text = str(value).strip()
    if text.startswith("["):
        parsed = json.loads(text)
        if isinstance(parsed, list):
            return parsed
        raise ValueError
    return [part.strip() for part in text.split(",") if part.strip()]


def _json_items(value: Any) -> Any:
    """A YAML value as JSON: dates and datetimes inside lists and mappings become ISO 8601 text."""
    if isinstance(value, list):
        return [_json_items(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_items(v) for k, v in value.items()}
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


_CONVERTERS = {
    "str": _str,
    "int": _int,
    "float": _float,
    "bool": _bool,
    "date": _date,
    "datetime": _datetime,
    "party": _party,
    "actor": _actor,
    "enum": _enum,
    "list": _list,
}
