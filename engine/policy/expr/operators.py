"""What compiled expressions do at evaluation: reading fields and items (missing data is None),
bounded `+` and `*`, and the operator tables the compiler picks from."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

from engine.exceptions import ExpressionError

MAX_SEQUENCE_LENGTH = 100_000
"""Longest string/list/tuple that ``*`` or ``+`` may build at evaluation (for ``*``,
items of nested lists count too)."""


def type_name(x: Any) -> str:
    return "None" if x is None else type(x).__name__


def get_attr(value: Any, attr: str, col: int) -> Any:
    if isinstance(value, Mapping):
        return value.get(attr)
    if value is None:
        return None
    raise ExpressionError(f"cannot read field '{attr}' of a {type_name(value)} value", col)


def subscript(value: Any, key: Any, col: int) -> Any:
    if isinstance(value, Mapping):
        try:
            return value.get(key)
        except TypeError:
            raise ExpressionError(f"cannot use a {type_name(key)} as a key", col) from None
    if value is None:
        return None
    if isinstance(value, (list, tuple, str)):
        if isinstance(key, slice):
            try:
                return value[key]
            except (TypeError, ValueError) as e:
                raise ExpressionError(f"bad slice: {e}", col) from None
        if not isinstance(key, int):
            raise ExpressionError(f"cannot index a {type_name(value)} with a {type_name(key)}", col)
        try:
            return value[key]
        except IndexError:
            return None
    raise ExpressionError(f"cannot index a {type_name(value)} value", col)


_SEQ = (str, list, tuple)


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, _SEQ) and isinstance(b, _SEQ) and len(a) + len(b) > MAX_SEQUENCE_LENGTH:
        raise OverflowError(f"result longer than {MAX_SEQUENCE_LENGTH}")
    return a + b


def _size(x: Any, budget: int) -> int:
    """Length of `x` counting the items of nested lists/tuples too; stops once over `budget`."""
    n = len(x)
    if isinstance(x, str) or n > budget:
        return n
    for item in x:
        if isinstance(item, (list, tuple)):
            n += _size(item, budget - n)
            if n > budget:
                break
    return n


def _mul(a: Any, b: Any) -> Any:
    # Nested items count, so [[1] * 1000] * 1000 cannot build a million-item value.
    seq, n = (a, b) if isinstance(a, _SEQ) else (b, a)
    if isinstance(seq, _SEQ) and isinstance(n, int) and n > 0:
        if _size(seq, MAX_SEQUENCE_LENGTH // n) * n > MAX_SEQUENCE_LENGTH:
            raise OverflowError(f"result longer than {MAX_SEQUENCE_LENGTH}")
    return a * b


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str):
        raise TypeError("'%' formatting of strings is not supported")
    return a % b


def _in(a: Any, b: Any) -> bool:
    return a in b


def _not_in(a: Any, b: Any) -> bool:
    return a not in b


BINOPS: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", _add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", _mul),
    ast.Div: ("/", operator.truediv),
    ast.FloorDiv: ("//", operator.floordiv),
    ast.Mod: ("%", _mod),
}
CMPOPS: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.In: ("in", _in),
    ast.NotIn: ("not in", _not_in),
    ast.Is: ("is", operator.is_),
    ast.IsNot: ("is not", operator.is_not),
}
RUNTIME_ERRORS = (TypeError, ValueError, ArithmeticError)
