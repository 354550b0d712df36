"""The console's language: the reader's choice kept in a cookie (Vietnamese unless they chose English).

The catalogs, formats and refusal reasons are shared with the CLI (engine/i18n/); this module
re-exports what the views use under the names they use.
"""

from __future__ import annotations

from engine.i18n import LANGUAGES, translations
from engine.i18n.formats import Formats
from engine.i18n.reasons import reason

__all__ = ["COOKIE", "DEFAULT", "LANGUAGES", "Formats", "language", "reason", "translations"]

DEFAULT = "vi"
COOKIE = "coopflow_lang"


def language(request) -> str:
    lang = request.cookies.get(COOKIE, DEFAULT)
    return lang if lang in LANGUAGES else DEFAULT
