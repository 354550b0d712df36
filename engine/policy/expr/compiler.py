"""The expression compiler: checks a syntax tree against the whitelist of the language and the
names a policy may refer to, and turns it into nested closures."""

from __future__ import annotations

import ast
import inspect
import operator
from collections.abc import Callable, Mapping
from typing import Any

from engine.exceptions import ExpressionError
from engine.policy.expr.functions import FUNCTIONS
from engine.policy.expr.operators import BINOPS, CMPOPS, RUNTIME_ERRORS, get_attr, subscript, type_name

MAX_DEPTH = 100
"""Deepest syntax tree accepted (``1+1+...`` nests one level per ``+``)."""

Fn = Callable[[Mapping[str, Any]], Any]

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


class Compiler:
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
                return get_attr(value, attr, attr_col)

            return root_field
        value_fn = self.node(base)
        return lambda ctx: get_attr(value_fn(ctx), attr, attr_col)

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
        return lambda ctx: subscript(value_fn(ctx), key_fn(ctx), col)

    def c_Slice(self, node: ast.Slice) -> Fn:
        parts = [None if p is None else self.node(p) for p in (node.lower, node.upper, node.step)]
        lo, hi, step = (p or (lambda ctx: None) for p in parts)
        return lambda ctx: slice(lo(ctx), hi(ctx), step(ctx))

    def c_List(self, node: ast.List) -> Fn:
        fns = [self.node(e) for e in node.elts]
        if all(isinstance(e, ast.Constant) for e in node.elts):  # ['thuong', 'mat']: its items once, a new list each time
            items = tuple(f({}) for f in fns)
            return lambda ctx: list(items)
        return lambda ctx: [f(ctx) for f in fns]

    def c_Tuple(self, node: ast.Tuple) -> Fn:
        fns = [self.node(e) for e in node.elts]
        if all(isinstance(e, ast.Constant) for e in node.elts):
            value = tuple(f({}) for f in fns)
            return lambda ctx: value
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
                raise ExpressionError(f"cannot apply unary '{name}' to {type_name(value)}", col) from None

        return unary

    def c_BinOp(self, node: ast.BinOp) -> Fn:
        if type(node.op) not in BINOPS:
            raise self.fail(f"the '{_REFUSED_OPS.get(type(node.op), '?')}' operator is not allowed", node)
        sym, op = BINOPS[type(node.op)]
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
            except RUNTIME_ERRORS as e:
                raise ExpressionError(f"cannot apply '{sym}' to {type_name(a)} and {type_name(b)}: {e}", col) from None

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
        ops = [CMPOPS[type(o)] for o in node.ops]

        def fail(sym: str, a: Any, b: Any) -> ExpressionError:
            how = "test" if sym in ("in", "not in") else "compare"
            return ExpressionError(f"cannot {how} {type_name(a)} {sym} {type_name(b)}", col)

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
