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

Modules: `parser` (source text to an `Expression`), `compiler` (the syntax whitelist, syntax
tree to closures), `operators` (what the closures do at evaluation), `functions` (`FUNCTIONS`).
"""

from engine.policy.expr.compiler import MAX_DEPTH
from engine.policy.expr.functions import FUNCTIONS
from engine.policy.expr.operators import MAX_SEQUENCE_LENGTH
from engine.policy.expr.parser import MAX_SOURCE_LENGTH, Expression, parse

__all__ = ["Expression", "FUNCTIONS", "parse", "MAX_SOURCE_LENGTH", "MAX_DEPTH", "MAX_SEQUENCE_LENGTH"]
