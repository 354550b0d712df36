"""The door: every request is checked here before anything is queued (CLI, HTTP API, tests).

A request that passes fits both stores (SQLite and PostgreSQL): text is valid UTF-8 without NUL
or other control characters (newline and tab are allowed in values), every identifier fits its
column in engine/store/database.py, and a value that is written as a date is a date that exists.
A request that fails raises `IntakeError` naming the field: nothing was queued.

`safe_text` is the other half: it reduces any str (even one that failed the door) to text that
every store and the history hash accept, for recording an event that failed while applied.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any

from engine.exceptions import UserError

USER_KEY_PREFIX = "user:"

# Column sizes (engine/store/database.py): ids are String(120); inbox.key and actor String(200).
MAX_ID = 120              # instance ids, workflow ids, triggers, field names
MAX_ACTOR = 200
MAX_KEY = 200 - len(USER_KEY_PREFIX)   # an operator key is stored as user:<key>
MAX_VALUE = 10_000        # characters in one text value
MAX_VALUES = 200          # fields set by one request (items of a list value count too)
MAX_DEPTH = 5             # nesting of lists and mappings in a value

# Control characters (C0, DEL, C1) except tab and newline; U+2028/9 and other format characters are fine.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?")


class IntakeError(UserError):
    """A request refused at the door; the message names the field."""


def check_request(*, instance: str | None = None, workflow: str | None = None, trigger: str | None = None,
                  actor: str, values: dict[str, Any] | None = None, key: str | None = None) -> None:
    """Raise IntakeError for the first thing in the request that cannot be queued."""
    for name, value, limit in (("instance id", instance, MAX_ID), ("workflow", workflow, MAX_ID),
                               ("trigger", trigger, MAX_ID), ("actor", actor, MAX_ACTOR), ("key", key, MAX_KEY)):
        if value is not None:
            _identifier(name, value, limit)
    if key is not None and not key.strip():
        raise IntakeError("key: is empty")
    if values is None:
        return
    if not isinstance(values, dict):
        raise IntakeError(f"values: expected a mapping of field names to values, got {type(values).__name__}")
    count = [0]
    for name, value in values.items():
        if not isinstance(name, str):
            raise IntakeError(f"field name {name!r}: is not text")
        _identifier("field name", name, MAX_ID)
        _value(f"value of {name}", value, count, 0)  # a checked identifier: safe_text(name) is name


def _identifier(what: str, value: Any, limit: int) -> None:
    if not isinstance(value, str):
        raise IntakeError(f"{what}: is not text")
    _text(what, value, allow_newlines=False)
    if not value:
        raise IntakeError(f"{what}: is empty")
    if len(value) > limit:
        raise IntakeError(f"{what}: is {len(value)} characters long (at most {limit})")


def _text(what: str, value: str, allow_newlines: bool) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: bytes that were not UTF-8 (surrogateescape)
        raise IntakeError(f"{what}: is not valid UTF-8 text: {safe_text(value)[:80]}") from None
    bad = _CONTROL.search(value) or (None if allow_newlines else re.search(r"[\t\n]", value))
    if bad:
        raise IntakeError(f"{what}: contains the control character U+{ord(bad.group()):04X} at position {bad.start()}"
                          + (" (only newline and tab are allowed)" if allow_newlines else ""))


def _value(what: str, value: Any, count: list[int], depth: int) -> None:
    count[0] += 1
    if count[0] > MAX_VALUES:
        raise IntakeError(f"values: more than {MAX_VALUES} values in one request")
    if depth > MAX_DEPTH:
        raise IntakeError(f"{what}: nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise IntakeError(f"{what}: {value} is not a finite number")
        return
    if isinstance(value, str):
        _text(what, value, allow_newlines=True)
        if len(value) > MAX_VALUE:
            raise IntakeError(f"{what}: is {len(value)} characters long (at most {MAX_VALUE})")
        _date(what, value)
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _value(what, item, count, depth + 1)
        return
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                raise IntakeError(f"{what}: key {k!r} is not text")
            _identifier(f"{what}: key", k, MAX_ID)
            _value(f"{what}.{k}", item, count, depth + 1)
        return
    if isinstance(value, (date, datetime)):
        return
    raise IntakeError(f"{what}: a {type(value).__name__} cannot be stored")


def _date(what: str, value: str) -> None:
    """A value written as a date (YYYY-MM-DD, optionally with a time) must be one that exists."""
    text = value.strip()
    if not _ISO_DATE.fullmatch(text):
        return
    try:
        datetime.fromisoformat(text.replace(" ", "T", 1)) if len(text) > 10 else date.fromisoformat(text)
    except ValueError as exc:
        raise IntakeError(f"{what}: {text!r} is not a date that exists ({exc})") from None


def user_key(key: str) -> str:
    """Where an operator's idempotency key is stored: its own namespace, never an engine key."""
    return USER_KEY_PREFIX + key


def safe_text(value: Any, limit: int | None = None) -> str:
    """`value` as text any store and the history hash accept: control characters, NUL and lone
    surrogates (bytes that were not UTF-8) are written as escapes; everything else is kept.
    With `limit`, cut to that many characters (to fit a column)."""
    text = value if isinstance(value, str) else str(value)

    def escape(char: str) -> str:
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    out = []
    for char in text:
        code = ord(char)
        if (0xD800 <= code <= 0xDFFF) or (_CONTROL.match(char) is not None):
            out.append(escape(char))
        else:
            out.append(char)
    return "".join(out)[:limit]


def safe_data(value: Any, depth: int = 0) -> Any:
    """A JSON value reduced by `safe_text` throughout (mapping keys too); anything else becomes text."""
    if value is None or isinstance(value, bool) or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else safe_text(value)
    if isinstance(value, dict) and depth < MAX_DEPTH * 2:
        return {safe_text(k): safe_data(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and depth < MAX_DEPTH * 2:
        return [safe_data(v, depth + 1) for v in value]
    return safe_text(value)
