"""Report periods: a quarter, a half year, a year or a range of days, in the policy's time zone.

`2027Q4`, `2027H1`, `2027` or `--from 2027-01-01 --to 2027-03-31`; midnight to midnight, the end
exclusive. A period that has not begun, or that is over before the agreement took effect, is
refused (`PeriodRefused`): a report covers only what has happened under the agreement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from engine.exceptions import CoopflowError

PERIOD_RE = re.compile(r"^(\d{4})(?:([HhQq])([1-4]))?$")
MIN_YEAR, MAX_YEAR = 1970, 9998  # the years a report (and a simulation) may cover

class PeriodError(ValueError):
    """A period that is not written YYYYQn, YYYYHn, YYYY or a pair of dates (a usage error)."""


class PeriodRefused(PeriodError, CoopflowError):
    """A well-written period the report cannot cover: not begun yet, or over before the agreement took effect."""


ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}


@dataclass(frozen=True)
class Period:
    label: str
    title: str  # "6 tháng đầu năm 2027", "quý IV năm 2027", "năm 2027", "từ ngày … đến ngày …"
    start: datetime
    end: datetime  # exclusive

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def vn_date(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def parse_period(text: str, tz, *, effective: date | None = None, now: datetime | None = None) -> Period:
    """'2027Q4', '2027H1' or '2027' -> that quarter, half year or year, midnight to midnight in `tz` (end exclusive).

    With `now` a period that has not begun is refused, with `effective` one that ends before that day (PeriodRefused).
    """
    match = PERIOD_RE.match(text.strip())
    if not match:
        raise PeriodError(f"{text!r} is not a period: write a quarter YYYYQ1–YYYYQ4, a half year YYYYH1 or YYYYH2, "
                          f"a year YYYY, or --from DATE --to DATE")
    year, unit, n = int(match.group(1)), (match.group(2) or "").upper(), int(match.group(3) or 0)
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise PeriodError(f"{text!r}: the year must be between {MIN_YEAR} and {MAX_YEAR}")
    if unit == "H" and n > 2:
        raise PeriodError(f"{text!r} is not a half year: write YYYYH1 (January–June) or YYYYH2 (July–December)")
    months = {"Q": 3, "H": 6, "": 12}[unit]
    first = 1 + (max(n, 1) - 1) * months
    start = datetime(year, first, 1, tzinfo=tz)
    end = datetime(year + 1, 1, 1, tzinfo=tz) if first + months > 12 else datetime(year, first + months, 1, tzinfo=tz)
    title = (f"quý {ROMAN[n]} năm {year}" if unit == "Q" else
             f"6 tháng {'đầu' if n == 1 else 'cuối'} năm {year}" if unit == "H" else f"năm {year}")
    return _checked(Period(f"{year}{unit}{n or ''}", title, start, end), effective, now)


def parse_range(first: str, last: str, tz, *, effective: date | None = None, now: datetime | None = None) -> Period:
    """--from DATE --to DATE: both days included, midnight to midnight in `tz`."""
    days = []
    for text, hint in ((first, "--from"), (last, "--to")):
        try:
            day = date.fromisoformat(text.strip())
        except ValueError:
            raise PeriodError(f"{hint} {text!r} is not a date: write YYYY-MM-DD") from None
        if not MIN_YEAR <= day.year <= MAX_YEAR:
            raise PeriodError(f"{hint} {text}: the year must be between {MIN_YEAR} and {MAX_YEAR}")
        days.append(day)
    if days[1] < days[0]:
        raise PeriodError(f"--to {last} is before --from {first}")
    start = datetime.combine(days[0], time(0), tzinfo=tz)
    end = datetime.combine(days[1] + timedelta(days=1), time(0), tzinfo=tz)
    title = f"từ ngày {vn_date(days[0])} đến ngày {vn_date(days[1])}"
    return _checked(Period(f"{days[0].isoformat()}..{days[1].isoformat()}", title, start, end), effective, now)


def _checked(period: Period, effective: date | None, now: datetime | None) -> Period:
    if now is not None and period.start > now:
        raise PeriodRefused(f"period {period.label} has not begun yet (it starts on {vn_date(period.start.date())}); "
                            f"a report covers only what has happened")
    if effective is not None and period.end <= datetime.combine(effective, time(0), tzinfo=period.start.tzinfo):
        raise PeriodRefused(f"period {period.label} ends before the agreement took effect on {vn_date(effective)} "
                            f"(config.yaml agreement.effective)")
    return period


def of_policy(policy, *, period: str | None = None, first: str | None = None, last: str | None = None,
              now: datetime | None = None) -> Period:
    """The period a report of `policy` asks for, refused if it has not begun by `now` or ended before the agreement."""
    from engine import clock

    bounds = {"effective": policy.config.agreement.effective, "now": now or clock.now()}
    if period is not None:
        return parse_period(period, policy.tz, **bounds)
    return parse_range(first or "", last or "", policy.tz, **bounds)


def cadence_label(policy, now: datetime) -> str:
    """The period of the agreement's review cadence that holds `now`: the schedules starting a meeting workflow meet
    1, 2 or 4 times a year (a year, half years, quarters); any other cadence, or none, gives half years."""
    months = {m for s in policy.schedules.values() if getattr(policy.workflows.get(s.start), "meeting", None)
              for m in s.every.months}
    per_year = len(months) if len(months) in (1, 2, 4) else 2
    local = now.astimezone(policy.tz)
    if per_year == 1:
        return str(local.year)
    size = 12 // per_year
    return f"{local.year}{'H' if per_year == 2 else 'Q'}{(local.month - 1) // size + 1}"
