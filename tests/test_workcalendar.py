"""Tests for engine.rules.workcalendar: Vietnamese working days and deadline arithmetic.

Holiday facts below were printed from `holidays` 0.109 first (VN 2027: Tết Thu 4 - Wed 10 Feb,
30/4 Fri, 1/5 Sat with Mon 3 May observed, 2-3 Sept Thu-Fri; VN 2025: Fri 2 May already listed
as a day off substituted from Sat 26 Apr) and the weekdays checked by hand.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from engine.rules.workcalendar import WorkCalendar

VN = ZoneInfo("Asia/Ho_Chi_Minh")
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    """The default Vietnamese calendar."""
    return WorkCalendar("Asia/Ho_Chi_Minh")


def vn(*args: int) -> datetime:
    """A Vietnam-local aware datetime."""
    return datetime(*args, tzinfo=VN)


def end_of(y: int, m: int, d: int, tz: ZoneInfo = VN) -> datetime:
    """The exclusive end of a local day: next day's midnight."""
    nxt = date(y, m, d) + timedelta(days=1)
    return datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)


def test_tet_2027_days_are_off(cal):
    """Every day of Tết 2027 (Thu 4 - Wed 10 Feb per the package) is off; Thu 11 Feb works."""
    assert date(2027, 2, 6).weekday() == 5  # Lunar New Year's Day 2027 is a Saturday
    for day in range(4, 11):
        assert not cal.is_working_day(date(2027, 2, day)), day
    assert "Lunar New Year" in cal.holiday_name(date(2027, 2, 8))
    assert cal.is_working_day(date(2027, 2, 3)) and cal.is_working_day(date(2027, 2, 11))


def test_tet_2027_skipped_by_working_day_deadline(cal):
    """One working day after Wed 3 Feb 2027 jumps over Tết to the end of Thu 11 Feb."""
    assert cal.add_working_days(vn(2027, 2, 3, 10), 1) == end_of(2027, 2, 11)


@pytest.mark.parametrize(
    ("start", "n", "last_day"),
    [
        (vn(2027, 4, 29, 9), 1, date(2027, 5, 4)),   # Fri 30/4, Sat 1/5, Mon 3/5 observed
        (vn(2026, 4, 29, 9), 1, date(2026, 5, 4)),   # Thu 30/4, Fri 1/5, then weekend
        (vn(2027, 9, 1, 9), 1, date(2027, 9, 6)),    # Thu 2/9 and Fri 3/9, then weekend
    ],
    ids=["30-4-and-1-5-2027", "30-4-and-1-5-2026", "2-september-2027"],
)
def test_national_holidays_skipped(cal, start, n, last_day):
    """Reunification Day, Labour Day and National Day are not working days."""
    assert cal.add_working_days(start, n) == end_of(last_day.year, last_day.month, last_day.day)


def test_national_holiday_names(cal):
    """30/4, 1/5 and 2/9 carry the package's names."""
    assert cal.holiday_name(date(2027, 4, 30)) == "Liberation Day/Reunification Day"
    assert cal.holiday_name(date(2027, 5, 1)) == "International Labor Day"
    assert cal.holiday_name(date(2027, 9, 2)) == "National Day"
    assert cal.holiday_name(date(2027, 3, 9)) is None


@pytest.mark.parametrize(
    ("start", "n", "last_day"),
    [
        (vn(2027, 3, 5, 15), 1, date(2027, 3, 8)),   # Fri -> Mon
        (vn(2027, 3, 5, 15), 5, date(2027, 3, 12)),  # Fri -> next Fri
        (vn(2027, 3, 6, 11), 1, date(2027, 3, 8)),   # started on a Saturday
    ],
    ids=["fri-plus-1", "fri-plus-5", "sat-plus-1"],
)
def test_weekend_skipped(cal, start, n, last_day):
    """Saturdays and Sundays are not counted."""
    assert cal.add_working_days(start, n) == end_of(last_day.year, last_day.month, last_day.day)


@pytest.mark.parametrize(
    "start",
    [vn(2027, 3, 8, 0, 0), vn(2027, 3, 8, 23, 59), datetime(2027, 3, 7, 20, 0, tzinfo=UTC)],
    ids=["monday-midnight", "monday-late", "utc-sunday-is-vn-monday"],
)
def test_starting_day_not_counted(cal, start):
    """Whatever the hour on Mon 8 Mar (local), 1 working day ends at the end of Tue 9 Mar."""
    result = cal.add_working_days(start, 1)
    assert result == end_of(2027, 3, 9)
    assert str(result.tzinfo) == "Asia/Ho_Chi_Minh" and result.utcoffset() == timedelta(hours=7)


def test_calendar_days_landing_on_sunday_move_to_monday(cal):
    """Wed 3 Mar 2027 + 4 calendar days is Sun 7 Mar, so the deadline is the end of Mon 8 Mar."""
    assert cal.add_days(vn(2027, 3, 3, 14), 4) == end_of(2027, 3, 8)
    assert cal.add_days(vn(2027, 3, 3, 14), 2) == end_of(2027, 3, 5)


def test_calendar_days_landing_on_holiday_move_past_it(cal):
    """Calendar-day deadline ending on Tết's first day moves to Thu 11 Feb 2027."""
    assert cal.add_days(vn(2027, 1, 30, 9), 5) == end_of(2027, 2, 11)


def test_negative_counts_go_backwards(cal):
    """T-7 working days before Mon 15 Mar 2027 is Thu 4 Mar; -1 calendar day from Mon is Fri."""
    assert cal.add_working_days(vn(2027, 3, 15, 9), -7) == end_of(2027, 3, 4)
    assert cal.add_days(vn(2027, 3, 15, 9), -1) == end_of(2027, 3, 12)


def test_zero_days_is_end_of_start_or_next_working_day(cal):
    """n=0 gives the end of the start day, or of the next working day when it is off."""
    assert cal.add_working_days(vn(2027, 3, 8, 9), 0) == end_of(2027, 3, 8)
    assert cal.add_working_days(vn(2027, 3, 6, 9), 0) == end_of(2027, 3, 8)
    assert cal.add_days(vn(2027, 3, 6, 9), 0) == end_of(2027, 3, 8)


def test_2025_swap_via_overrides():
    """The 2025 swap: Sat 26 Apr worked (override only) and Fri 2 May off (package and override)."""
    plain = WorkCalendar("Asia/Ho_Chi_Minh")
    swapped = WorkCalendar("Asia/Ho_Chi_Minh", extra_days_off=[date(2025, 5, 2)],
                           extra_working_days=[date(2025, 4, 26)])
    assert not plain.is_working_day(date(2025, 4, 26))
    assert not plain.is_working_day(date(2025, 5, 2))  # the package already knows this half
    assert swapped.is_working_day(date(2025, 4, 26))
    assert not swapped.is_working_day(date(2025, 5, 2))
    assert plain.add_working_days(vn(2025, 4, 25, 9), 1) == end_of(2025, 4, 28)
    assert swapped.add_working_days(vn(2025, 4, 25, 9), 1) == end_of(2025, 4, 26)
    assert swapped.add_working_days(vn(2025, 4, 29, 9), 1) == end_of(2025, 5, 5)


def test_extra_days_off_without_package_holidays():
    """With country=None only weekends and configured days are off; a mapping names them."""
    cal = WorkCalendar("Asia/Ho_Chi_Minh", country=None,
                       extra_days_off={date(2025, 5, 2): "Swap for Sat 26 Apr"})
    assert cal.is_working_day(date(2025, 4, 30))
    assert not cal.is_working_day(date(2025, 5, 2))
    assert cal.holiday_name(date(2025, 5, 2)) == "Swap for Sat 26 Apr"
    assert WorkCalendar("UTC", country=None, extra_days_off=[date(2025, 5, 2)]).holiday_name(
        date(2025, 5, 2)) == "Day off (configured)"


@pytest.mark.parametrize(
    ("year", "month", "n", "expected"),
    [
        (2027, 6, 1, date(2027, 6, 1)),     # Tue 1 June 2027
        (2027, 6, 22, date(2027, 6, 30)),   # June 2027 has 22 working days
        (2027, 6, -1, date(2027, 6, 30)),   # Wed 30 June
        (2027, 12, 1, date(2027, 12, 1)),   # Wed 1 Dec 2027
        (2027, 12, 5, date(2027, 12, 7)),   # Wed 1, Thu 2, Fri 3, Mon 6, Tue 7
        (2027, 12, -1, date(2027, 12, 31)),  # Fri 31 Dec
        (2027, 12, -2, date(2027, 12, 30)),
        (2027, 5, 1, date(2027, 5, 4)),     # Sat 1/5 holiday, Mon 3/5 observed
    ],
    ids=["jun-first", "jun-22nd", "jun-last", "dec-first", "dec-5th", "dec-last",
         "dec-second-last", "may-first"],
)
def test_nth_working_day(cal, year, month, n, expected):
    """nth_working_day counts from the start (n>=1) or from the end (n<0) of the month."""
    assert cal.nth_working_day(year, month, n) == expected


@pytest.mark.parametrize("n", [0, 23, -23], ids=["zero", "too-many", "too-many-from-end"])
def test_nth_working_day_out_of_range(cal, n):
    """June 2027 has 22 working days, so n=0 and |n|>22 are refused."""
    with pytest.raises(ValueError, match="22 working days"):
        cal.nth_working_day(2027, 6, n)


@pytest.mark.parametrize(
    ("direction", "expected"),
    [("next", date(2027, 3, 8)), ("previous", date(2027, 3, 5)), ("none", date(2027, 3, 6))],
    ids=["next", "previous", "none"],
)
def test_shift_to_working_day(cal, direction, expected):
    """Sat 6 Mar 2027 shifts to Mon 8, Fri 5 or stays, by direction."""
    assert cal.shift_to_working_day(date(2027, 3, 6), direction) == expected
    assert cal.shift_to_working_day(date(2027, 3, 9), direction) == date(2027, 3, 9)


def test_next_working_day(cal):
    """next_working_day excludes d unless include=True and d works."""
    assert cal.next_working_day(date(2027, 3, 8)) == date(2027, 3, 9)
    assert cal.next_working_day(date(2027, 3, 8), include=True) == date(2027, 3, 8)
    assert cal.next_working_day(date(2027, 3, 6), include=True) == date(2027, 3, 8)


def test_add_hours_runs_around_the_clock(cal):
    """A 6 h incident timer started Fri 22:00 ends Sat 04:00, through weekends and holidays."""
    assert cal.add_hours(vn(2027, 3, 5, 22), 6) == vn(2027, 3, 6, 4)
    assert cal.add_hours(vn(2027, 2, 5, 12), 24) == vn(2027, 2, 6, 12)


def test_dst_add_hours_across_spring_forward():
    """3 h after 23:30 CET on 29 Mar 2025 is 01:30 UTC, shown as 03:30 CEST (one hour skipped)."""
    cal = WorkCalendar("Europe/Berlin", country="DE")
    result = cal.add_hours(datetime(2025, 3, 29, 23, 30, tzinfo=BERLIN), 3)
    assert result == datetime(2025, 3, 30, 1, 30, tzinfo=UTC)
    assert (result.hour, result.minute, result.utcoffset()) == (3, 30, timedelta(hours=2))


def test_dst_add_hours_across_fall_back():
    """3 h after 00:30 CEST on 26 Oct 2025 is 01:30 UTC, shown as 02:30 CET."""
    cal = WorkCalendar("Europe/Berlin", country="DE")
    result = cal.add_hours(datetime(2025, 10, 26, 0, 30, tzinfo=BERLIN), 3)
    # 02:30 occurs twice that night; PEP 495 makes == across zones False for such times,
    # so compare in UTC.
    assert result.astimezone(UTC) == datetime(2025, 10, 26, 1, 30, tzinfo=UTC)
    assert (result.hour, result.fold, result.utcoffset()) == (2, 1, timedelta(hours=1))


@pytest.mark.parametrize(
    ("start", "offset_before", "expected_utc"),
    [
        (datetime(2025, 3, 28, 10, tzinfo=BERLIN), 1, datetime(2025, 3, 31, 22, tzinfo=UTC)),
        (datetime(2025, 10, 24, 10, tzinfo=BERLIN), 2, datetime(2025, 10, 27, 23, tzinfo=UTC)),
    ],
    ids=["spring-forward-weekend", "fall-back-weekend"],
)
def test_dst_working_day_end_has_local_offset(start, offset_before, expected_utc):
    """Fri + 1 working day across a DST weekend ends at Tue 00:00 local with the new offset."""
    cal = WorkCalendar("Europe/Berlin", country="DE")
    assert start.utcoffset() == timedelta(hours=offset_before)
    result = cal.add_working_days(start, 1)
    assert result == expected_utc
    assert (result.weekday(), result.hour, result.minute) == (1, 0, 0)
    assert result.utcoffset() == timedelta(hours=3 - offset_before)


def test_end_of_day_where_midnight_does_not_exist():
    """In Santiago 8 Sep 2024 starts at 01:00 -03 (no midnight); the end of 7 Sep is that instant."""
    cal = WorkCalendar("America/Santiago", weekend=(), country=None)
    result = cal.add_days(datetime(2024, 9, 6, 12, tzinfo=cal.tz), 1)
    assert result == datetime(2024, 9, 8, 4, tzinfo=UTC)
    assert (result.hour, result.utcoffset()) == (1, timedelta(hours=-3))


@pytest.mark.parametrize("tz", ["Asia/Hanoi", "Mars/Olympus", "../etc/passwd", ""],
                         ids=["no-such-zone", "made-up", "path", "empty"])
def test_unknown_time_zone(tz):
    """An unknown time zone is a ValueError naming it."""
    with pytest.raises(ValueError, match="unknown time zone"):
        WorkCalendar(tz)


@pytest.mark.parametrize(("country", "subdivision"), [("XX", None), ("VN", "ZZ")],
                         ids=["country", "subdivision"])
def test_unknown_country_or_subdivision(country, subdivision):
    """An unknown country or subdivision is a ValueError."""
    with pytest.raises(ValueError, match="unknown country"):
        WorkCalendar("Asia/Ho_Chi_Minh", country=country, subdivision=subdivision)


def test_bad_configuration_refused():
    """Weekday numbers out of range, contradictory overrides and bad directions are refused."""
    with pytest.raises(ValueError, match="weekday numbers"):
        WorkCalendar("UTC", weekend=(6, 7))
    with pytest.raises(ValueError, match="both"):
        WorkCalendar("UTC", extra_days_off=[date(2025, 1, 2)], extra_working_days=[date(2025, 1, 2)])
    with pytest.raises(ValueError, match="direction"):
        WorkCalendar("UTC", country=None).shift_to_working_day(date(2025, 1, 2), "later")


@pytest.mark.parametrize("method", ["add_working_days", "add_days", "add_hours"],
                         ids=["working-days", "days", "hours"])
def test_naive_datetime_refused(cal, method):
    """Deadline methods refuse a naive datetime."""
    with pytest.raises(ValueError, match="naive"):
        getattr(cal, method)(datetime(2027, 3, 8, 9), 1)


def test_is_working_day_is_cheap_after_warm_up(cal):
    """After a year is cached, is_working_day costs well under 20 µs per call."""
    days = [date(2027, 1, 1) + timedelta(days=i) for i in range(365)]
    cal.is_working_day(days[0])
    t0 = time.perf_counter()
    for _ in range(20):
        for d in days:
            cal.is_working_day(d)
    assert (time.perf_counter() - t0) / (20 * 365) < 20e-6
