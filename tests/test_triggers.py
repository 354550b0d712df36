"""Tests for engine.scheduling.triggers: CalendarRuleTrigger occurrences, DST handling and APScheduler use.

Hand-checked facts (1 Jan 2027 is a Friday): 15 May 2027 is a Saturday (Mon 17 May next,
Fri 14 May previous); VN holidays Thu 2 - Fri 3 Sept 2027 (so the next working day after
2 Sept is Mon 6 Sept); Tết 2027 is Thu 4 - Wed 10 Feb, leaving 15 working days in Feb 2027,
the last Fri 26 Feb; 30 June 2027 is a Wednesday. Europe/Berlin switches on Sun 28 Mar 2027
(02:00 CET -> 03:00 CEST, at 01:00 UTC) and Sun 31 Oct 2027 (03:00 CEST -> 02:00 CET, at
01:00 UTC).
"""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from engine.policy.spec import CalendarRule, DayRule
from engine.rules.workcalendar import WorkCalendar
from engine.scheduling.triggers import CalendarRuleTrigger, occurrence_facts

UTC = UTC
VN = ZoneInfo("Asia/Ho_Chi_Minh")
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(scope="module")
def cal() -> WorkCalendar:
    """The default Vietnamese calendar."""
    return WorkCalendar("Asia/Ho_Chi_Minh")


@pytest.fixture(scope="module")
def berlin() -> WorkCalendar:
    """A German calendar in a DST zone."""
    return WorkCalendar("Europe/Berlin", country="DE")


def rule(months: list[int], at: str = "08:00", **day: object) -> CalendarRule:
    """A calendar rule built from keyword day options."""
    return CalendarRule(months=months, day=DayRule(**day), at=at)


def utc(*args: int) -> datetime:
    """A UTC aware datetime."""
    return datetime(*args, tzinfo=UTC)


def between(trigger: CalendarRuleTrigger, start: datetime, end: datetime) -> list[datetime]:
    """All occurrences in (start, end]."""
    return list(trigger.occurrences(start, end))


def first_working_day_trigger(cal: WorkCalendar) -> CalendarRuleTrigger:
    """June and December, first working day, 08:00."""
    return CalendarRuleTrigger(rule([6, 12], nth_working_day=1), cal)


def job_target() -> None:
    """A module-level job function that is never run here."""


# --------------------------------------------------------------------------- nth working day


def test_first_working_day_june_december_2027_2030(cal):
    """The first working days of June and December 2027-2030 are eight ordered weekday dates."""
    trigger = first_working_day_trigger(cal)
    found = between(trigger, datetime(2027, 1, 1, tzinfo=VN), datetime(2030, 12, 31, tzinfo=VN))
    assert len(found) == 8
    assert found == sorted(found, key=lambda t: t.astimezone(UTC))
    expected = [cal.nth_working_day(y, m, 1) for y in range(2027, 2031) for m in (6, 12)]
    assert [t.date() for t in found] == expected
    for t in found:
        assert t.tzinfo is VN and (t.hour, t.minute) == (8, 0)
        assert t.month in (6, 12)
        assert cal.is_working_day(t.date()) and t.weekday() < 5
        assert all(not cal.is_working_day(t.date().replace(day=d)) for d in range(1, t.day))
    # Hand-checked: 1 Dec 2029 is a Saturday, 1 Jun 2030 a Saturday, 1 Dec 2030 a Sunday.
    assert [t.date() for t in found][5:] == [date(2029, 12, 3), date(2030, 6, 3),
                                              date(2030, 12, 2)]
    assert found[0] == datetime(2027, 6, 1, 8, 0, tzinfo=VN)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(-1, date(2027, 6, 30)), (23, date(2027, 2, 26)), (-23, date(2027, 2, 1))],
    ids=["last-working-day", "beyond-feb-clamps-to-last", "beyond-feb-from-end-clamps-to-first"],
)
def test_nth_working_day_edges(cal, n, expected):
    """Counting from the month end works, and an n beyond the month's working days clamps."""
    trigger = CalendarRuleTrigger(rule([expected.month], nth_working_day=n), cal)
    found = between(trigger, datetime(2027, 1, 1, tzinfo=VN), datetime(2027, 12, 31, tzinfo=VN))
    assert [t.date() for t in found] == [expected]


# --------------------------------------------------------------------------- fixed day


@pytest.mark.parametrize(
    ("day", "month", "shift", "expected"),
    [
        (15, 5, "next", date(2027, 5, 17)),
        (15, 5, "previous", date(2027, 5, 14)),
        (15, 5, "none", date(2027, 5, 15)),
        (2, 9, "next", date(2027, 9, 6)),
        (31, 6, "none", date(2027, 6, 30)),
    ],
    ids=["sat-next-monday", "sat-previous-friday", "sat-unshifted", "holidays-then-weekend",
         "day-31-in-june-is-30th"],
)
def test_fixed_day_shift(cal, day, month, shift, expected):
    """A fixed day is moved to a working day as `shift` says; day 31 means the last day."""
    trigger = CalendarRuleTrigger(rule([month], day=day, shift=shift), cal)
    found = between(trigger, datetime(2027, 1, 1, tzinfo=VN), datetime(2027, 12, 31, tzinfo=VN))
    assert found == [datetime(expected.year, expected.month, expected.day, 8, 0, tzinfo=VN)]


def test_shift_can_cross_into_next_year(cal):
    """31 Dec 2027 (a Friday, a working day) stays; a forced day off moves it into January."""
    off = WorkCalendar("Asia/Ho_Chi_Minh", extra_days_off=[date(2027, 12, 31)])
    trigger = CalendarRuleTrigger(rule([12], day=31, shift="next"), off)
    found = between(trigger, datetime(2027, 12, 1, tzinfo=VN), datetime(2028, 1, 31, tzinfo=VN))
    assert [t.date() for t in found] == [off.next_working_day(date(2027, 12, 31))]
    assert found[0].year == 2028
    assert between(CalendarRuleTrigger(rule([12], day=31), cal), datetime(2027, 12, 1, tzinfo=VN),
                   datetime(2028, 1, 31, tzinfo=VN)) == [datetime(2027, 12, 31, 8, tzinfo=VN)]


# --------------------------------------------------------------------------- DST


@pytest.mark.parametrize(
    ("month", "day", "expected_utc", "expected_local"),
    [
        (3, 28, utc(2027, 3, 28, 1, 0), "2027-03-28T03:00:00+02:00"),
        (10, 31, utc(2027, 10, 31, 0, 30), "2027-10-31T02:30:00+02:00"),
    ],
    ids=["spring-forward-gap-fires-at-0300", "fall-back-fires-first-0230-only"],
)
def test_berlin_0230_on_dst_days(berlin, month, day, expected_utc, expected_local):
    """02:30 Berlin on a DST change day fires exactly once, at the right UTC instant."""
    trigger = CalendarRuleTrigger(rule([month], at="02:30", day=day, shift="none"), berlin)
    found = between(trigger, utc(2027, 1, 1), utc(2027, 12, 31))
    assert len(found) == 1
    assert found[0].astimezone(UTC) == expected_utc
    assert found[0].isoformat() == expected_local
    # Stepping like the scheduler: after it fires, the next one is a year later, and asking
    # at any instant of that day after the firing (including the repeated 02:30) gives the same.
    nxt = trigger.get_next_fire_time(found[0], found[0])
    assert nxt.date() == date(2028, month, day)
    for minutes in (1, 30, 60, 90, 120):
        later = expected_utc + timedelta(minutes=minutes)
        assert trigger.get_next_fire_time(None, later) == nxt


def test_berlin_normal_day_offset(berlin):
    """On an ordinary summer day 02:30 Berlin is 00:30 UTC."""
    trigger = CalendarRuleTrigger(rule([7], at="02:30", day=1, shift="none"), berlin)
    found = trigger.get_next_fire_time(None, utc(2027, 1, 1))
    assert found.astimezone(UTC) == utc(2027, 7, 1, 0, 30)


# --------------------------------------------------------------------------- stepping


def test_previous_fire_time_returns_following_occurrence(cal):
    """Given the previous firing, the next is the following occurrence, never the same one."""
    trigger = first_working_day_trigger(cal)
    first = trigger.get_next_fire_time(None, datetime(2027, 1, 1, tzinfo=VN))
    assert first == datetime(2027, 6, 1, 8, 0, tzinfo=VN)
    assert trigger.get_next_fire_time(first, first) == datetime(2027, 12, 1, 8, 0, tzinfo=VN)
    # `now` long after previous (downtime): still the very next occurrence, none skipped.
    assert trigger.get_next_fire_time(first, datetime(2029, 1, 1, tzinfo=VN)) == \
        datetime(2027, 12, 1, 8, 0, tzinfo=VN)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2027, 6, 1, 8, 0, tzinfo=VN), datetime(2027, 6, 1, 8, 0, tzinfo=VN)),
        (datetime(2027, 6, 1, 8, 0, 1, tzinfo=VN), datetime(2027, 12, 1, 8, 0, tzinfo=VN)),
        (utc(2027, 6, 1, 1, 0), datetime(2027, 6, 1, 8, 0, tzinfo=VN)),
    ],
    ids=["exactly-now-counts", "just-after-goes-to-next", "now-in-another-zone"],
)
def test_first_fire_time_at_or_after_now(cal, now, expected):
    """Without a previous firing the result is the first occurrence at or after now."""
    assert first_working_day_trigger(cal).get_next_fire_time(None, now) == expected


def test_chained_steps_equal_occurrences(cal):
    """Chaining get_next_fire_time visits exactly the occurrences list, once each."""
    trigger = first_working_day_trigger(cal)
    start, end = datetime(2027, 1, 1, tzinfo=VN), datetime(2030, 12, 31, tzinfo=VN)
    stepped, t = [], trigger.get_next_fire_time(None, start)
    while t is not None and t <= end:
        stepped.append(t)
        t = trigger.get_next_fire_time(t, t)
    assert stepped == between(trigger, start, end)


def test_naive_datetime_refused(cal):
    """A naive `now` is a caller error, not a guess."""
    with pytest.raises(ValueError, match="timezone-aware"):
        first_working_day_trigger(cal).get_next_fire_time(None, datetime(2027, 1, 1))


def test_no_working_day_returns_none():
    """A calendar whose months have no working day gives None instead of looping forever."""
    closed = WorkCalendar("Asia/Ho_Chi_Minh", weekend=range(7), country=None)
    trigger = CalendarRuleTrigger(rule([6], nth_working_day=1), closed)
    assert trigger.get_next_fire_time(None, utc(2027, 1, 1)) is None


# --------------------------------------------------------------------------- text, pickling, facts


def test_str_and_repr(cal):
    """The text form names months, day rule, time and zone."""
    trigger = CalendarRuleTrigger(rule([12, 6], nth_working_day=10), cal)
    assert str(trigger) == "calendar[months=6,12 day=nth_working_day 10 at 08:00 Asia/Ho_Chi_Minh]"
    assert repr(trigger).startswith("<CalendarRuleTrigger (months=6,12")
    fixed = CalendarRuleTrigger(rule([5], day=15, shift="previous"), cal)
    assert str(fixed) == "calendar[months=5 day=15 shift=previous at 08:00 Asia/Ho_Chi_Minh]"


def test_pickle_round_trip_keeps_occurrences():
    """A pickled trigger rebuilds its calendar, overrides included, and fires the same."""
    off = WorkCalendar("Asia/Ho_Chi_Minh", extra_days_off={date(2027, 6, 1): "Closed"},
                       extra_working_days=[date(2027, 12, 4)])
    trigger = CalendarRuleTrigger(rule([6, 12], nth_working_day=1), off)
    copy = pickle.loads(pickle.dumps(trigger))
    start, end = utc(2027, 1, 1), utc(2029, 1, 1)
    assert between(copy, start, end) == between(trigger, start, end)
    assert between(copy, start, end)[0].date() == date(2027, 6, 2)
    assert str(copy) == str(trigger)


@pytest.mark.parametrize(
    ("at", "facts"),
    [
        (datetime(2027, 6, 14, 8, 0, tzinfo=VN),
         {"year": 2027, "month": 6, "half": 1, "period": "2027H1", "date": "2027-06-14",
          "at": "2027-06-14T08:00:00+07:00"}),
        (datetime(2027, 12, 1, 8, 0, tzinfo=VN),
         {"year": 2027, "month": 12, "half": 2, "period": "2027H2", "date": "2027-12-01",
          "at": "2027-12-01T08:00:00+07:00"}),
    ],
    ids=["june-first-half", "december-second-half"],
)
def test_occurrence_facts(at, facts):
    """occurrence_facts gives year, month, half, period, date and ISO instant."""
    assert occurrence_facts(at) == facts


# --------------------------------------------------------------------------- APScheduler


def test_paused_background_scheduler_computes_next_run_time(cal):
    """A paused BackgroundScheduler with a memory store accepts the trigger and schedules it."""
    trigger = first_working_day_trigger(cal)
    scheduler = BackgroundScheduler(jobstores={"default": MemoryJobStore()}, timezone=VN)
    scheduler.start(paused=True)
    try:
        before = datetime.now(VN)
        job = scheduler.add_job(job_target, trigger=trigger, id="report", args=(),
                                misfire_grace_time=None, coalesce=True, replace_existing=True)
        after = datetime.now(VN)
        assert job.next_run_time in (trigger.get_next_fire_time(None, before),
                                     trigger.get_next_fire_time(None, after))
        assert job.next_run_time > before
        assert job.next_run_time.month in (6, 12)
        assert (job.next_run_time.hour, job.next_run_time.minute) == (8, 0)
        assert scheduler.get_job("report").trigger is trigger
    finally:
        scheduler.shutdown(wait=False)


def test_sqlalchemy_job_store_round_trip(cal, tmp_path):
    """A persistent job store pickles and restores the trigger with the same next run time."""
    pytest.importorskip("sqlalchemy")
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    trigger = first_working_day_trigger(cal)
    scheduler = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(url=url)},
                                    timezone=VN)
    scheduler.start(paused=True)
    try:
        job = scheduler.add_job(job_target, trigger=trigger, id="report",
                                misfire_grace_time=None, coalesce=True)
        restored = scheduler.get_job("report")
        assert restored.trigger is not trigger
        assert str(restored.trigger) == str(trigger)
        assert restored.next_run_time == job.next_run_time
    finally:
        scheduler.shutdown(wait=False)
