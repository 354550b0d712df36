"""Pydantic's validation errors as short sentences for an administrator, one per mistake, at the
key or value they are about (`describe_errors`)."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union

from pydantic import BaseModel


def describe_value(value: Any) -> str:
    """What the file holds, as an administrator would describe it."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if value else "an empty text"
    return str(value)


def _name(loc: tuple) -> str:
    """The key an error is about: 'title', or "item 2 of 'months'"."""
    if not loc:
        return "this file"
    if isinstance(loc[-1], int):
        parent = next((p for p in reversed(loc) if isinstance(p, str)), None)
        return f"item {loc[-1] + 1} of '{parent}'" if parent else f"item {loc[-1] + 1}"
    return f"'{loc[-1]}'"


EXPECTED: dict[str, str] = {
    "dict_type": "a mapping of key: value pairs",
    "model_type": "a mapping of key: value pairs",
    "model_attributes_type": "a mapping of key: value pairs",
    "list_type": "a list",
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "date_type": "a date as YYYY-MM-DD",
    "date_parsing": "a date as YYYY-MM-DD",
    "date_from_datetime_parsing": "a date as YYYY-MM-DD",
    "date_from_datetime_inexact": "a date as YYYY-MM-DD",
}
"""What a value of the wrong type should have been, by pydantic error type."""


def _expected(error: dict) -> str | None:
    if error["type"] == "literal_error":
        return error["ctx"]["expected"]
    return EXPECTED.get(error["type"])


ERROR_TEXT: dict[str, Callable[[dict], str]] = {
    "missing": lambda e: f"missing required key '{e['loc'][-1]}'",
    "string_pattern_mismatch": lambda e: (
        f"{e['input']!r} is not a valid id: use lowercase letters, digits and _, starting with a letter"
        if "[a-z0-9_]*$" in e["ctx"]["pattern"]
        else f"{e['input']!r} does not match the pattern {e['ctx']['pattern']}"
    ),
    "string_too_short": lambda e: f"{_name(e['real'])} must not be empty",
    "too_short": lambda e: (
        f"{_name(e['real'])} must not be empty" if e["ctx"]["min_length"] == 1
        else f"{_name(e['real'])} needs at least {e['ctx']['min_length']} items"
    ),
    "less_than_equal": lambda e: f"{_name(e['real'])} must be at most {e['ctx']['le']}, found {describe_value(e['input'])}",
    "less_than": lambda e: f"{_name(e['real'])} must be less than {e['ctx']['lt']}, found {describe_value(e['input'])}",
    "greater_than_equal": lambda e: f"{_name(e['real'])} must be at least {e['ctx']['ge']}, found {describe_value(e['input'])}",
    "greater_than": lambda e: f"{_name(e['real'])} must be more than {e['ctx']['gt']}, found {describe_value(e['input'])}",
}
"""Messages for pydantic error types whose own text does not suit an administrator.

Each function gets the pydantic error dict plus `real`: its loc reduced to the keys and
indexes present in the file (see `_real_loc`)."""


def _real_loc(data: Any, loc: tuple) -> tuple:
    """The part of a pydantic loc that names keys and indexes present in the data.

    Union members add tags such as 'str' or "literal['all']" to a loc, and a missing key is
    not in the data: such parts are dropped.
    """
    real: tuple = ()
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            continue
        real += (part,)
    return real


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The policy model that validates the mapping at pydantic `loc` (union tags included), if known."""
    current: Any = model
    parts = list(loc)
    while True:
        while typing.get_origin(current) is typing.Annotated:
            current = typing.get_args(current)[0]
        if typing.get_origin(current) in (Union, types.UnionType):
            members = [m for m in typing.get_args(current) if m is not type(None)]
            tagged = [m for m in members if parts and any(getattr(x, "tag", None) == parts[0] for x in getattr(m, "__metadata__", ()))]
            if tagged:
                current = tagged[0]
                parts.pop(0)
            elif len(members) == 1:
                current = members[0]
            else:
                return None
            continue
        if not parts:
            return current if isinstance(current, type) and issubclass(current, BaseModel) else None
        part = parts.pop(0)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next((f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) is list and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        else:
            return None


def _unknown_key(error: dict, model: type[BaseModel] | None) -> str:
    """'unknown key', with the likely intended key or the keys allowed at that place."""
    key = error["loc"][-1]
    where = _model_at(model, tuple(error["loc"][:-1])) if model is not None else None
    if where is None:
        return f"unknown key '{key}'"
    allowed = sorted(f.alias or n for n, f in where.model_fields.items())
    close = difflib.get_close_matches(str(key), allowed, n=1)
    if close:
        return f"unknown key '{key}' (did you mean '{close[0]}'?)"
    return f"unknown key '{key}'; allowed here: {', '.join(allowed)}"


def _union_type_error(error: dict) -> bool:
    """A wrong-type error raised by one member of a union (its loc ends in a member tag)."""
    return len(error["loc"]) > len(error["real"]) and error["type"] != "missing" and _expected(error) is not None


def _explained_by_typo(error: dict, errors: list[dict]) -> bool:
    """A missing key next to a misspelling of it (`tittle` for `title`): the unknown key says it all."""
    if error["type"] != "missing":
        return False
    parent, key = tuple(error["loc"][:-1]), str(error["loc"][-1])
    return any(
        e["type"] == "extra_forbidden" and tuple(e["loc"][:-1]) == parent
        and difflib.get_close_matches(str(e["loc"][-1]), [key], n=1)
        for e in errors
    )


def describe_errors(errors: Iterable[Mapping[str, Any]], data: Any, model: type[BaseModel]) -> list[tuple[tuple, str]]:
    """The pydantic errors of one file as (loc, message) pairs, one per mistake.

    A value that fits no member of a union (`from: {a: 1}` for `str | list[str]`) gives one
    error per member: they become one message listing what is expected. When the value has the
    outer type of a member (a list whose second item is a number), only that member's errors,
    which lie deeper, are kept.
    """
    listed = [{**e, "real": _real_loc(data, tuple(e["loc"]))} for e in errors]
    kept = [e for e in listed if not _explained_by_typo(e, listed)]
    deeper = {error["real"][:n] for error in kept for n in range(len(error["real"]))}
    groups: dict[tuple, list[dict]] = {}
    for error in kept:
        if not (_union_type_error(error) and error["real"] in deeper):
            groups.setdefault(error["real"], []).append(error)
    out: list[tuple[tuple, str]] = []
    for real, group in groups.items():
        members = [e for e in group if _union_type_error(e)]
        if len(members) > 1:
            expected = " or ".join(dict.fromkeys(x for x in map(_expected, members) if x is not None))  # never None here
            out.append((real, f"{_name(real)} must be {expected}, found {describe_value(members[0]['input'])}"))
            group = [e for e in group if e not in members]
        # An unknown key is reported at the key itself, not at its value.
        out.extend((tuple(e["loc"]) + (("__key__",) if e["type"] == "extra_forbidden" else ()), describe_error(e, model))
                   for e in group)
    return out


def describe_error(error: dict, model: type[BaseModel] | None = None) -> str:
    """One pydantic error as a short sentence for an administrator.

    `model` (the file's root model) lets an unknown key name the keys allowed in its place.
    """
    if "real" not in error:
        error = {**error, "real": tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal["))))}
    if error["type"] == "extra_forbidden":
        return _unknown_key(error, model)
    special = ERROR_TEXT.get(error["type"])
    if special:
        return special(error)
    expected = _expected(error)
    if expected:
        return f"{_name(error['real'])} must be {expected}, found {describe_value(error.get('input'))}"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if error["type"] in ("value_error", "action_kind"):
        return message
    return f"{_name(error['real'])}: {message} (found {describe_value(error.get('input'))})"
