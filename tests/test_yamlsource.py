"""Tests for engine.policy.yamlsource: safe loading, positions and clear error locations."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from engine.exceptions import PolicyError, PolicyProblem
from engine.policy.yamlsource import MAX_FILE_BYTES, Document, load_document


def write(tmp_path: Path, content: str | bytes, name: str = "policy.yaml") -> Path:
    """Write `content` (text as UTF-8) to a file under tmp_path and return its path."""
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def problems(tmp_path: Path, content: str | bytes) -> list[PolicyProblem]:
    """Load `content`, expecting failure, and return the problems reported for it."""
    with pytest.raises(PolicyError) as info:
        load_document(write(tmp_path, content), display="p.yaml")
    return info.value.problems


def only_problem(tmp_path: Path, content: str | bytes) -> tuple[int, int, str]:
    """Load `content`, expecting exactly one problem, and return its (line, col, message)."""
    [problem] = problems(tmp_path, content)
    assert problem.file == "p.yaml"
    return problem.line, problem.col, problem.message


NESTED = """\
name: demo
states:
  draft:
    on:
      submit: {to: review}
  review:
    notify:
      - a@example.org
      - b@example.org
"""


def test_positions_of_nested_keys_and_list_items(tmp_path):
    """Value and key positions are 1-based for nested mappings, flow mappings and list items."""
    doc = load_document(write(tmp_path, NESTED))
    assert doc.file == str(tmp_path / "policy.yaml")
    assert doc.positions[()] == (1, 1)
    assert doc.positions[("name",)] == (1, 7)
    assert doc.positions[("states", "__key__")] == (2, 1)
    assert doc.positions[("states", "draft", "on", "__key__")] == (4, 5)
    assert doc.positions[("states", "draft", "on", "submit")] == (5, 15)
    assert doc.positions[("states", "draft", "on", "submit", "to")] == (5, 20)
    assert doc.positions[("states", "review", "notify", 0)] == (8, 9)
    assert doc.positions[("states", "review", "notify", 1)] == (9, 9)
    assert doc.data["states"]["review"]["notify"] == ["a@example.org", "b@example.org"]


def test_where_skips_pydantic_extra_loc_components(tmp_path):
    """where() follows the known path, skips union tags and validator names, and falls back."""
    doc = load_document(write(tmp_path, NESTED), display="shown.yaml")
    loc = ("states", "draft", "function-after[check(), State]", "on", "submit", "Transition", "to")
    assert doc.where(loc) == (5, 20)
    assert doc.where(("states", "review", "notify", 1, "str")) == (9, 9)
    assert doc.where(("states", "draft", "[key]")) == (3, 3)
    assert doc.where(("states", "missing", "on")) == (3, 3)
    assert doc.where(("nothing", "here")) == (1, 1)
    assert doc.problem(("states", "draft", "on"), "bad") == PolicyProblem("shown.yaml", 5, 7, "bad")
    assert Document("f", None, {}).where(("a",)) == (1, 1)


def test_duplicate_keys_are_reported_at_the_second_key(tmp_path):
    """Each duplicate key is reported at its own line, naming where the first one was."""
    found = problems(tmp_path, "a: 1\nb:\n  x: 1\n  x: 2\na: 3\n")
    assert [(p.line, p.col, p.message) for p in found] == [
        (4, 3, "duplicate key 'x' (first defined at line 3)"),
        (5, 1, "duplicate key 'a' (first defined at line 1)"),
    ]


def test_tab_indentation_is_reported_at_its_line(tmp_path):
    """A tab used for indentation gets a clear message at the tab's line and column."""
    assert only_problem(tmp_path, "a:\n  b: 1\n\tc: 2\n") == (3, 1, "tab character used for indentation; use spaces")
    assert only_problem(tmp_path, "a:\n\tb: 1\n")[:2] == (2, 1)


def test_syntax_errors_are_located_with_context(tmp_path):
    """Other YAML syntax errors keep PyYAML's problem text, located at its mark, plus context."""
    line, col, message = only_problem(tmp_path, 'a: 1\nb: "open\n')
    assert (line, col) == (3, 1)
    assert message == "found unexpected end of stream (while scanning a quoted scalar at line 2)"


def test_invalid_utf8_is_located(tmp_path):
    """Bytes that are not UTF-8 are reported at the line and column where they occur."""
    line, col, message = only_problem(tmp_path, "a: 1\nb: Hà".encode() + b"\xff\n")
    assert (line, col) == (2, 6)
    assert message.startswith("file is not valid UTF-8: ")


def test_utf8_bom_and_vietnamese_text_round_trip(tmp_path):
    """A BOM is accepted, and Vietnamese text comes back unchanged with character-based columns."""
    text = "tên: Sở Tài chính\nghi_chú: \"Hồ sơ đã được phê duyệt\"\n"
    doc = load_document(write(tmp_path, b"\xef\xbb\xbf" + text.encode("utf-8")))
    assert doc.data == {"tên": "Sở Tài chính", "ghi_chú": "Hồ sơ đã được phê duyệt"}
    assert doc.positions[("tên",)] == (1, 6)
    assert doc.positions[("ghi_chú",)] == (2, 10)


@pytest.mark.parametrize("content", ["", "# only a comment\n\n# and another\n"])
def test_empty_file(tmp_path, content):
    """A file with no content, or only comments, is reported as empty at 1:1."""
    assert only_problem(tmp_path, content) == (1, 1, "file is empty")


def test_oversized_file(tmp_path):
    """A file over MAX_FILE_BYTES is refused at 1:1."""
    content = "a: " + "x" * MAX_FILE_BYTES + "\n"
    assert only_problem(tmp_path, content) == (1, 1, f"file is larger than {MAX_FILE_BYTES} bytes")


def test_alias_bomb_is_refused(tmp_path):
    """The classic nine-level "billion laughs" file is refused at its first collection alias."""
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=False):
        levels.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    found = problems(tmp_path, "\n".join(levels) + "\n")
    assert found[0].message == "aliases to mappings or lists are not allowed"
    assert (found[0].line, found[0].col) == (2, 8)


def test_scalar_aliases_are_allowed(tmp_path):
    """An alias to a scalar is expanded; its position is the anchor's."""
    doc = load_document(write(tmp_path, "a: &limit 10\nb: *limit\n"))
    assert doc.data == {"a": 10, "b": 10}
    assert doc.positions[("b",)] == (1, 4)


def test_yaml_1_1_quirks_stay_strings(tmp_path):
    """`on`/`off`/`yes`/`no`/`y`/`n`, leading-zero and base-60 numbers stay strings; true, ints, dates load."""
    doc = load_document(
        write(tmp_path, "on: yes\nOff: N\ny: NO\ncode: 007\nat: 10:30\nok: true\nn: 12\nf: 1.5\nday: 2025-05-02\nnone: ~\n")
    )
    assert doc.data == {
        "on": "yes", "Off": "N", "y": "NO", "code": "007", "at": "10:30",
        "ok": True, "n": 12, "f": 1.5, "day": datetime.date(2025, 5, 2), "none": None,
    }


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("a: !!python/object/apply:os.system [echo]\n", (1, 4, "tag '!!python/object/apply:os.system' is not allowed")),
        ("a: !custom x\n", (1, 4, "tag '!custom' is not allowed")),
        ("? [a, b]\n: 1\n", (1, 3, "mapping keys must be plain values, not mappings or lists")),
        ("due: 2025-02-30\n", (1, 6, "'2025-02-30' is not a valid date or date-time (day is out of range for month)")),
    ],
)
def test_unsafe_or_invalid_values_are_refused(tmp_path, content, expected):
    """Unsafe tags, complex keys and impossible dates are problems located at the node."""
    assert only_problem(tmp_path, content) == expected


def test_missing_file_is_a_problem(tmp_path):
    """A file that cannot be read is a PolicyProblem, not an OSError."""
    with pytest.raises(PolicyError) as info:
        load_document(tmp_path / "absent.yaml")
    assert info.value.problems[0].message.startswith("cannot read file: ")
