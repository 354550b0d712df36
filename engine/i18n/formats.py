"""Dates (dd/mm/yyyy), times in the agreement's zone and numbers as a reader of one language writes them
(Babel's CLDR data: Vietnamese `1.234,5`, English `1,234.5`). The console and the CLI share them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from babel import dates, numbers

from engine.i18n import BABEL_LOCALE


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
