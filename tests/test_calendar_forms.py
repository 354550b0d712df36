"""Calendar rule forms (issue #10 item 1) across 2027-2030, against an independent computation.

The expected days are computed here from the `holidays` package and the yearly overrides with
the standard library's `calendar` module, not with WorkCalendar. The overrides are invented for
the test (the government announces real ones yearly): 2028-08-07 (the first Monday of August
2028) is a swapped day off, worked back on Saturday 2028-08-12.

Hand-checked facts: Friday 30 April 2027 is Reunification Day, so "the last Friday of April
2027, shift previous" is Thursday 29 April (it moves backwards); Wednesday 1 September 2027
is a working day and Thursday 2 September is National Day.
"""

from __future__ import annotations

import calendar as stdcal
from datetime import UTC, date, datetime, timedelta

import holidays
import pytest
from pydantic import ValidationError

from engine.policy.spec import CalendarRule
from engine.rules.workcalendar import WorkCalendar
from engine.scheduling.triggers import CalendarRuleTrigger

OFF = {date(2028, 8, 7): "Ngày nghỉ hoán đổi"}
WORK = {date(2028, 8, 12)}
YEARS = range(2027, 2031)
PUBLIC = holidays.country_holidays("VN", years=range(2026, 2032))


def working(d: date) -> bool:
    """The independent definition: overrides first, then weekend and public holidays."""
    if d in WORK:
        return True
    return not (d in OFF or d.weekday() >= 5 or d in PUBLIC)


def month_days(year: int, months: range | list) -> list[date]:
    return [d for m in months for d in stdcal.Calendar().itermonthdates(year, m) if d.month == m]


def periods(rule: dict) -> list[list[date]]:
    if "quarters" in rule:
        return [month_days(y, range(3 * q - 2, 3 * q + 1)) for y in YEARS for q in rule["quarters"]]
    return [month_days(y, [m]) for y in YEARS for m in rule["months"]]


def expected(rule: dict) -> list[date]:
    out = []
    for days in periods(rule):
        day = rule["day"]
        if "nth_working_day" in day:
            pick = [d for d in days if working(d)][day["nth_working_day"] - 1 if day["nth_working_day"] > 0 else day["nth_working_day"]]
        else:
            same = [d for d in days if stdcal.day_abbr[d.weekday()].lower() == day["weekday"]]
            if day.get("working"):
                same = [d for d in same if working(d)]
            pick = same[day["nth"] - 1 if day["nth"] > 0 else day["nth"]]
            shift = day.get("shift", "next")
            step = {"next": 1, "previous": -1}.get(shift)
            while step and not working(pick):
                pick += timedelta(days=step)
            if shift == "same_weekday" and not working(pick):
                options = [pick + timedelta(weeks=w) for w in (1, -1) if working(pick + timedelta(weeks=w))]
                pick = ([o for o in options if o in days] or options)[0]
        out.append(pick)
    return out


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    return WorkCalendar("Asia/Ho_Chi_Minh", extra_days_off=OFF, extra_working_days=WORK)


def computed(rule: dict, cal: WorkCalendar) -> list[date]:
    trigger = CalendarRuleTrigger(CalendarRule.model_validate(rule), cal)
    start = datetime(2026, 12, 31, 17, 0, tzinfo=UTC)  # 1 Jan 2027 00:00 in Vietnam
    end = datetime(2030, 12, 31, 16, 59, tzinfo=UTC)
    return [t.date() for t in trigger.occurrences(start, end)]


FORMS = {
    "first-monday-next": {"months": list(range(1, 13)), "day": {"weekday": "mon", "nth": 1}},
    "first-monday-same-weekday": {"months": list(range(1, 13)), "day": {"weekday": "mon", "nth": 1, "shift": "same_weekday"}},
    "second-wednesday": {"months": list(range(1, 13)), "day": {"weekday": "wed", "nth": 2, "shift": "previous"}},
    "last-friday-previous": {"months": list(range(1, 13)), "day": {"weekday": "fri", "nth": -1, "shift": "previous"}},
    "last-thursday-same-weekday": {"months": list(range(1, 13)), "day": {"weekday": "thu", "nth": -1, "shift": "same_weekday"}},
    "first-working-thursday": {"months": list(range(1, 13)), "day": {"weekday": "thu", "nth": 1, "working": True}},
    "last-working-thursday-of-quarter": {"quarters": [1, 2, 3, 4], "day": {"weekday": "thu", "nth": -1, "working": True}},
    "last-working-thursday-of-quarter-months": {"months": [3, 6, 9, 12], "day": {"weekday": "thu", "nth": -1, "working": True}},
    "tenth-working-day-of-quarter": {"quarters": [1, 2, 3, 4], "day": {"nth_working_day": 10}},
    "last-working-day-of-quarter": {"quarters": [1, 3], "day": {"nth_working_day": -1}},
}


@pytest.mark.parametrize("name", FORMS)
def test_form_matches_independent_computation(name, cal):
    """Every occurrence 2027-2030 is the day computed independently, and a working day."""
    got = computed(FORMS[name], cal)
    assert got == expected(FORMS[name])
    assert all(working(d) for d in got)


def test_chosen_day_on_swapped_day_off(cal):
    """The first Monday of August 2028 is a swapped day off: next goes to Tuesday, same_weekday a week on."""
    assert not working(date(2028, 8, 7)) and date(2028, 8, 7).weekday() == 0
    assert date(2028, 8, 8) in computed(FORMS["first-monday-next"], cal)
    assert date(2028, 8, 14) in computed(FORMS["first-monday-same-weekday"], cal)
    plain = WorkCalendar("Asia/Ho_Chi_Minh")  # without the override the Monday itself
    assert date(2028, 8, 7) in computed(FORMS["first-monday-next"], plain)


def test_chosen_day_moves_backwards(cal):
    """Fri 30 April 2027 is a holiday: the last Friday of April moves back to Thu 29 April."""
    assert date(2027, 4, 30) in PUBLIC
    got = computed(FORMS["last-friday-previous"], cal)
    assert date(2027, 4, 29) in got and date(2027, 4, 30) not in got


def test_same_weekday_stays_inside_the_month(cal):
    """A Thursday that is off moves by a week, staying in its month: back for the last one, on for the first."""
    assert date(2028, 1, 27) in PUBLIC and date(2027, 9, 2) in PUBLIC
    last = computed(FORMS["last-thursday-same-weekday"], cal)
    assert date(2028, 1, 20) in last and date(2028, 2, 3) not in last  # Tết 2028: a week earlier
    first = computed({"months": [9], "day": {"weekday": "thu", "nth": 1, "shift": "same_weekday"}}, cal)
    assert date(2027, 9, 9) in first  # 2 Sept 2027 is National Day; 26 Aug would be in August


def test_explicit_dates(cal):
    """One-off meetings: each listed date once, at the stated time, nothing else."""
    rule = {"dates": [date(2027, 5, 20), date(2029, 11, 8)], "at": "14:00"}
    trigger = CalendarRuleTrigger(CalendarRule.model_validate(rule), cal)
    got = list(trigger.occurrences(datetime(2027, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)))
    assert [(t.date(), t.hour) for t in got] == [(date(2027, 5, 20), 14), (date(2029, 11, 8), 14)]
    after = datetime(2029, 11, 8, 8, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, after) is None


@pytest.mark.parametrize(("rule", "message"), [
    ({"months": [6], "day": {"weekday": "thu"}}, "give 'nth'"),
    ({"months": [6], "day": {"weekday": "thu", "nth": 6}}, r"1 \(the first\) .. 5"),
    ({"months": [6], "day": {"day": 5, "working": True}}, "go with 'weekday'"),
    ({"months": [6], "day": {"day": 5, "shift": "same_weekday"}}, "goes with 'weekday'"),
    ({"quarters": [1], "day": {"day": 5}}, "needs 'months'"),
    ({"months": [6], "quarters": [2], "day": {"day": 5}}, "exactly one of months, quarters or dates"),
    ({"dates": [date(2027, 5, 20)], "day": {"day": 5}}, "leave 'day' out"),
    ({"months": [6]}, "say which day"),
])
def test_mistakes_are_explained(rule, message):
    with pytest.raises(ValidationError, match=message):
        CalendarRule.model_validate(rule)
