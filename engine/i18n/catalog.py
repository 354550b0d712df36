"""The message catalogs of the console and the CLI: extract the strings, merge them into the .po
files, compile the .mo.

    python -m engine.i18n.catalog           # extract, update every .po, compile every .mo

`extract()` reads the msgids from the console's templates (`_("...")`) and from the Python modules
of the console, the CLI and engine/i18n (`_(...)`, `_N_(...)`) as listed in babel.cfg
at the top of the repository (so `pybabel extract -F babel.cfg -k _N_ -o messages.pot engine` finds the
same), then adds what pybabel cannot see: every help text of the CLI's command tree and click's own
words (engine/cli/clicktext.py translates both when shown); tests/test_web.py checks each has a Vietnamese translation and that the committed .mo files
are what `compile_catalog` makes of the .po files.
"""

from __future__ import annotations

import inspect
import io
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from engine.i18n import DOMAIN, LANGUAGES, LOCALE_DIR

ENGINE = Path(__file__).parent.parent
MAPPING = ENGINE.parent / "babel.cfg"  # which files hold strings, and how to read them (paths under engine/)
KEYWORDS = {"_": None, "_N_": None, "gettext": None}
TRANSLATED = [lang for lang in LANGUAGES if lang != "en"]  # English is the msgids


def extract() -> Catalog:
    with open(MAPPING, encoding="utf-8") as f:
        methods, options = parse_mapping_cfg(f, MAPPING.name)
    catalog = Catalog(project="coopflow", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
            ENGINE, methods, options, keywords=KEYWORDS, comment_tags=("TRANSLATORS:",)):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    add_cli_help(catalog)
    add_click_words(catalog)
    return catalog


def add_cli_help(catalog: Catalog) -> None:
    """Every help text of the CLI's command tree (commands, short helps, epilogs, options), each
    sub-command imported: they are English in the source and translated when shown
    (engine/cli/clicktext.py)."""
    from engine.cli import clicktext
    from engine.cli.main import cli

    ctx = cli.make_context("coopflow", ["--help"], resilient_parsing=True)
    for command in [cli, *(cli.get_command(ctx, name) for name in cli.list_commands(ctx))]:
        assert command is not None, "every name of COMMANDS is a command"
        for text, owner in clicktext.help_texts(command):
            catalog.add(text, None, [_where(owner)])


def _where(command) -> tuple[str, int]:
    """Where `command`'s function is defined: a path under engine/ and a line."""
    code = inspect.unwrap(command.callback).__code__
    return str(Path(code.co_filename).relative_to(ENGINE)), code.co_firstlineno


def add_click_words(catalog: Catalog) -> None:
    """click's own words (usage, headings, "[default: …]", its errors and prompts), from the installed
    click's modules that show them: click reads them with gettext, which the CLI routes to this catalog."""
    import click

    from engine.cli import clicktext

    folder = Path(click.__file__).parent
    for module in clicktext.CLICK_MODULES:
        for lineno, message, comments, context in extract_from_file(
                "python", folder / f"{module}.py", keywords={"_": None, "ngettext": (1, 2)}):
            catalog.add(message, None, [(f"click/{module}.py", lineno)], auto_comments=comments, context=context)
    for word in clicktext.CLICK_WORDS:
        catalog.add(word, None, [("click/core.py", 0)])


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def read(lang: str) -> Catalog:
    with open(po_path(lang), "rb") as f:
        return read_po(f, locale=lang)


def compiled(lang: str) -> bytes:
    out = io.BytesIO()
    write_mo(out, read(lang), use_fuzzy=False)
    return out.getvalue()


def compile_catalog() -> None:
    for lang in TRANSLATED:
        po_path(lang).with_suffix(".mo").write_bytes(compiled(lang))


def update() -> None:
    template = extract()
    for lang in TRANSLATED:
        path = po_path(lang)
        catalog = read(lang) if path.exists() else Catalog(locale=lang, project="coopflow", charset="utf-8")
        if {m.id for m in catalog if m.id} == {m.id for m in template if m.id}:
            template.creation_date = catalog.creation_date  # the same strings: no new date, no diff
        catalog.update(template, no_fuzzy_matching=True)
        catalog.fuzzy = False
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            write_po(f, catalog, width=100, omit_header=False, ignore_obsolete=True)


if __name__ == "__main__":
    update()
    compile_catalog()
