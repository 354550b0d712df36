"""Tests for engine.policy.expr: the policy "when" expression language."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from engine.exceptions import ExpressionError
from engine.policy.expr import FUNCTIONS, MAX_DEPTH, MAX_SOURCE_LENGTH, Expression, parse

ALLOWED = {
    "fields": frozenset({"severity", "requester", "tags", "score", "meta", "due", "nothing"}),
    "event": None,
    "actor": frozenset({"party", "role", "person"}),
    "now": frozenset(),
}

CONTEXT = {
    "fields": {
        "severity": 4,
        "requester": "Bob",
        "tags": ["urgent", "road"],
        "score": 2.5,
        "meta": {"k": "v"},
        "due": "2024-03-10",
    },
    "event": {"kind": "submitted", "data": {"x": 1}},
    "actor": {"party": "police", "role": "officer"},
    "now": datetime(2024, 3, 1, 12, 0),
}


def ev(source: str, context: dict | None = None):
    """Parse `source` with ALLOWED and evaluate it against CONTEXT (or `context`)."""
    return parse(source, ALLOWED).evaluate(CONTEXT if context is None else context)


def refused(source: str) -> ExpressionError:
    """Return the ExpressionError that parsing `source` raises."""
    with pytest.raises(ExpressionError) as info:
        parse(source, ALLOWED)
    return info.value


EVAL_CASES = [
    ("'abc'", "abc", "str"),
    ('"a" "b"', "ab", "str-concat-literals"),
    ("42", 42, "int"),
    ("2.5", 2.5, "float"),
    ("True", True, "True"),
    ("False", False, "False"),
    ("None", None, "None"),
    ("true", True, "alias-true"),
    ("false", False, "alias-false"),
    ("null", None, "alias-null"),
    ("[1, 'a']", [1, "a"], "list"),
    ("(1, 2)", (1, 2), "tuple"),
    ("[]", [], "empty-list"),
    ("fields.severity", 4, "dot"),
    ("event.data.x", 1, "dot-nested-any"),
    ("fields.meta.k", "v", "dot-below-checked-level"),
    ("fields['requester']", "Bob", "subscript-key"),
    ("fields.tags[0]", "urgent", "subscript-index"),
    ("fields.tags[-1]", "road", "subscript-negative"),
    ("fields.requester[1:]", "ob", "slice"),
    ("fields.tags[::-1]", ["road", "urgent"], "slice-step"),
    ("1 + 2", 3, "add"),
    ("'a' + 'b'", "ab", "add-str"),
    ("7 - 10", -3, "sub"),
    ("3 * 4", 12, "mul"),
    ("'ab' * 2", "abab", "mul-str"),
    ("7 / 2", 3.5, "div"),
    ("7 // 2", 3, "floordiv"),
    ("7 % 4", 3, "mod"),
    ("-fields.severity", -4, "neg"),
    ("+2", 2, "pos"),
    ("not fields.severity", False, "not"),
    ("fields.severity >= 3 and actor.party", "police", "and-returns-operand"),
    ("0 and 1 / 0", 0, "and-short-circuit"),
    ("fields.severity > 9 or 'fallback'", "fallback", "or-returns-operand"),
    ("1 or 1 / 0", 1, "or-short-circuit"),
    ("fields.severity == 4", True, "eq"),
    ("fields.severity != 4", False, "ne"),
    ("1 < fields.severity <= 4", True, "chained-true"),
    ("1 < fields.severity < 3", False, "chained-false"),
    ("3 > 2 > 2", False, "chained-third"),
    ("'urgent' in fields.tags", True, "in"),
    ("'x' not in fields.tags", True, "not-in"),
    ("'o' in fields.requester", True, "in-substring"),
    ("actor.person is None", True, "is-none"),
    ("actor.party is not null", True, "is-not-alias"),
    ("'big' if fields.severity > 3 else 'small'", "big", "ifexp"),
    ("'a' == 1", False, "eq-mixed-types"),
    ("len(fields.tags)", 2, "len"),
    ("lower(fields.requester)", "bob", "lower"),
    ("upper(actor.party)", "POLICE", "upper"),
    ("str(fields.severity)", "4", "str"),
    ("int('12')", 12, "int"),
    ("float('1.5')", 1.5, "float"),
    ("abs(-3)", 3, "abs"),
    ("min(3, 1, 2)", 1, "min-args"),
    ("max(fields.tags)", "urgent", "max-list"),
    ("any([0, fields.severity])", True, "any"),
    ("all([1, 0])", False, "all"),
    ("contains(fields.tags, 'road')", True, "contains"),
    ("contains(fields.nothing, 'road')", False, "contains-none"),
    ("contains(fields.meta, 'k')", True, "contains-dict-key"),
    ("days_between(now, fields.due)", 9, "days-between-datetime-and-iso-date"),
    ("days_between('2024-03-02T00:00', '2024-03-01T12:00')", -1, "days-between-floored"),
    ("\n  fields.severity\n  > 3\n", True, "multiline-and-leading-space"),
]


@pytest.mark.parametrize(("source", "expected"), [c[:2] for c in EVAL_CASES], ids=[c[2] for c in EVAL_CASES])
def test_evaluates_each_construct(source, expected):
    """Each supported construct evaluates to its Python value."""
    assert ev(source) == expected
    assert type(ev(source)) is type(expected)


MISSING_CASES = [
    ("fields.nothing", "missing-key"),
    ("event.nothing.deeper", "missing-nested"),
    ("fields['nothing']", "missing-subscript-key"),
    ("fields.tags[99]", "index-out-of-range"),
    ("fields.nothing[0]", "subscript-on-none"),
    ("actor.person", "missing-allowed-field"),
]


@pytest.mark.parametrize("source", [c[0] for c in MISSING_CASES], ids=[c[1] for c in MISSING_CASES])
def test_missing_data_is_none(source):
    """Missing keys, indexes and anything read through None evaluate to None."""
    assert ev(source) is None


def test_missing_root_is_none():
    """A root name absent from the context evaluates to None, and so does a field below it."""
    assert ev("fields.severity", {}) is None
    assert ev("event", {}) is None


def test_context_may_be_any_mapping():
    """Values that are read-only Mappings, not dicts, are read with dot syntax too."""
    from types import MappingProxyType

    ctx = MappingProxyType({"fields": MappingProxyType({"severity": 2})})
    assert ev("fields.severity * 2", ctx) == 4


def test_names_lists_root_references():
    """`names` holds each root used and each root.field read, one level deep."""
    e = parse("fields.severity > 2 and actor.party == 'x' and now and event.data.x and fields['tags']", ALLOWED)
    assert e.names == frozenset({"fields.severity", "actor.party", "now", "event.data", "fields.tags"})
    assert parse("1 + len([true, null])", ALLOWED).names == frozenset()
    assert parse("event[actor.role]", ALLOWED).names == frozenset({"event", "actor.role"})


def test_expression_keeps_source():
    """The parsed expression keeps its source text and shows it in repr."""
    e = parse("fields.severity", ALLOWED)
    assert isinstance(e, Expression)
    assert e.source == "fields.severity"
    assert "fields.severity" in repr(e)


def test_unknown_name_is_reported_with_col():
    """An unknown root name is refused with the known names and its 0-based column."""
    err = refused("1 + feilds.severity")
    assert str(err) == "unknown name 'feilds'; known: actor, event, fields, now"
    assert err.col == 4


def test_unknown_field_is_reported_with_col():
    """An unknown field of a root is refused with the known fields, the column pointing at the field."""
    err = refused("fields.severty > 2")
    assert str(err) == "unknown field 'severty' of 'fields'; known: due, meta, nothing, requester, score, severity, tags"
    assert err.col == 7


def test_unknown_subscript_field_is_reported_with_col():
    """A literal subscript key on a root is checked like a dot field."""
    err = refused("fields['severty']")
    assert str(err).startswith("unknown field 'severty' of 'fields'")
    assert err.col == 7


def test_field_of_root_without_fields_is_refused():
    """A root allowed with no fields refuses any field, saying so."""
    err = refused("now.year")
    assert str(err) == "unknown field 'year' of 'now'; 'now' has no fields"
    assert err.col == 4


def test_column_counts_characters_not_bytes():
    """Columns are character offsets even after non-ASCII text."""
    assert refused("'éé' + feilds").col == 7
    assert refused("'éé' + fields.severty").col == 14


SYNTAX_CASES = [
    ("fields.severity >", 17, "dangling-operator"),
    ("1 $ 2", 2, "bad-character"),
    ("(1 + 2", 0, "unclosed-paren"),
    ("a = 1", 2, "assignment"),
    ("1; 2", 1, "two-statements"),
    ("  1 +* 2", 5, "offset-after-leading-space"),
]


@pytest.mark.parametrize(("source", "col"), [c[:2] for c in SYNTAX_CASES], ids=[c[2] for c in SYNTAX_CASES])
def test_syntax_error_has_col(source, col):
    """A syntax error says 'invalid syntax' and locates the problem."""
    err = refused(source)
    assert str(err).startswith("invalid syntax")
    assert err.col == col


def test_empty_source_is_refused():
    """A blank expression is refused as empty."""
    assert str(refused("  ")) == "empty expression"


def test_invalid_escape_is_syntax_error():
    """An invalid string escape is a syntax error whatever the warning filters are."""
    assert str(refused(r"'\d'")).startswith("invalid syntax")


FORBIDDEN_CASES = [
    ("__import__('os')", "calls to '__import__' are not allowed", "dunder-import"),
    ("().__class__", "field names starting with '_' are not allowed", "dunder-attribute"),
    ("event.__class__", "field names starting with '_' are not allowed", "dunder-on-root"),
    ("lambda: 1", "lambda is not allowed", "lambda"),
    ("[x for x in y]", "comprehensions are not allowed", "list-comprehension"),
    ("any(x for x in fields.tags)", "comprehensions are not allowed", "generator"),
    ("open('f')", "calls to 'open' are not allowed", "open"),
    ("a := 1", "invalid syntax", "walrus-bare"),
    ("(fields := 1)", "assignment expressions (:=) are not allowed", "walrus-parenthesized"),
    ("2 ** 999999", "the '**' operator is not allowed", "power"),
    ("f'{fields}'", "f-strings are not allowed", "f-string"),
    ("len(*fields.tags)", "starred expressions are not allowed", "starred"),
    ("{'a': 1}", "dict literals are not allowed", "dict"),
    ("{1}", "set literals are not allowed", "set"),
    ("fields.requester.upper()", "only these functions may be called", "method-call"),
    ("len(x=fields.tags)", "keyword arguments are not allowed", "keyword-arg"),
    ("len(1, 2)", "wrong number of arguments to len()", "arity"),
    ("1 << 2", "the '<<' operator is not allowed", "shift"),
    ("~1", "the '~' operator is not allowed", "invert"),
    ("b'x'", "bytes literals are not allowed", "bytes"),
    ("1j", "complex literals are not allowed", "complex"),
    ("fields.severity is 4", "'is' may only compare with None, True or False", "is-number"),
    ("len", "function 'len' must be called", "bare-function"),
    ("fields.tags[0].__len__", "field names starting with '_' are not allowed", "dunder-deep"),
]


@pytest.mark.parametrize(("source", "message"), [c[:2] for c in FORBIDDEN_CASES], ids=[c[2] for c in FORBIDDEN_CASES])
def test_forbidden_construct_is_refused(source, message):
    """Each construct outside the whitelist is refused at parse time with a clear message."""
    assert str(refused(source)).startswith(message)


def test_forbidden_construct_col_points_at_it():
    """The column of a refused construct points at the construct, not at the start."""
    assert refused("fields.severity > 1 and open('f')").col == 24
    assert refused("1 + (lambda: 1)").col == 5
    assert refused("fields.x.__class__").col == 9


def test_source_length_is_capped():
    """Sources longer than MAX_SOURCE_LENGTH are refused before parsing."""
    assert str(refused("1" * (MAX_SOURCE_LENGTH + 1))).startswith("expression is too long")


def test_nesting_depth_is_capped():
    """Trees deeper than MAX_DEPTH are refused, shallower ones accepted."""
    assert parse("+".join(["1"] * MAX_DEPTH), ALLOWED).evaluate({}) == MAX_DEPTH
    assert str(refused("+".join(["1"] * (MAX_DEPTH + 2)))).startswith("expression is nested too deeply")


def test_parser_recursion_is_refused():
    """An input that exhausts the Python parser is refused as too complex, not crashing."""
    assert str(refused("-" * 1900 + "1")) in ("expression is too complex", f"expression is nested too deeply (more than {MAX_DEPTH} levels)")


def test_non_string_source_is_refused():
    """A non-string source (e.g. a YAML boolean) raises ExpressionError, not TypeError."""
    with pytest.raises(ExpressionError, match="must be a string"):
        parse(True, ALLOWED)  # type: ignore[arg-type]


RUNTIME_CASES = [
    ("actor.party < 1", "cannot compare str < int", "compare-str-int"),
    ("fields.nothing > 3", "cannot compare None > int", "compare-none"),
    ("1 < 2 < 'x'", "cannot compare int < str", "chained"),
    ("1 in fields.severity", "cannot test int in int", "in-non-container"),
    ("fields.severity / 0", "division by zero in '/'", "div-zero"),
    ("fields.severity % 0", "division by zero in '%'", "mod-zero"),
    ("fields.requester + 1", "cannot apply '+' to str and int", "add-str-int"),
    ("-fields.requester", "cannot apply unary '-' to str", "neg-str"),
    ("'%s' % fields.requester", "cannot apply '%' to str and str", "percent-format"),
    ("'x' * 100001", "'*' result too large", "mul-cap"),
    ("fields.tags * 60000", "'*' result too large", "mul-list-cap"),
    ("[[1] * 1000] * 1000", "'*' result too large", "mul-nested-cap"),
    ("fields.tags + 'x'", "cannot apply '+' to list and str", "add-type"),
    ("'x' * 60000 + 'y' * 60000", "'+' result too large", "add-cap"),
    ("str(fields.tags)", "str() failed: expected a number", "str-list"),
    ("min([])", "min() failed", "min-empty"),
    ("len(fields.nothing)", "len() failed", "len-none"),
    ("int('abc')", "int() failed", "int-bad"),
    ("lower(fields.severity)", "lower() failed: expected a string, got int", "lower-int"),
    ("days_between('x', now)", "days_between() failed: not an ISO-8601", "days-between-bad"),
    ("fields.severity.x", "cannot read field 'x' of a int value", "dot-on-int"),
    ("fields.severity[0]", "cannot index a int value", "index-int"),
    ("fields.tags['a']", "cannot index a list with a str", "index-list-with-str"),
    ("fields.meta[[1]]", "cannot use a list as a key", "unhashable-key"),
    ("fields.tags[::0]", "bad slice", "zero-step"),
]


@pytest.mark.parametrize(("source", "message"), [c[:2] for c in RUNTIME_CASES], ids=[c[2] for c in RUNTIME_CASES])
def test_runtime_error_raises_expression_error(source, message):
    """Runtime type and arithmetic errors surface as ExpressionError with a clear message."""
    e = parse(source, ALLOWED)
    with pytest.raises(ExpressionError) as info:
        e.evaluate(CONTEXT)
    assert str(info.value).startswith(message)


def test_runtime_error_col_points_at_operation():
    """A runtime error's column points at the failing operation."""
    with pytest.raises(ExpressionError) as info:
        ev("fields.severity > 1 and len(fields.nothing)")
    assert info.value.col == 24


def test_context_mapping_failure_is_wrapped():
    """An exception raised by a caller's Mapping becomes ExpressionError."""

    class Broken(dict):
        def get(self, key, default=None):
            raise RuntimeError("boom")

    with pytest.raises(ExpressionError, match="boom"):
        ev("fields", Broken())


def test_days_between_accepts_dates():
    """days_between takes dates, datetimes and ISO strings and counts whole days."""
    assert FUNCTIONS["days_between"](date(2024, 1, 1), date(2024, 1, 31)) == 30
    assert FUNCTIONS["days_between"](datetime(2024, 1, 1, 23), date(2024, 1, 2)) == 1
    assert FUNCTIONS["days_between"]("2024-01-01T00:00Z", "2024-01-03T00:00+00:00") == 2


def test_expression_is_reusable():
    """One parsed expression evaluates against many contexts independently."""
    e = parse("fields.severity >= 3", ALLOWED)
    assert [e.evaluate({"fields": {"severity": s}}) for s in (1, 3, 5)] == [False, True, True]
