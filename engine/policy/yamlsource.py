"""Safe, position-aware YAML loading of policy files: data plus the line:col of every node.

`load_document(path)` returns a `Document` whose `positions` map each key path
(a tuple of mapping keys and list indexes) to the 1-based (line, col) of its
value node; `path + ("__key__",)` holds the position of a mapping key itself.
Every mistake becomes a `PolicyProblem`, raised together in one `PolicyError`.

Decisions callers should know:

* Only `true`/`false` (or `True`, `TRUE`, ...) are booleans, as in YAML 1.2:
  `on`, `off`, `yes`, `no`, `y`, `n` (any case) stay strings. Integers are decimal without leading
  zeros, or `0x`/`0o`/`0b`; so `010`, `007` and `10:30` stay strings (YAML 1.1
  would make octal and base-60 numbers of them). `<<` and `=` are plain strings
  (no merge keys). Floats, nulls and dates (`2025-05-02` -> `datetime.date`)
  behave as usual.
* Aliases to scalars are allowed (their position is the anchor's); aliases to
  mappings or lists are refused, which rules out "billion laughs" expansion.
* Mapping keys must be scalars; duplicate keys are errors. Tags other than the
  standard scalar ones are refused. Nesting is limited to `MAX_DEPTH` levels.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol

import yaml
from yaml.nodes import Node, ScalarNode, SequenceNode

from engine.exceptions import PolicyError, PolicyProblem

MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 100

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_REPLACED = {_TAG + t for t in ("bool", "int", "float", "merge", "value")}
_STR, _SEQ, _MAP = _TAG + "str", _TAG + "seq", _TAG + "map"
_SCALAR_TAGS = {_TAG + t for t in ("null", "bool", "int", "float", "timestamp")}
_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """SafeLoader with YAML 1.2-like booleans and integers (see module docstring)."""

    yaml_implicit_resolvers = {
        ch: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED]
        for ch, resolvers in _Base.yaml_implicit_resolvers.items()
    }


def _int(loader: Any, node: ScalarNode) -> int:
    text = node.value.replace("_", "")
    try:
        return int(text, 0)
    except ValueError:  # leading zeros, only reachable through an explicit !!int tag
        return int(text, 10)


for _tag, _pattern, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^[-+]?(?:0|[1-9][0-9_]*|0x[0-9a-fA-F_]+|0o[0-7_]+|0b[01_]+)$", "-+0123456789"),
    ("float", r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""", "-+0123456789."),
):
    _Loader.add_implicit_resolver(_TAG + _tag, re.compile(_pattern, re.X), list(_first))
_Loader.add_constructor(_TAG + "int", _int)


class Document:
    """A loaded policy file: plain data and the position of every node in it.

    The positions are worked out when first asked for (a problem to place in the file), by
    reading its text again: a file without problems, the common case, never pays for them."""

    def __init__(self, file: str, data: Any, positions: dict[tuple, tuple[int, int]] | None = None, text: str = ""):
        self.file, self.data, self.text = file, data, text
        self._positions = positions

    def __repr__(self) -> str:
        return f"Document(file={self.file!r}, data={self.data!r})"

    @property
    def positions(self) -> dict[tuple, tuple[int, int]]:
        if self._positions is None:
            self._positions = _build(self.text, self.file, record=True).positions
        return self._positions

    def where(self, loc: tuple) -> tuple[int, int]:
        """Position of the deepest prefix of loc that is known (pydantic loc tuples may contain extra items such as union tags or 'function-after[...]'; skip components that are not in the path). Falls back to (1, 1).

        A pydantic "[key]" component maps to the position of the mapping key.
        """
        path: tuple = ()
        for part in loc:
            step = "__key__" if part == "[key]" else part
            if path + (step,) in self.positions:
                path += (step,)
        return self.positions.get(path, (1, 1))

    def problem(self, loc: tuple, message: str) -> PolicyProblem:
        """A PolicyProblem with `message`, located at `where(loc)`."""
        return PolicyProblem(self.file, *self.where(loc), message)


class DocumentLike(Protocol):
    """What the policy checks read of a loaded file: a `Document`, or a cached file's
    `engine.policy.cache.LazyDocument` (parsed only when a problem must be placed in it)."""

    @property
    def file(self) -> str: ...

    @property
    def data(self) -> Any: ...

    def where(self, loc: tuple) -> tuple[int, int]: ...

    def problem(self, loc: tuple, message: str) -> PolicyProblem: ...


def _short(tag: str) -> str:
    return tag.replace(_TAG, "!!", 1)


def _pos(mark: Any) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _position_in(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, col) of character `offset` in `text`."""
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


_NOWHERE = (1, 1)  # where problems are placed while positions are not recorded (a second pass places them)


class _Builder:
    """One pass over the composed node tree, building the data, and the positions with `record`
    (else each call's `path` is None)."""

    def __init__(self, loader: Any, file: str, text: str, record: bool = True):
        self.loader, self.file, self.text, self.record = loader, file, text, record
        self.positions: dict[tuple, tuple[int, int]] = {}
        self.problems: list[PolicyProblem] = []
        self.collections: set[int] = set()
        self.aliases_reported = False
        self.data: Any = None

    def fail(self, where: tuple[int, int], message: str) -> None:
        self.problems.append(PolicyProblem(self.file, *where, message))

    def build(self, node: Node, path: tuple | None, depth: int = 0) -> Any:
        if path is None:
            where = _NOWHERE
        else:
            mark = node.start_mark
            where = self.positions[path] = (mark.line + 1, mark.column + 1)
        if isinstance(node, ScalarNode):
            return node.value if node.tag == _STR else self.scalar(node, where)
        if id(node) in self.collections:  # the same node again: reached through an alias
            return self.refuse_collection_aliases()
        self.collections.add(id(node))
        if node.tag != (_SEQ if isinstance(node, SequenceNode) else _MAP):
            return self.fail(where, f"tag '{_short(node.tag)}' is not allowed")
        if depth >= MAX_DEPTH:
            return self.fail(where, f"nesting is deeper than {MAX_DEPTH} levels")
        if isinstance(node, SequenceNode):
            if path is None:
                return [self.build(item, None, depth + 1) for item in node.value]
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        result: dict = {}
        for key_node, value_node in node.value:
            key_where = _NOWHERE if path is None else _pos(key_node.start_mark)
            if key_node.id != "scalar":
                self.fail(key_where, "mapping keys must be plain values, not mappings or lists")
                continue
            if key_node.tag == _STR:
                key = key_node.value
            else:
                known = len(self.problems)
                key = self.scalar(key_node, key_where)
                if len(self.problems) > known:
                    continue
            if key in result:
                first = 0 if path is None else self.positions[path + (key, "__key__")][0]
                self.fail(key_where, f"duplicate key '{key}' (first defined at line {first})")
                continue
            if path is None:
                result[key] = self.build(value_node, None, depth + 1)
            else:
                self.positions[path + (key, "__key__")] = key_where
                result[key] = self.build(value_node, path + (key,), depth + 1)
        return result

    def scalar(self, node: ScalarNode, where: tuple[int, int]) -> Any:
        """A scalar node with a tag other than !!str, constructed (or reported)."""
        if node.tag not in _SCALAR_TAGS:
            return self.fail(where, f"tag '{_short(node.tag)}' is not allowed")
        try:
            return self.loader.yaml_constructors[node.tag](self.loader, node)
        except yaml.MarkedYAMLError as e:
            return self.fail(where, e.problem or str(e))
        except (ValueError, OverflowError) as e:
            if node.tag.endswith(":timestamp"):
                return self.fail(where, f"{node.value!r} is not a valid date or date-time ({e})")
            return self.fail(where, f"invalid {_short(node.tag)} value {node.value!r}: {e}")

    def refuse_collection_aliases(self) -> None:
        """Report every alias to a mapping or list, at the alias (found by re-reading the events)."""
        if not self.aliases_reported:
            self.aliases_reported = True
            anchors = set()
            for event in yaml.parse(self.text, Loader=_Loader):
                if isinstance(event, yaml.CollectionStartEvent) and event.anchor:
                    anchors.add(event.anchor)
                elif isinstance(event, yaml.AliasEvent) and event.anchor in anchors:
                    self.fail(_pos(event.start_mark), "aliases to mappings or lists are not allowed")
                    return  # the first one says it all: a bomb has thousands


def _read_text(path: Path, file: str) -> str:
    """The file's text, UTF-8 decoded (BOM dropped); PolicyError if unreadable, too big or not UTF-8."""

    def error(where: tuple[int, int], message: str) -> PolicyError:
        return PolicyError([PolicyProblem(file, *where, message)])

    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise error((1, 1), f"cannot read file: {e.strerror or e}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise error((1, 1), f"file is larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
        prefix = raw[bom:e.start].decode("utf-8")
        raise error(_position_in(prefix, len(prefix)), f"file is not valid UTF-8: {e.reason} (byte {e.start})") from None
    bad = _NON_PRINTABLE.search(text)
    if bad:
        raise error(_position_in(text, bad.start()), f"character U+{ord(bad.group()):04X} is not allowed in YAML")
    return text


def _syntax_problem(file: str, text: str, e: yaml.MarkedYAMLError) -> PolicyProblem:
    """A short message for a PyYAML error; tabs in indentation get a clear one of their own."""
    mark = e.problem_mark
    if mark is None:
        return PolicyProblem(file, 1, 1, str(e))
    lines = text.splitlines()  # breaks as YAML counts them (also NEL, U+2028, U+2029)
    line_text = lines[mark.line] if mark.line < len(lines) else ""
    indent = line_text[: len(line_text) - len(line_text.lstrip(" \t"))]
    if "\t" in indent:
        return PolicyProblem(file, mark.line + 1, indent.index("\t") + 1, "tab character used for indentation; use spaces")
    message = e.problem or "invalid YAML"
    if e.context:
        started = f" at line {e.context_mark.line + 1}" if e.context_mark and e.context_mark.line != mark.line else ""
        message += f" ({e.context}{started})"
    return PolicyProblem(file, *_pos(mark), message)


def _build(text: str, file: str, record: bool) -> _Builder:
    """Compose `text` and build its data (and positions with `record`); PolicyError on a YAML error."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise PolicyError([PolicyProblem(file, 1, 1, "file is empty")])
        builder = _Builder(loader, file, text, record)
        builder.data = builder.build(root, () if record else None)
    except yaml.MarkedYAMLError as e:
        raise PolicyError([_syntax_problem(file, text, e)]) from None
    except yaml.YAMLError as e:  # not expected after the checks in _read_text; never a traceback
        raise PolicyError([PolicyProblem(file, 1, 1, str(e))]) from None
    except RecursionError:
        raise PolicyError([PolicyProblem(file, 1, 1, "nesting is too deep")]) from None
    finally:
        loader.dispose()
    return builder


def load_document(path: Path | str, display: str | None = None) -> Document:
    """Raises PolicyError (with all problems found in this file, usually one) on any error.

    The data is built without positions; a file with a problem is built again with them, so that
    every problem is placed (`Document.positions` does the same for problems found later)."""
    file = display if display is not None else str(path)
    text = _read_text(Path(path), file)
    builder = _build(text, file, record=False)
    if builder.problems:
        raise PolicyError(_build(text, file, record=True).problems)
    return Document(file, builder.data, text=text)
