"""click's output in the CLI's language: the commands' and options' help, and click's own words.

The English help in the source stays the msgid. Two things are translated, both from the shared
catalog (engine/i18n) in the language engine/cli/language.py chose:

- **Our help** (each command's help, short help and epilog, each parameter's help; and the usage
  line's placeholders, which click keeps on the command, not in gettext): `localise`
  puts the translation on the command and its parameters when the command is about to be used
  (the root when a command line starts, a sub-command when it is resolved by name), keeping the
  English beside it, so click wraps, shortens ("Commands:" list) and annotates the translated text
  itself. `help_texts` walks the same tree for the catalog's extraction (engine/i18n/catalog.py).
- **click's own words** ("Usage:", "Options:", "[default: …]", "Error: No such option" …) go
  through `gettext.gettext` of the default domain in click's modules. `install` points the `_` and
  `ngettext` of click's modules at the CLI's catalog instead; a text the catalog does not hold
  falls back to the standard library's gettext, as before. gettext's own state (domain, bound
  directories) is left alone, so nothing changes for other libraries. click makes a command's
  `--help` option (its "Show this message and exit.") once, in the language of the first command
  line that needs it: one per process for the real CLI.
"""

from __future__ import annotations

import gettext
import inspect
import sys
from collections.abc import Iterator

import click

from engine.cli.language import voice

# click's modules whose words a user sees (engine/i18n/catalog.py extracts the same ones)
CLICK_MODULES = ("core", "decorators", "exceptions", "formatting", "parser", "termui", "types")
# click's words that reach gettext without a literal at the call (`_(extra["required"])`)
CLICK_WORDS = ("required",)
# what is translated on each object: help texts, and the usage line's "[OPTIONS]" and "COMMAND [ARGS]..."
_FIELDS = {click.Command: ("help", "short_help", "epilog", "options_metavar", "subcommand_metavar"),
           click.Parameter: ("help",)}
_ENGLISH = "_coopflow_english"  # the msgids, kept on the object the first time it is localised


def _gettext(message: str) -> str:
    translated = voice().gettext(message)
    return translated if translated is not message else gettext.gettext(message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    translated = voice().ngettext(singular, plural, n)
    return translated if translated not in (singular, plural) else gettext.ngettext(singular, plural, n)


def install() -> None:
    """Route click's own words through the CLI's catalog (idempotent; click's modules are loaded by
    `import click`)."""
    for name in CLICK_MODULES:
        module = sys.modules.get(f"click.{name}")
        if module is None:  # a later click laid out otherwise: its words stay English, the CLI still runs
            continue
        if hasattr(module, "_"):
            module._ = _gettext  # type: ignore[attr-defined]
        if hasattr(module, "ngettext"):
            module.ngettext = _ngettext  # type: ignore[attr-defined]


def msgid(text: str) -> str:
    """A help text as click shows it: without the common indentation and what follows a form feed."""
    return inspect.cleandoc(text).partition("\f")[0]


def _fields(obj: click.Command | click.Parameter) -> tuple[str, ...]:
    return _FIELDS[click.Command] if isinstance(obj, click.Command) else _FIELDS[click.Parameter]


def english(obj: click.Command | click.Parameter) -> dict[str, str]:
    """The object's help texts in English (the msgids), field by field, empty ones left out."""
    kept = obj.__dict__.get(_ENGLISH)
    if kept is None:
        kept = {f: msgid(getattr(obj, f)) for f in _fields(obj) if getattr(obj, f, None)}
    return kept


def localise(command: click.Command) -> click.Command:
    """`command`, its parameters and (a group) its sub-commands, helped in the CLI's language."""
    for obj, _owner in _tree(command):
        texts = obj.__dict__.setdefault(_ENGLISH, english(obj))
        for field, text in texts.items():
            setattr(obj, field, voice().gettext(text))
    return command


def _tree(command: click.Command) -> Iterator[tuple[click.Command | click.Parameter, click.Command]]:
    """Each command of the tree and each of its parameters, with the command it belongs to."""
    yield command, command
    for param in command.params:
        yield param, command
    for sub in getattr(command, "commands", {}).values():
        yield from _tree(sub)


def help_texts(command: click.Command) -> Iterator[tuple[str, click.Command]]:
    """Every English help text of `command`'s tree, with the command it belongs to (for extraction)."""
    for obj, owner in _tree(command):
        for text in english(obj).values():
            yield text, owner
