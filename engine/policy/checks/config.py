"""config.yaml's checks beyond its shape: the signer, the time zone, the holiday country and
the calendar's overrides, which give the policy its working calendar."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from engine.policy.checks.base import Checker
from engine.policy.spec import WEEKDAYS, ConfigSpec
from engine.policy.yamlsource import DocumentLike
from engine.rules.workcalendar import WorkCalendar


class ConfigChecks(Checker):
    def check_config(self, doc: DocumentLike, config: ConfigSpec) -> WorkCalendar | None:
        ok = True
        signer = config.agreement.signer
        if signer is not None and not any(signer in party.roles for party in list(config.parties.values())[:2]):
            self.report(doc, ("agreement", "signer"), f"no issuing party (the first two parties) has the role '{signer}'")
        try:
            ZoneInfo(config.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            self.report(doc, ("timezone",), f"unknown time zone '{config.timezone}' (use an IANA name such as Asia/Ho_Chi_Minh)")
            ok = False
        country, subdivision = config.calendar.holidays, config.calendar.subdivision
        if country is not None:
            # The registry lists the codes without importing the ~250 country modules that
            # holidays.list_supported_countries() loads (a quarter second on every command).
            from holidays.registry import EntityLoader

            if country.upper() not in set(EntityLoader.get_country_codes(include_aliases=True)):
                self.report(doc, ("calendar", "holidays"),
                            f"unknown holiday country '{country}' (use a two-letter ISO 3166 code such as VN, or null for none)")
                ok = False
            elif subdivision is not None and subdivision not in (subdivisions := list(getattr(holidays, country.upper()).subdivisions)):
                known = ", ".join(subdivisions) or "none"
                self.report(doc, ("calendar", "subdivision"),
                            f"unknown subdivision '{subdivision}' of holiday country '{country}'; known: {known}")
                ok = False
        elif subdivision is not None:
            self.report(doc, ("calendar", "subdivision"), "a subdivision needs a holiday country in 'holidays'")
            ok = False
        for year, overrides in config.calendar.overrides.items():
            for key in ("off", "work"):
                for i, day in enumerate(getattr(overrides, key)):
                    if day.year != year:
                        self.report(doc, ("calendar", "overrides", year, key, i),
                                    f"{day} is listed under year {year}: move it to {day.year} or fix the date")
                        ok = False
        if not ok:
            return None
        days_off = [d for o in config.calendar.overrides.values() for d in o.off]
        work_days = [d for o in config.calendar.overrides.values() for d in o.work]
        try:
            return WorkCalendar(
                config.timezone,
                weekend=[WEEKDAYS.index(d) for d in config.calendar.weekend],
                country=config.calendar.holidays,
                subdivision=config.calendar.subdivision,
                extra_days_off=days_off,
                extra_working_days=work_days,
            )
        except ValueError as exc:  # e.g. a day listed both as off and as worked
            self.report(doc, ("calendar", "overrides"), str(exc))
            return None
