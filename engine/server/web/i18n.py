"""Languages of the console: gettext catalogs (Babel), Vietnamese dates and numbers, and the
engine's refusal reasons put into the reader's language.

The catalogs live in locale/<lang>/LC_MESSAGES/messages.po (sources, msgids in English) and the
compiled messages.mo beside them (committed, so an installed package works; tests/test_web.py
checks that every console string has a Vietnamese translation and that the .mo is current).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from babel import dates, numbers
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
LANGUAGES = {"vi": "Tiếng Việt", "en": "English"}
DEFAULT = "vi"
BABEL_LOCALE = {"vi": "vi_VN", "en": "en_GB"}
COOKIE = "coopflow_lang"


@cache
def translations(lang: str) -> NullTranslations:
    """The catalog of `lang` (English is the msgids themselves)."""
    if lang == "en":
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), [lang], DOMAIN)


def language(request) -> str:
    lang = request.cookies.get(COOKIE, DEFAULT)
    return lang if lang in LANGUAGES else DEFAULT


class Formats:
    """Dates (dd/mm/yyyy), times in the agreement's zone and numbers, for one language."""

    def __init__(self, lang: str, tz):
        self.locale, self.tz = BABEL_LOCALE[lang], tz

    def _moment(self, value: Any) -> datetime | None:
        if value is None or value == "":
            return None
        if isinstance(value, datetime):
            return value
        try:
            return datetime.fromisoformat(str(value))
        except ValueError:
            return None

    def datetime(self, value: Any) -> str:
        moment = self._moment(value)
        if moment is None:
            return "—" if value in (None, "") else str(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.tz)
        return dates.format_datetime(moment, "dd/MM/yyyy HH:mm", tzinfo=self.tz, locale=self.locale)

    def date(self, value: Any) -> str:
        if isinstance(value, datetime):
            value = value.astimezone(self.tz).date()
        if isinstance(value, str):
            try:
                value = date.fromisoformat(value[:10])
            except ValueError:
                return value
        return dates.format_date(value, "dd/MM/yyyy", locale=self.locale) if value else "—"

    def number(self, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return str(value)
        return numbers.format_decimal(value, locale=self.locale)

    def value(self, value: Any, kind: str | None = None) -> str:
        """A field value as a reader sees it."""
        if value is None or value == "":
            return "—"
        if kind == "datetime":
            return self.datetime(value)
        if kind == "date":
            return self.date(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return self.number(value)
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return str(value)


# The engine words its refusals in English (engine.rules.decision, engine.execution.executor,
# engine.rules.fields); the console says them in the reader's language. Order matters: first match.
_N_ = lambda text: text  # noqa: E731 - marks msgids for extraction without translating them here
REASONS: list[tuple[re.Pattern, str]] = [(re.compile(p, re.S), m) for p, m in [
    (r"^(?P<actor>\S+) may not fire '(?P<trigger>[^']+)' \(allowed: (?P<allowed>.*)\)$",
     _N_("%(actor)s may not take the step '%(trigger)s' (open to: %(allowed)s)")),
    (r"^trigger '(?P<trigger>[^']+)' is not allowed from state '(?P<state>[^']+)' \(allowed: (?P<allowed>.*)\)$",
     _N_("the step '%(trigger)s' cannot be taken in the state '%(state)s' (possible now: %(allowed)s)")),
    (r"^'(?P<trigger>[^']+)' needs the field\(s\) (?P<fields>.*)$",
     _N_("the step '%(trigger)s' needs: %(fields)s")),
    (r"^missing required field\(s\): (?P<fields>.*)$", _N_("required field(s) missing: %(fields)s")),
    (r"^guard not met: (?P<guard>.*)$", _N_("the condition of this step is not met: %(guard)s")),
    (r"^instance is closed: state '(?P<state>[^']+)' is final$",
     _N_("the file is closed: '%(state)s' is a final state")),
    (r"^(?P<actor>\S+) may not start '(?P<workflow>[^']+)' \(allowed: (?P<allowed>.*)\)$",
     _N_("%(actor)s may not start '%(workflow)s' (open to: %(allowed)s)")),
    (r"^field '(?P<field>[^']+)' expects (?P<expected>.*?), got (?P<got>.*)$",
     _N_("the field '%(field)s' has a wrong value %(got)s")),
    (r"^unknown field '(?P<field>[^']+)'.*$", _N_("unknown field '%(field)s'")),
    (r"^'(?P<trigger>[^']+)' does not accept the field\(s\) (?P<fields>[^(]*) \(.*$",
     _N_("the step '%(trigger)s' does not take: %(fields)s")),
    (r"^party '(?P<party>[^']+)' is not among those whose consent '(?P<trigger>[^']+)' needs \((?P<parties>.*)\)$",
     _N_("the consent of '%(party)s' is not asked for '%(trigger)s' (asked of: %(parties)s)")),
    (r"^party '(?P<party>[^']+)' has no consent to '(?P<trigger>[^']+)' to withdraw$",
     _N_("'%(party)s' has given no consent to '%(trigger)s' that could be withdrawn")),
    (r"^'(?P<trigger>[^']+)' needs no consent, so there is none to withdraw$",
     _N_("'%(trigger)s' needs no consent, so there is none to withdraw")),
    (r"^consent recorded for (?P<party>\S+?)(?P<again> again)?: (?P<agreed>\d+) of (?P<quorum>\d+), waiting for (?P<waiting>.*)$",
     _N_("consent of %(party)s recorded: %(agreed)s of %(quorum)s, waiting for %(waiting)s")),
    (r"^consent of (?P<party>\S+) to '(?P<trigger>[^']+)' withdrawn$",
     _N_("the consent of %(party)s to '%(trigger)s' is withdrawn")),
    (r"^pending: .*$", _N_("queued: the daemon has not applied it yet; reload the page in a moment")),
]]


def reason(text: str | None, gettext) -> str:
    """An engine outcome or refusal reason in the reader's language (the English text when unknown)."""
    if not text:
        return ""
    text = text.strip()
    for prefix in ("refused: ", "applied: "):
        text = text.removeprefix(prefix)
    for pattern, msgid in REASONS:
        m = pattern.match(text)
        if m:
            return gettext(msgid) % {k: (v or "") for k, v in m.groupdict().items()}
    return text
