"""The console's message catalogs: extract the strings, merge them into the .po files, compile the .mo.

    python -m engine.server.web.catalog           # extract, update every .po, compile every .mo

`extract()` reads the msgids from the templates (`_("...")`) and the Python modules
(`_(...)`, `_N_(...)`); tests/test_web.py checks each has a Vietnamese translation and that the
committed .mo files are what `compile_catalog` makes of the .po files.
"""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from engine.server.web.i18n import DOMAIN, LANGUAGES, LOCALE_DIR

HERE = Path(__file__).parent
METHODS = [("templates/**.html", "jinja2.ext:babel_extract"), ("*.py", "python")]
OPTIONS = {"templates/**.html": {"trim_blocks": "true", "lstrip_blocks": "true"}, "*.py": {}}
KEYWORDS = {"_": None, "_N_": None, "gettext": None}
TRANSLATED = [lang for lang in LANGUAGES if lang != "en"]  # English is the msgids


def extract() -> Catalog:
    catalog = Catalog(project="coopflow", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
            HERE, METHODS, OPTIONS, keywords=KEYWORDS, comment_tags=("TRANSLATORS:",)):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


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
        catalog.update(template, no_fuzzy_matching=True)
        catalog.fuzzy = False
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            write_po(f, catalog, width=100, omit_header=False, ignore_obsolete=True)


if __name__ == "__main__":
    update()
    compile_catalog()
