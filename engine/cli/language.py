"""The language the CLI speaks: its messages from the shared gettext catalog (engine/i18n), and in
Vietnamese, dates as dd/mm/yyyy and numbers as Vietnamese write them (1.234).

Which language, for one command:

1. the locale, when it names a language: the first set of LC_ALL, LC_MESSAGES, LANG (POSIX order;
   read by engine.settings.message_locale). vi, vi_VN.UTF-8 … → Vietnamese; any other language
   (en_US.UTF-8, fr_FR …) → English, the only other one there is;
2. when it names none (unset, C, POSIX, C.UTF-8: a machine nobody localised), config.yaml's
   `cli.language` (vi or en, default vi) on a command that reads the config;
3. otherwise (a client without a config) Vietnamese.

The group (engine/cli/main.py) settles the locale's choice at the start of every command;
`main.deployment` and `main._runtime` apply the config's when the locale left it open (`--help`
comes before any config: engine/cli/clicktext.py says it, and click's own words, in the locale's). `--json`
output is the same in both languages (ISO 8601 times, raw numbers, the engine's own texts).

In English the CLI prints the engine's outcome texts as the engine words them
("refused: dic.staff may not fire 'acknowledge' …"); in Vietnamese they go through the shared
`reason()` translator, in the console's words.
"""

from __future__ import annotations

import re
from datetime import datetime

from engine import settings
from engine.i18n import translations

VIETNAMESE, ENGLISH = "vi", "en"
DEFAULT = VIETNAMESE
# engine.service words an event still queued after --wait so (its console translation says "reload the page")
PENDING = re.compile(r"^pending: queued as inbox #(?P<id>\d+); the daemon has not applied it within (?P<wait>\S+) s$")


def of_locale(locale: str) -> str | None:
    """The language a locale names (None for C, POSIX and an empty one: no language chosen)."""
    code = re.split(r"[.@]", locale.strip(), maxsplit=1)[0]
    if code in ("", "C", "POSIX"):
        return None
    return VIETNAMESE if re.split(r"[_-]", code, maxsplit=1)[0].lower() == "vi" else ENGLISH


class Voice:
    """How the CLI says things in one language."""

    def __init__(self, lang: str, chosen_by_locale: bool = False):
        self.lang, self.chosen_by_locale = lang, chosen_by_locale
        self._tr = translations(lang)

    @property
    def vietnamese(self) -> bool:
        return self.lang == VIETNAMESE

    def gettext(self, msgid: str, **values: object) -> str:
        text = self._tr.gettext(msgid)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._tr.ngettext(singular, plural, n)

    def number(self, n: int | float) -> str:
        """A count for people: 1,234 in English, 1.234 in Vietnamese (the console's Formats)."""
        if self.vietnamese:
            from engine.i18n.formats import Formats

            return Formats(self.lang, None).number(n)
        return f"{n:,}"

    def moment(self, at: datetime) -> str:
        """A time as its zone reads it, to the minute: 2027-06-01 08:00 in English (as the CLI always
        wrote it), 01/06/2027 08:00 in Vietnamese (the console's Formats)."""
        if self.vietnamese:
            from engine.i18n.formats import Formats

            return Formats(self.lang, at.tzinfo).datetime(at)
        return at.strftime("%Y-%m-%d %H:%M")

    def reason(self, text: str) -> str:
        """A refusal reason as the engine words it, in this language."""
        if not self.vietnamese or not text:
            return text
        from engine.i18n.reasons import reason

        return reason(text, self.gettext)

    def outcome(self, text: str) -> str:
        """An outcome line of start/fire/consent/withdraw ("applied: …", "refused: …", "pending: …")."""
        if not self.vietnamese:
            return text
        from engine.i18n.reasons import reason

        queued = PENDING.match(text)
        if queued:
            return self.gettext("pending: queued as inbox #%(id)s; the daemon has not applied it within %(wait)s s",
                                id=queued["id"], wait=queued["wait"])
        status, sep, rest = text.partition(": ")
        if status == "applied" and sep:
            return self.gettext("applied: %(what)s", what=reason(rest, self.gettext))
        if status == "refused" and sep:
            return self.gettext("refused: %(why)s", why=reason(rest, self.gettext))
        return reason(text, self.gettext)


_current: Voice | None = None


def settle_from_locale() -> Voice:
    """The locale's choice, or the default until a config says otherwise (a new command starts here)."""
    global _current
    chosen = of_locale(settings.message_locale())
    _current = Voice(chosen or DEFAULT, chosen_by_locale=chosen is not None)
    return _current


def settle_from_config(language: str) -> None:
    """config.yaml's `cli.language`, unless the locale named a language."""
    global _current
    if not voice().chosen_by_locale and language != voice().lang:
        _current = Voice(language)


def voice() -> Voice:
    return _current or settle_from_locale()


def _N_(msgid: str) -> str:
    """Marks `msgid` for extraction; translated where it is shown."""
    return msgid


def _(msgid: str, **values: object) -> str:
    """`msgid` in the CLI's language, `%(name)s` filled from `values` (extracted by engine/i18n/catalog.py)."""
    return voice().gettext(msgid, **values)


def number(n: int | float) -> str:
    return voice().number(n)


def moment(at: datetime) -> str:
    return voice().moment(at)


def wall(text: str) -> str:
    """An ISO 8601 time as its own wall clock says it, to the minute (the overview's times, already in the zone)."""
    try:
        return voice().moment(datetime.fromisoformat(text))
    except ValueError:
        return text[:16].replace("T", " ")
