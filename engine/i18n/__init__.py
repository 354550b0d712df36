"""Languages of the console and the CLI: gettext catalogs (Babel), shared by both.

The catalog lives in locale/<lang>/LC_MESSAGES/messages.po (sources, msgids in English) and the
compiled messages.mo beside it (committed, so an installed package works). One catalog holds the
console's strings (engine/server/web) and the CLI's (engine/cli), so both say a thing with the same
words; `python -m engine.i18n.catalog` extracts, merges and compiles it, and tests/test_web.py
checks that every string has a Vietnamese translation and that the .mo is current.

Beside it: formats.py (dates dd/mm/yyyy, times in the agreement's zone, numbers) and reasons.py
(the engine's refusal reasons in the reader's language). Who picks the language: the console by
a cookie (engine/server/web/i18n.py), the CLI by the locale or config.yaml (engine/cli/language.py).
"""

from __future__ import annotations

import gettext
from functools import cache
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
LANGUAGES = {"vi": "Tiếng Việt", "en": "English"}
BABEL_LOCALE = {"vi": "vi_VN", "en": "en_GB"}


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The catalog of `lang` (English is the msgids themselves). The standard library reads the .mo
    (Babel writes it), so a CLI command pays for no Babel import to say something."""
    if lang == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang])
