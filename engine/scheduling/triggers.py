"""CalendarRuleTrigger: an APScheduler 3.x trigger firing on a policy's calendar rule.

A `CalendarRule` ("in June and December, on the 10th working day, at 08:00", or "on the 15th,
shifted to the next working day") becomes one occurrence per listed month. The daemon's
scheduler and the simulator use the same trigger objects, so both see the same instants.

Decisions callers must know:

* Every returned datetime is aware, in ``calendar.tz``, and normalised through UTC (so its
  ``fold`` is right). All comparisons here are made in UTC: Python compares two datetimes that
  share a tzinfo by wall time, ignoring ``fold``, which is wrong inside a fall-back hour.
* ``at`` is a local wall time. If it does not exist that day (spring forward, e.g. 02:30 in
  Europe/Berlin on the last Sunday of March) the occurrence is the first instant that does
  exist after it: the transition itself (03:00 CEST = 01:00 UTC). If it exists twice (fall
  back) the occurrence is the first one (``fold=0``, 02:30 CEST = 00:30 UTC); the repeated
  02:30 is never an occurrence.
* ``day`` larger than the month's length means the month's last day (31 in June is 30 June),
  then ``shift`` applies. ``shift: next``/``previous`` may move an occurrence into the
  neighbouring month (31 December, a holiday, shifted next is in January).
* ``nth_working_day`` beyond the month's working days (23 in a February with Tết) means the
  last working day (or, counting from the end, the first). A month with no working day at
  all has no occurrence.
* ``get_next_fire_time(previous, now)`` returns the first occurrence strictly after
  ``previous`` when given (``now`` is then ignored, so missed occurrences after downtime are
  each returned once, in order), else the first at or after ``now``. It looks ahead at most
  `HORIZON_YEARS` and then returns None.
* Pickling (for a persistent APScheduler job store) stores the rule and the calendar's
  constructor arguments, not the calendar object; unpickling builds a fresh `WorkCalendar`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger

from engine.policy.spec import WEEKDAYS, CalendarRule, DayRule
from engine.rules.workcalendar import WorkCalendar

HORIZON_YEARS = 20
_UTC = UTC


def _aware_utc(value: datetime, name: str) -> datetime:
    """`value` in UTC; a naive datetime is a caller error."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(_UTC)


class CalendarRuleTrigger(BaseTrigger):
    """Fires at `rule.at` local time on the day `rule.day` picks in each of `rule.months`."""

    def __init__(self, rule: CalendarRule, calendar: WorkCalendar):
        self.rule = rule
        self.calendar = calendar
        hour, minute = rule.at.split(":")
        self._hour, self._minute = int(hour), int(minute)

    # -- days and instants ----------------------------------------------------------------

    def _day_rule(self) -> DayRule:
        """`rule.day`, which CalendarRule requires unless `dates` is given (and then no day is picked)."""
        if self.rule.day is None:
            raise ValueError(f"calendar rule without 'day' or 'dates': {self.rule!r}")
        return self.rule.day

    def _day_in(self, year: int, month: int, span: int = 1) -> date | None:
        """The occurrence's local date in the period of `span` months from (year, month), or None."""
        rule = self._day_rule()
        cal = self.calendar
        first = date(year, month, 1)
        end_index = year * 12 + month - 1 + span
        last = date(end_index // 12, end_index % 12 + 1, 1) - timedelta(days=1)
        if rule.nth_working_day is not None:
            working = cal.working_days_between(first, last)
            if not working:
                return None
            n = rule.nth_working_day  # beyond the period's working days: clamp to the last (or first)
            if abs(n) > len(working):
                return working[-1] if n > 0 else working[0]
            return working[n - 1] if n > 0 else working[n]
        if rule.weekday is not None:
            if rule.nth is None:  # DayRule requires `nth` with `weekday`
                raise ValueError(f"weekday rule without nth: {rule!r}")
            chosen = cal.nth_weekday(first, last, WEEKDAYS.index(rule.weekday), rule.nth, rule.working)
            if chosen is None or rule.working:
                return chosen
            return cal.shift_to_working_day(chosen, rule.shift, within=(first, last))
        if rule.day is None:  # DayRule requires exactly one of nth_working_day, weekday, day
            raise ValueError(f"day rule without a day: {rule!r}")
        return cal.shift_to_working_day(date(year, month, min(rule.day, last.day)), rule.shift)

    def _instant(self, day: date) -> datetime:
        """`rule.at` on local `day` as an aware datetime in the calendar's zone (see module doc)."""
        tz = self.calendar.tz
        wall = datetime(day.year, day.month, day.day, self._hour, self._minute)
        early = wall.replace(tzinfo=tz, fold=0).astimezone(_UTC)
        if early.astimezone(tz).replace(tzinfo=None) == wall:
            return early.astimezone(tz)  # exists; fold=0 is the first of a repeated time
        # In a gap: fold=0 and fold=1 use the offsets before and after the transition, so the
        # transition lies between the two UTC readings. Find the first instant whose local
        # wall time is at or after `wall`, to the second.
        late = wall.replace(tzinfo=tz, fold=1).astimezone(_UTC)
        lo, hi = min(early, late), max(early, late)  # local(lo) < wall <= local(hi)
        while hi - lo > timedelta(seconds=1):
            mid = lo + timedelta(seconds=(hi - lo).total_seconds() // 2)
            if mid.astimezone(tz).replace(tzinfo=None) >= wall:
                hi = mid
            else:
                lo = mid
        return hi.astimezone(tz)

    def _candidates(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """Occurrences in order, from a little before `after` to a little after `until`."""
        tz = self.calendar.tz
        first, last_local = after.astimezone(tz), until.astimezone(tz)
        if self.rule.dates is not None:
            yield from (self._instant(d) for d in self.rule.dates
                        if first.date() - timedelta(days=1) <= d <= last_local.date() + timedelta(days=1))
            return
        # A period of margin each side: a shifted day can leave its own month or quarter.
        periods = self.rule.periods
        lo, hi = first.date() - timedelta(days=130), last_local.date() + timedelta(days=40)
        last: datetime | None = None
        for year in range(first.year - 1, last_local.year + 2):
            for month, span in periods:
                if not (lo <= date(year, month, 1) <= hi):
                    continue
                day = self._day_in(year, month, span)
                if day is None:
                    continue
                instant = self._instant(day)
                if last is not None and instant.astimezone(_UTC) <= last.astimezone(_UTC):
                    continue  # two periods shifted onto the same day: one occurrence
                last = instant
                yield instant

    # -- public API -----------------------------------------------------------------------

    def occurrences(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Every occurrence with start < t <= end (aware datetimes), in order."""
        lo, hi = _aware_utc(start, "start"), _aware_utc(end, "end")
        for instant in self._candidates(lo, hi):
            utc = instant.astimezone(_UTC)
            if utc > hi:
                return
            if utc > lo:
                yield instant

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        """The first occurrence strictly after previous_fire_time if given, else at or after now."""
        if previous_fire_time is not None:
            after = _aware_utc(previous_fire_time, "previous_fire_time")
        else:
            after = _aware_utc(now, "now") - timedelta(microseconds=1)
        limit = after + timedelta(days=366 * HORIZON_YEARS)
        return next(self.occurrences(after, limit), None)

    # -- text and pickling ----------------------------------------------------------------

    def _describe(self) -> str:
        rule = self.rule
        if rule.dates is not None:
            return f"dates={','.join(d.isoformat() for d in rule.dates)} at {rule.at} {self.calendar.tz.key}"
        day = self._day_rule()
        if day.nth_working_day is not None:
            what = f"nth_working_day {day.nth_working_day}"
        elif day.weekday is not None:
            what = f"{day.weekday} nth={day.nth}" + (" working" if day.working else f" shift={day.shift}")
        else:
            what = f"{day.day} shift={day.shift}"
        cycle = (f"months={','.join(map(str, rule.months))}" if rule.months is not None
                 else f"quarters={','.join(map(str, rule.quarters or ()))}")
        return f"{cycle} day={what} at {rule.at} {self.calendar.tz.key}"

    def __str__(self) -> str:
        return f"calendar[{self._describe()}]"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} ({self._describe()})>"

    def __getstate__(self) -> dict[str, Any]:
        cal = self.calendar
        # WorkCalendar holds a lock and a holidays cache: keep only what rebuilds it.
        return {
            "version": 1,
            "rule": self.rule.model_dump(),
            "calendar": {
                "tz": cal.tz.key,
                "weekend": sorted(cal.weekend),
                "country": cal.country,
                "subdivision": cal.subdivision,
                "extra_days_off": dict(cal._days_off),
                "extra_working_days": sorted(cal._extra_working),
            },
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("version") != 1:
            raise ValueError(f"cannot restore {type(self).__name__} state version "
                             f"{state.get('version')!r} (this code reads version 1)")
        CalendarRuleTrigger.__init__(self, CalendarRule.model_validate(state["rule"]),
                                     WorkCalendar(**state["calendar"]))


def occurrence_facts(at: datetime) -> dict[str, Any]:
    """The values schedules see as `occurrence.*`, from `at`'s own wall date.

    Pass the trigger's datetime (already in the calendar's zone). The facts describe the
    actual date, so an occurrence shifted from 31 December into January is in the next year.
    """
    half = 1 if at.month <= 6 else 2
    return {
        "year": at.year,
        "month": at.month,
        "half": half,
        "period": f"{at.year}H{half}",
        "date": at.date().isoformat(),
        "at": at.isoformat(),
    }
