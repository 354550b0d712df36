"""The "when" expression language of policies: parse once at load time, evaluate many times.

Guards and conditions in policy YAML are small Python-like expressions such as
``fields.severity >= 3 and actor.party in ['police', 'fire']``. `parse` checks the
source against a whitelist of syntax and the names a policy may refer to, then
compiles the syntax tree into nested closures; `Expression.evaluate` runs them.
User text is never passed to ``eval``, ``exec`` or ``compile``.

Language:
    * literals: strings, ints, floats, ``True/False/None`` (also ``true/false/null``),
      lists ``[a, b]`` and tuples ``(a, b)``;
    * ``and``, ``or`` (short-circuit, Python semantics: they return an operand),
      ``not``, ``a if c else b``;
    * comparisons ``== != < <= > >= in, not in``, chained (``1 < x <= 5``);
      ``is`` / ``is not`` only against ``None``, ``True`` or ``False``;
    * arithmetic ``+ - * / // %`` and unary ``-``/``+`` (``**`` is refused);
    * names from the ``allowed`` mapping, dot access into their dict values
      (``fields.severity``), subscripts ``x[0]``, ``x['k']``, ``x[1:3]``;
    * calls to the functions in `FUNCTIONS`, positional arguments only.

Missing data is None: an absent root name, an absent dict key (by dot or
subscript), a list index out of range, and any dot access or subscript on None.
Everything else follows Python: ``None == 1`` is False, but ``None < 1`` (like
``'a' < 1``, ``1 / 0``, ``len(None)``) raises `ExpressionError` at evaluation.

Line breaks in the source count as spaces, so YAML block scalars work.
"""

from __future__ import annotations

import ast
import inspect
import operator
import warnings
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from engine.exceptions import ExpressionError

__all__ = ["Expression", "FUNCTIONS", "parse", "MAX_SOURCE_LENGTH", "MAX_DEPTH", "MAX_SEQUENCE_LENGTH"]

MAX_SOURCE_LENGTH = 2000
"""Longest expression source accepted, in characters."""
MAX_DEPTH = 100
"""Deepest syntax tree accepted (``1+1+...`` nests one level per ``+``)."""
MAX_SEQUENCE_LENGTH = 100_000
"""Longest string/list/tuple that ``*`` or ``+`` may build at evaluation (for ``*``,
items of nested lists count too)."""

Fn = Callable[[Mapping[str, Any]], Any]


# --------------------------------------------------------------------------- functions


def _len(x: Any) -> int:
    return len(x)


def _lower(s: str) -> str:
    if not isinstance(s, str):
        raise TypeError(f"expected a string, got {_tname(s)}")
    return s.lower()


def _upper(s: str) -> str:
    if not isinstance(s, str):
        raise TypeError(f"expected a string, got {_tname(s)}")
    return s.upper()


def _str(x: Any) -> str:
    if x is not None and not isinstance(x, (str, int, float, date)):
        raise TypeError(f"expected a number, string, bool, date or None, got {_tname(x)}")
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
    raise TypeError(f"expected a date, datetime or ISO-8601 string, got {_tname(x)}")


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


# --------------------------------------------------------------------------- runtime helpers


def _tname(x: Any) -> str:
    return "None" if x is None else type(x).__name__


def _get_attr(value: Any, attr: str, col: int) -> Any:
    if isinstance(value, Mapping):
        return value.get(attr)
    if value is None:
        return None
    raise ExpressionError(f"cannot read field '{attr}' of a {_tname(value)} value", col)


def _subscript(value: Any, key: Any, col: int) -> Any:
    if isinstance(value, Mapping):
        try:
            return value.get(key)
        except TypeError:
            raise ExpressionError(f"cannot use a {_tname(key)} as a key", col) from None
    if value is None:
        return None
    if isinstance(value, (list, tuple, str)):
        if isinstance(key, slice):
            try:
                return value[key]
            except (TypeError, ValueError) as e:
                raise ExpressionError(f"bad slice: {e}", col) from None
        if not isinstance(key, int):
            raise ExpressionError(f"cannot index a {_tname(value)} with a {_tname(key)}", col)
        try:
            return value[key]
        except IndexError:
            return None
    raise ExpressionError(f"cannot index a {_tname(value)} value", col)


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


_BINOPS: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", _add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", _mul),
    ast.Div: ("/", operator.truediv),
    ast.FloorDiv: ("//", operator.floordiv),
    ast.Mod: ("%", _mod),
}
_CMPOPS: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
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
_RUNTIME_ERRORS = (TypeError, ValueError, ArithmeticError)

_ALIASES = {"true": True, "false": False, "null": None}

_REFUSED: dict[type, str] = {
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.FormattedValue: "f-strings are not allowed",
    ast.Starred: "starred expressions are not allowed",
    ast.Dict: "dict literals are not allowed",
    ast.Set: "set literals are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}
_REFUSED_OPS: dict[type, str] = {
    ast.Pow: "**",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.Invert: "~",
}


# --------------------------------------------------------------------------- public API


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
        raise ExpressionError(f"expression must be a string, not {_tname(source)}")
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
    return Expression(source, *_Compiler(text, lead, allowed).run(tree))


class _Compiler:
    """Checks a syntax tree against the whitelist and turns it into closures."""

    def __init__(self, text: str, lead: int, allowed: Mapping[str, frozenset[str] | None]):
        self.text = text
        self.lead = lead
        self.allowed = allowed
        self.names: set[str] = set()
        self.ascii = text.isascii()
        self.depth = 0

    def run(self, tree: ast.Expression) -> tuple[frozenset[str], Fn]:
        fn = self.node(tree.body)
        return frozenset(self.names), fn

    def col(self, node: ast.AST, byte_offset: int | None = None) -> int:
        """The 0-based character offset in the source of `node` (or of a byte offset)."""
        off = node.col_offset if byte_offset is None else byte_offset  # type: ignore[attr-defined]
        if not self.ascii:
            off = len(self.text[self.lead :].encode()[:off].decode(errors="ignore"))
        return self.lead + off

    def fail(self, message: str, node: ast.AST) -> ExpressionError:
        return ExpressionError(message, self.col(node))

    def node(self, node: ast.AST) -> Fn:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"expression is nested too deeply (more than {MAX_DEPTH} levels)", node)
        try:
            method = getattr(self, "c_" + type(node).__name__, None)
            if method is None:
                raise self.fail(_REFUSED.get(type(node), f"{type(node).__name__} expressions are not allowed"), node)
            return method(node)
        finally:
            self.depth -= 1

    # -- leaves

    def c_Constant(self, node: ast.Constant) -> Fn:
        value = node.value
        if value is not None and type(value) not in (str, int, float, bool):
            raise self.fail(f"{type(value).__name__} literals are not allowed", node)
        return lambda ctx: value

    def c_Name(self, node: ast.Name) -> Fn:
        name = node.id
        if name in _ALIASES and name not in self.allowed:
            value = _ALIASES[name]
            return lambda ctx: value
        if name not in self.allowed:
            if name in FUNCTIONS:
                raise self.fail(f"function '{name}' must be called, as in {name}(...)", node)
            raise self.fail(f"unknown name '{name}'; known: {', '.join(sorted(self.allowed))}", node)
        self.names.add(name)
        return lambda ctx: ctx.get(name)

    def check_field(self, root: str, field: str, col: int) -> None:
        known = self.allowed[root]
        if known is not None and field not in known:
            hint = f"known: {', '.join(sorted(known))}" if known else f"'{root}' has no fields"
            raise ExpressionError(f"unknown field '{field}' of '{root}'; {hint}", col)
        self.names.add(f"{root}.{field}")

    def c_Attribute(self, node: ast.Attribute) -> Fn:
        attr = node.attr
        attr_col = self.col(node, node.end_col_offset) - len(attr)
        if attr.startswith("_"):
            raise ExpressionError(f"field names starting with '_' are not allowed ('{attr}')", attr_col)
        base = node.value
        if isinstance(base, ast.Name) and base.id in self.allowed:
            root = base.id
            self.check_field(root, attr, attr_col)

            def root_field(ctx: Mapping[str, Any]) -> Any:
                value = ctx.get(root)
                if type(value) is dict:
                    return value.get(attr)
                return _get_attr(value, attr, attr_col)

            return root_field
        value_fn = self.node(base)
        return lambda ctx: _get_attr(value_fn(ctx), attr, attr_col)

    def c_Subscript(self, node: ast.Subscript) -> Fn:
        col = self.col(node)
        index = node.slice
        base = node.value
        if isinstance(base, ast.Name) and base.id in self.allowed and isinstance(index, ast.Constant) and isinstance(index.value, str):
            self.check_field(base.id, index.value, self.col(index))
            root = base.id

            def root_value(ctx: Mapping[str, Any], root: str = root) -> Any:
                return ctx.get(root)

            value_fn: Fn = root_value
        else:
            value_fn = self.node(base)
        key_fn = self.node(index)
        return lambda ctx: _subscript(value_fn(ctx), key_fn(ctx), col)

    def c_Slice(self, node: ast.Slice) -> Fn:
        parts = [None if p is None else self.node(p) for p in (node.lower, node.upper, node.step)]
        lo, hi, step = (p or (lambda ctx: None) for p in parts)
        return lambda ctx: slice(lo(ctx), hi(ctx), step(ctx))

    def c_List(self, node: ast.List) -> Fn:
        fns = [self.node(e) for e in node.elts]
        return lambda ctx: [f(ctx) for f in fns]

    def c_Tuple(self, node: ast.Tuple) -> Fn:
        fns = [self.node(e) for e in node.elts]
        return lambda ctx: tuple(f(ctx) for f in fns)

    # -- operators

    def c_BoolOp(self, node: ast.BoolOp) -> Fn:
        fns = [self.node(v) for v in node.values]
        if isinstance(node.op, ast.And):

            def and_(ctx: Mapping[str, Any]) -> Any:
                for f in fns:
                    value = f(ctx)
                    if not value:
                        return value
                return value

            return and_

        def or_(ctx: Mapping[str, Any]) -> Any:
            for f in fns:
                value = f(ctx)
                if value:
                    return value
            return value

        return or_

    def c_UnaryOp(self, node: ast.UnaryOp) -> Fn:
        if type(node.op) in _REFUSED_OPS:
            raise self.fail(f"the '{_REFUSED_OPS[type(node.op)]}' operator is not allowed", node)
        operand = self.node(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda ctx: not operand(ctx)
        minus = isinstance(node.op, ast.USub)
        op, name, col = (operator.neg, "-", self.col(node)) if minus else (operator.pos, "+", self.col(node))

        def unary(ctx: Mapping[str, Any]) -> Any:
            value = operand(ctx)
            try:
                return op(value)
            except TypeError:
                raise ExpressionError(f"cannot apply unary '{name}' to {_tname(value)}", col) from None

        return unary

    def c_BinOp(self, node: ast.BinOp) -> Fn:
        if type(node.op) not in _BINOPS:
            raise self.fail(f"the '{_REFUSED_OPS.get(type(node.op), '?')}' operator is not allowed", node)
        sym, op = _BINOPS[type(node.op)]
        left, right = self.node(node.left), self.node(node.right)
        col = self.col(node)

        def binop(ctx: Mapping[str, Any]) -> Any:
            a, b = left(ctx), right(ctx)
            try:
                return op(a, b)
            except ZeroDivisionError:
                raise ExpressionError(f"division by zero in '{sym}'", col) from None
            except OverflowError as e:
                raise ExpressionError(f"'{sym}' result too large: {e}", col) from None
            except _RUNTIME_ERRORS as e:
                raise ExpressionError(f"cannot apply '{sym}' to {_tname(a)} and {_tname(b)}: {e}", col) from None

        return binop

    def c_Compare(self, node: ast.Compare) -> Fn:
        col = self.col(node)
        operands = [node.left, *node.comparators]
        for i, cmp_op in enumerate(node.ops):
            if isinstance(cmp_op, (ast.Is, ast.IsNot)):
                pair = operands[i : i + 2]
                if not any(self.is_singleton(o) for o in pair):
                    raise self.fail("'is' may only compare with None, True or False; use '=='", node)
        fns = [self.node(o) for o in operands]
        ops = [_CMPOPS[type(o)] for o in node.ops]

        def fail(sym: str, a: Any, b: Any) -> ExpressionError:
            how = "test" if sym in ("in", "not in") else "compare"
            return ExpressionError(f"cannot {how} {_tname(a)} {sym} {_tname(b)}", col)

        if len(ops) == 1:
            (sym, op), left, right = ops[0], fns[0], fns[1]

            def compare(ctx: Mapping[str, Any]) -> Any:
                a, b = left(ctx), right(ctx)
                try:
                    return op(a, b)
                except TypeError:
                    raise fail(sym, a, b) from None

            return compare

        def chain(ctx: Mapping[str, Any]) -> Any:
            a = fns[0](ctx)
            for (sym, op), f in zip(ops, fns[1:], strict=False):
                b = f(ctx)
                try:
                    if not op(a, b):
                        return False
                except TypeError:
                    raise fail(sym, a, b) from None
                a = b
            return True

        return chain

    def is_singleton(self, node: ast.AST) -> bool:
        """Whether `node` is a literal None, True or False (or an alias of one)."""
        if isinstance(node, ast.Constant):
            return node.value is None or node.value is True or node.value is False
        return isinstance(node, ast.Name) and node.id in _ALIASES and node.id not in self.allowed

    def c_IfExp(self, node: ast.IfExp) -> Fn:
        test, body, orelse = self.node(node.test), self.node(node.body), self.node(node.orelse)
        return lambda ctx: body(ctx) if test(ctx) else orelse(ctx)

    def c_Call(self, node: ast.Call) -> Fn:
        func = node.func
        if not isinstance(func, ast.Name):
            raise self.fail(f"only these functions may be called: {', '.join(sorted(FUNCTIONS))}", node)
        name = func.id
        if name not in FUNCTIONS:
            raise self.fail(f"calls to '{name}' are not allowed; functions: {', '.join(sorted(FUNCTIONS))}", node)
        if node.keywords:
            raise self.fail(f"keyword arguments are not allowed in calls to '{name}'", node)
        impl = FUNCTIONS[name]
        try:
            inspect.signature(impl).bind(*node.args)
        except TypeError as e:
            raise self.fail(f"wrong number of arguments to {name}(): {e}", node) from None
        except ValueError:  # no signature available; checked when called
            pass
        args = [self.node(a) for a in node.args]
        col = self.col(node)

        def call(ctx: Mapping[str, Any]) -> Any:
            values = [a(ctx) for a in args]
            try:
                return impl(*values)
            except ExpressionError:
                raise
            except Exception as e:
                raise ExpressionError(f"{name}() failed: {e}", col) from None

        return call
