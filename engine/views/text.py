"""Safe text: how every stored or user-given value is shown on a terminal or in a report.

Values in the store (subjects, answers, refusal reasons, actor names…) come from users. Shown
as they are, they could drive the terminal: rich markup (``[bold red]``, an unbalanced ``[/]``
that makes rich raise), ANSI escape sequences (``\\x1b[2J`` clears the screen), carriage
returns and newlines that forge lines of output, bidirectional overrides that reorder text.

* `clean(value)` — the text with every control or format character shown as a visible escape
  (``\\x1b``, ``\\r``, ``\\t``, ``\\u202e``); newlines are kept (for table cells, where rich
  keeps them inside the cell) or, with ``single_line=True``, shown as ``↵``.
* `cell(value)` — a `rich.text.Text` of `clean(value)`: never parsed for markup or emoji codes,
  so it is what goes into rich tables and `Console.print`.
* `line(value)` — `clean(value, single_line=True)`, for `click.echo` and other one-line contexts.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich is imported when a Text is made: `line` and `clean` start without it
    from rich.text import Text

NEWLINE_MARK = "↵"

# C0 controls but newline, DEL, C1 controls, and the Unicode line/paragraph separators.
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\t": "\\t", "\r": "\\r"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _visible(char: str) -> str:
    """One character as shown: format characters (bidi overrides, zero-width…) escaped."""
    if char.isprintable() or char in "\n ":
        return char
    return _escape(char) if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn") else char


def clean(value: Any, single_line: bool = False) -> str:
    """`value` as text safe to print: control and format characters as visible escapes.

    None is the empty string. Newlines stay (or become ``↵`` with ``single_line``).
    """
    text = "" if value is None else str(value)
    if text.isprintable():  # the common case: nothing to escape
        return text
    text = _CONTROL.sub(lambda m: _escape(m.group()), text)
    if not text.replace("\n", "").isprintable():
        text = "".join(_visible(c) for c in text)
    return text.replace("\n", NEWLINE_MARK) if single_line else text


def line(value: Any) -> str:
    """`value` on one line, safe to echo."""
    return clean(value, single_line=True)


def cell(value: Any, single_line: bool = False) -> Text:
    """`value` as a rich Text (no markup, no emoji codes), safe for tables and Console.print."""
    from rich.text import Text

    return Text(clean(value, single_line))


def join(*parts: Any) -> Text:
    """Several values (each cleaned) as one Text; `Text` parts are kept as they are."""
    from rich.text import Text

    out = Text()
    for part in parts:
        out.append(part if isinstance(part, Text) else clean(part))
    return out
