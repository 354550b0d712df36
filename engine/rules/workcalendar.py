"""Working-day calendar and deadline arithmetic (Vietnam by default, any zone/country by config).

Law (Vietnamese Civil Code 2015, arts. 147-148): the starting day is not counted, and a
deadline ends at the end of its last day; if that day is not a working day the deadline
moves to the end of the next working day.

End-of-day convention (used by every day-based method here): a deadline is the *exclusive*
instant 00:00 local time of the day after the last day. An act is in time iff it happens
strictly before the returned instant (``now < deadline``). So "end of Thu 11 Feb 2027" in
Asia/Ho_Chi_Minh is returned as ``2027-02-12 00:00+07:00``; to show the last day to a user,
display ``(deadline - timedelta(microseconds=1)).date()``. Local midnight is built as
``datetime(y, m, d, tzinfo=tz)`` and normalised through UTC, so the offset is right across
DST changes (where midnight does not exist the result is the first instant of that day).
Hour deadlines (``add_hours``) are exact elapsed time in UTC and are never shifted.
Compare results in UTC (or with ``<``/``>=``): by PEP 495, ``==`` between different zones is
always False for a wall time inside a DST fold (e.g. 02:30 on a fall-back night).

Public holidays come from the ``holidays`` package, built lazily and cached per year.
The package does not know every government day swap (worked Saturdays in particular), so
per-year overrides are passed in as ``extra_days_off`` / ``extra_working_days``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

_CONFIGURED_DAY_OFF = "Day off (configured)"


class WorkCalendar:
    """Which days are working days in one time zone/country, and deadlines computed on them."""

    def __init__(self, tz: str, weekend: Iterable[int] = (5, 6), country: str | None = "VN",
                 extra_days_off: Iterable[date] = (), extra_working_days: Iterable[date] = (),
                 subdivision: str | None = None):
        """Weekend uses date.weekday() numbers (Mon=0); country is an ISO code or None.

        ``extra_days_off`` may be a mapping date -> name, used by ``holiday_name``.
        Raises ValueError for an unknown time zone, country or subdivision, a bad weekday
        number, or a date listed both as an extra day off and an extra working day.
        """
        try:
            self.tz = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise ValueError(f"unknown time zone {tz!r} (use an IANA name such as "
                             f"'Asia/Ho_Chi_Minh')") from exc
        self.weekend = frozenset(weekend)
        if not self.weekend <= set(range(7)):
            raise ValueError(f"weekend days must be weekday numbers 0 (Mon) .. 6 (Sun), "
                             f"got {sorted(self.weekend)}")
        self._days_off: dict[date, str] = (
            dict(extra_days_off) if isinstance(extra_days_off, Mapping)
            else dict.fromkeys(extra_days_off, _CONFIGURED_DAY_OFF))
        self._extra_working = frozenset(extra_working_days)
        both = sorted(self._extra_working & self._days_off.keys())
        if both:
            raise ValueError("dates listed both as extra days off and extra working days: "
                             + ", ".join(d.isoformat() for d in both))
        self.country = country.upper() if country else None
        self.subdivision = subdivision
        self._source: holidays.HolidayBase | None = None
        if self.country is not None:
            # The registry knows the codes without importing the country modules (see _holiday_source).
            from holidays.registry import EntityLoader

            if self.country not in set(EntityLoader.get_country_codes(include_aliases=True)):
                raise ValueError(f"unknown country/subdivision for public holidays: "
                                 f"{country!r}/{subdivision!r} (no such country code)")
            if subdivision is not None:  # the country's own class knows its subdivisions
                self._holiday_source()
        self._years: dict[int, dict[date, str]] = {}
        self._lock = threading.Lock()

    # -- days ---------------------------------------------------------------------------

    def _holidays(self, year: int) -> dict[date, str]:
        """Public holidays falling in `year` (built once, then cached)."""
        cached = self._years.get(year)
        if cached is not None:
            return cached
        with self._lock:
            if year not in self._years:
                found: dict[date, str] = {}
                source = self._holiday_source()
                if source is not None:
                    # Neighbouring years too, so substitute days spilling over a year end count.
                    for y in (year - 1, year, year + 1):
                        source.get(date(y, 6, 1))  # populates year y (expand=True)
                    found = {d: n for d, n in source.items() if d.year == year}
                self._years[year] = found
            return self._years[year]

    def _holiday_source(self) -> holidays.HolidayBase | None:
        """The country's `holidays` calendar, built on first use: building one imports every country
        module of the package (~0.1 s CPU), which a load that never asks for a holiday (`coopflow
        check` of a policy without explicit dates) does without."""
        if self.country is not None and self._source is None:
            try:
                self._source = holidays.country_holidays(self.country, subdiv=self.subdivision, years=[])
            except NotImplementedError as exc:
                raise ValueError(f"unknown country/subdivision for public holidays: "
                                 f"{self.country!r}/{self.subdivision!r} ({exc})") from exc
        return self._source

    def is_working_day(self, d: date) -> bool:
        """True unless weekend, public holiday or extra day off; extra working days always win."""
        if d in self._extra_working:
            return True
        if d in self._days_off or d.weekday() in self.weekend:
            return False
        return d not in self._holidays(d.year)

    def holiday_name(self, d: date) -> str | None:
        """The public holiday's (or configured day off's) name for `d`, else None."""
        return self._holidays(d.year).get(d) or self._days_off.get(d)

    def next_working_day(self, d: date, include: bool = False) -> date:
        """First working day after `d` (or `d` itself if `include` and it is a working day)."""
        return self._step(d, 1, include)

    def _step(self, d: date, step: int, include: bool) -> date:
        """First working day from `d` in direction `step` (+1/-1), `d` counted iff include."""
        if not include:
            d += timedelta(days=step)
        for _ in range(3660):  # ten years without a working day means a broken config
            if self.is_working_day(d):
                return d
            d += timedelta(days=step)
        raise ValueError("no working day within ten years: check weekend and days off")

    def shift_to_working_day(self, d: date, direction: str = "next",
                             within: tuple[date, date] | None = None) -> date | None:
        """`d` if it is a working day, else the next/previous one; "none" returns `d` as is.

        "same_weekday" moves by whole weeks to the nearest same weekday that is a working day:
        a week later or a week earlier (then two weeks, ...), preferring the one inside
        `within` (first, last day of the period) when only one of the two is, else the later.
        None when no such day lies within ten weeks.
        """
        if direction == "none":
            return d
        if direction == "same_weekday":
            return self._same_weekday(d, within)
        if direction not in ("next", "previous"):
            raise ValueError(f"direction must be 'next', 'previous', 'same_weekday' or 'none', "
                             f"got {direction!r}")
        return self._step(d, 1 if direction == "next" else -1, include=True)

    def _same_weekday(self, d: date, within: tuple[date, date] | None) -> date | None:
        if self.is_working_day(d):
            return d
        inside = (lambda x: within[0] <= x <= within[1]) if within else (lambda x: True)
        for weeks in range(1, 11):
            later, earlier = d + timedelta(weeks=weeks), d - timedelta(weeks=weeks)
            found = [x for x in (later, earlier) if self.is_working_day(x)]
            if found:
                return ([x for x in found if inside(x)] or found)[0]
        return None

    def nth_weekday(self, first: date, last: date, weekday: int, n: int,
                    working: bool = False) -> date | None:
        """The n-th `weekday` (Mon=0) from `first` to `last` inclusive (n<0 counts from the
        end: -1 is the last), counting only working days when `working`; None if there is none."""
        start = first + timedelta(days=(weekday - first.weekday()) % 7)
        days = [start + timedelta(weeks=i) for i in range((last - start).days // 7 + 1)] if start <= last else []
        if working:
            days = [x for x in days if self.is_working_day(x)]
        if n == 0 or abs(n) > len(days):
            return None
        return days[n - 1] if n > 0 else days[n]

    def working_days_between(self, first: date, last: date) -> list[date]:
        """The working days from `first` to `last`, both included."""
        return [first + timedelta(days=i) for i in range((last - first).days + 1)
                if self.is_working_day(first + timedelta(days=i))]

    def nth_working_day(self, year: int, month: int, n: int) -> date:
        """The n-th working day of the month (n>=1), or counted from its end (n=-1 is the last)."""
        first = date(year, month, 1)
        end = date(year + month // 12, month % 12 + 1, 1)
        working = self.working_days_between(first, end - timedelta(days=1))
        if n == 0 or abs(n) > len(working):
            raise ValueError(f"{year}-{month:02d} has {len(working)} working days; "
                             f"cannot take n={n}")
        return working[n - 1] if n > 0 else working[n]

    # -- deadlines ----------------------------------------------------------------------

    def _local_date(self, start: datetime) -> date:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(f"naive datetime {start!r}: deadlines need a timezone-aware start")
        return start.astimezone(self.tz).date()

    def end_of_day(self, d: date) -> datetime:
        """The exclusive end of local day `d`: 00:00 of the next day, offset normalised."""
        nxt = d + timedelta(days=1)
        midnight = datetime(nxt.year, nxt.month, nxt.day, tzinfo=self.tz)
        return midnight.astimezone(UTC).astimezone(self.tz)

    def add_working_days(self, start: datetime, n: int) -> datetime:
        """End of the n-th working day after start's local date (start day not counted).

        n=0 means the end of the start day, or of the next working day if it is not one;
        n<0 counts working days backwards (e.g. reports due T-7 working days).
        """
        d = self._local_date(start)
        if n == 0:
            return self.end_of_day(self._step(d, 1, include=True))
        step = 1 if n > 0 else -1
        for _ in range(abs(n)):
            d = self._step(d, step, include=False)
        return self.end_of_day(d)

    def add_days(self, start: datetime, n: int) -> datetime:
        """End of local date start+n calendar days, moved to the next working day if needed.

        For n<0 (a deadline before an event) a non-working last day moves to the previous
        working day instead, so the deadline never moves closer to the event.
        """
        last = self._local_date(start) + timedelta(days=n)
        return self.end_of_day(self._step(last, -1 if n < 0 else 1, include=True))

    def add_hours(self, start: datetime, n: float) -> datetime:
        """start + n hours of elapsed time (UTC arithmetic, no shifting), in the calendar's tz."""
        self._local_date(start)
        return (start.astimezone(UTC) + timedelta(hours=n)).astimezone(self.tz)
