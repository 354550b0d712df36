"""Parsing an expression: the source's limits, Python's parser with the language's error messages,
and the `Expression` it yields, ready to evaluate any number of times."""

from __future__ import annotations

import ast
import warnings
from collections.abc import Mapping
from typing import Any

from engine.exceptions import ExpressionError
from engine.policy.expr.compiler import Compiler, Fn
from engine.policy.expr.operators import type_name

MAX_SOURCE_LENGTH = 2000
"""Longest expression source accepted, in characters."""


class Expression:
    """A parsed, checked expression, ready to evaluate any number of times.

    Attributes:
        source: The expression text as written in the policy.
        names: The root references it reads, each a root name or ``root.field``
            (one level deep, e.g. ``{"fields.severity", "actor.party", "now"}``);
            ``root['key']`` with a literal key counts as ``root.key``.
    """

    __slots__ = ("source", "names", "_fn")

    def __init__(self, source: str, names: frozenset[str], fn: Fn):
        self.source = source
        self.names = names
        self._fn = fn

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """Evaluate against `context`, which maps root names to their values.

        Raises:
            ExpressionError: On a runtime error (type mismatch, division by zero,
                oversized result), with `col` at the failing operation.
        """
        try:
            return self._fn(context)
        except ExpressionError:
            raise
        except RecursionError:
            raise ExpressionError("value nested too deeply to evaluate") from None
        except Exception as e:  # safety net, e.g. a context Mapping that raises
            raise ExpressionError(f"cannot evaluate: {e}") from None

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def parse(source: str, allowed: Mapping[str, frozenset[str] | None]) -> Expression:
    """Parse and check `source`, compiling it for fast evaluation.

    Args:
        source: The expression text.
        allowed: Each root name the expression may use, mapped to the field
            names allowed directly below it, or None for any field. Deeper
            levels (``event.data.x``) are never checked.

    Raises:
        ExpressionError: For syntax errors, refused constructs, unknown names or
            fields, and over-long or over-deep expressions; `col` is the 0-based
            character offset of the problem in `source`.
    """
    if not isinstance(source, str):
        raise ExpressionError(f"expression must be a string, not {type_name(source)}")
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionError(f"expression is too long ({len(source)} characters; at most {MAX_SOURCE_LENGTH})", MAX_SOURCE_LENGTH)
    if "\0" in source:
        raise ExpressionError("invalid syntax: null character", source.index("\0"))
    if not source.strip():
        raise ExpressionError("empty expression", 0)
    text = source.replace("\r", " ").replace("\n", " ")
    lead = len(text) - len(text.lstrip())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. invalid escape sequences are errors, whatever the global filters
            tree = ast.parse(text[lead:], mode="eval")
    except SyntaxError as e:
        message = e.msg.replace("'==' or ':='", "'=='").replace(" (detected at line 1)", "")
        if not e.offset:  # Python reports an unexpected end of input at offset 0
            col = len(source.rstrip())
            message = "invalid syntax: unexpected end of expression" if message == "invalid syntax" else message
        else:
            col = lead + e.offset - 1
        if not message.startswith("invalid syntax"):
            message = f"invalid syntax: {message}"
        raise ExpressionError(message, min(max(col, 0), len(source))) from None
    except (RecursionError, MemoryError):
        raise ExpressionError("expression is too complex", 0) from None
    return Expression(source, *Compiler(text, lead, allowed).run(tree))
