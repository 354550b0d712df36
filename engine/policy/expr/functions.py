"""The functions an expression may call (`FUNCTIONS`), positional arguments only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from engine.policy.expr.operators import type_name


def _len(x: Any) -> int:
    return len(x)


def _lower(s: str) -> str:
    if not isinstance(s, str):
        raise TypeError(f"expected a string, got {type_name(s)}")
    return s.lower()


def _upper(s: str) -> str:
    if not isinstance(s, str):
        raise TypeError(f"expected a string, got {type_name(s)}")
    return s.upper()


def _str(x: Any) -> str:
    if x is not None and not isinstance(x, (str, int, float, date)):
        raise TypeError(f"expected a number, string, bool, date or None, got {type_name(x)}")
    return str(x)


def _int(x: Any) -> int:
    return int(x)


def _float(x: Any) -> float:
    return float(x)


def _abs(x: Any) -> Any:
    return abs(x)


def _min(first: Any, *rest: Any) -> Any:
    return min(first, *rest)


def _max(first: Any, *rest: Any) -> Any:
    return max(first, *rest)


def _any(items: Any) -> bool:
    return any(items)


def _all(items: Any) -> bool:
    return all(items)


def _contains(container: Any, item: Any) -> bool:
    if container is None:
        return False
    return item in container


def _as_date_or_datetime(x: Any) -> date:
    if isinstance(x, date):  # datetime is a date too
        return x
    if isinstance(x, str):
        try:
            return datetime.fromisoformat(x) if ("T" in x or " " in x) else date.fromisoformat(x)
        except ValueError:
            raise ValueError(f"not an ISO-8601 date or datetime: {x!r}") from None
    raise TypeError(f"expected a date, datetime or ISO-8601 string, got {type_name(x)}")


def _days_between(start: Any, end: Any) -> int:
    a, b = _as_date_or_datetime(start), _as_date_or_datetime(end)
    if isinstance(a, datetime) != isinstance(b, datetime):
        a = a.date() if isinstance(a, datetime) else a
        b = b.date() if isinstance(b, datetime) else b
    return (b - a).days


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": _len,
    "lower": _lower,
    "upper": _upper,
    "str": _str,
    "int": _int,
    "float": _float,
    "abs": _abs,
    "min": _min,
    "max": _max,
    "any": _any,
    "all": _all,
    "contains": _contains,
    "days_between": _days_between,
}
"""Functions an expression may call (positional arguments only):

* ``len(x)``: length of a string, list or dict (``len(None)`` is an error).
* ``lower(s)``, ``upper(s)``: the string in lower/upper case.
* ``str(x)``: a number, string, bool, date or None as text (not lists or dicts).
* ``int(x)``, ``float(x)``: Python conversions (``int('x')`` is an error).
* ``abs(x)``: absolute value.
* ``min(a, b, ...)``, ``max(a, b, ...)``: smallest/largest argument, or of one list.
* ``any(xs)``, ``all(xs)``: whether any/all items of a list are true.
* ``contains(container, item)``: ``item in container``, but False when the
  container is None (a missing field); substring test for strings, key test for dicts.
* ``days_between(start, end)``: whole days from start to end (negative if end
  is earlier), floored like ``timedelta.days``. Each argument is a date, a
  datetime or an ISO-8601 string; a date paired with a datetime compares the
  calendar dates.
"""
