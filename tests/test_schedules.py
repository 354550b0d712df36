"""Schedule occurrences and deadline timers under a stepped clock: no daemon process, no sleeping.

The shipped policy (copied into tmp_path) runs on a fresh store while `engine.clock` reads a
`SteppedClock`; `engine.scheduling.schedules.fire_due` is what the daemon's jobs and sweep call, and
`engine.scheduling.timers.submit_due` is what its deadline jobs call.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import copy_shipped_policy
from sqlalchemy import select

from engine import clock
from engine.execution.executor import Executor
from engine.execution.runtime import Runtime
from engine.policy.loader import Policy, load_policy
from engine.scheduling import schedules, timers
from engine.store.database import SqlStore, history, instances, occurrences

VN = ZoneInfo("Asia/Ho_Chi_Minh")
UTC = UTC
PG_URL = os.environ.get("COOPFLOW_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

DST_RULES = """\
# Two schedules whose 02:30 local falls on the 2028 daylight-saving change days in Berlin.
schedules:
  - id: spring_forward
    title: On the last Sunday of March 2028, at a wall time that does not exist
    start: periodic_review
    every:
      months: [3]
      day: {day: 26, shift: none}
      at: "02:30"
    host: {rotate: [dic, police], field: host}
    with:
      period: "=occurrence.period"
  - id: fall_back
    title: On the last Sunday of October 2028, at a wall time that happens twice
    start: periodic_review
    every:
      months: [10]
      day: {day: 29, shift: none}
      at: "02:30"
    host: {rotate: [dic, police], field: host}
    with:
      period: "=occurrence.period"
"""


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def stepped() -> Iterator[clock.SteppedClock]:
    """A stepped clock installed as the process clock (at 2027-01-01 00:00 in Hà Nội), restored afterwards."""
    source = clock.SteppedClock(datetime(2027, 1, 1, tzinfo=VN))
    with clock.using(source.now):
        yield source


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    """The shipped policy, loaded from a copy in tmp_path."""
    return load_policy(copy_shipped_policy(tmp_path / "policy"))


@pytest.fixture
def opened() -> Iterator[list[SqlStore]]:
    """Stores opened by a test; disposed at the end."""
    stores: list[SqlStore] = []
    yield stores
    for store in stores:
        store.dispose()


def _pg_schema_url() -> tuple[str, Callable[[], None]]:
    import psycopg

    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL not reachable at {PG_URL}: {exc}"
        if os.environ.get("COOPFLOW_REQUIRE_PG") == "1":
            pytest.fail(message)
        pytest.skip(message)
    schema = f"t_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f"CREATE SCHEMA {schema}")

    def drop() -> None:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")

    return f"{PG_URL}?options=-csearch_path%3D{schema}", drop


@pytest.fixture(params=["sqlite", "postgres"], ids=["sqlite", "postgres"])
def store_url(request, tmp_path: Path) -> Iterator[str]:
    """A fresh store URL: a SQLite file, or a PostgreSQL schema of its own (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'coopflow.db'}"
        return
    url, drop = _pg_schema_url()
    yield url
    drop()


@pytest.fixture
def store(tmp_path: Path, opened: list[SqlStore]) -> SqlStore:
    """A fresh SQLite store in tmp_path."""
    opened.append(SqlStore(f"sqlite:///{tmp_path / 'coopflow.db'}"))
    return opened[-1]


def runtime_for(policy: Policy, store: SqlStore) -> Runtime:
    return Runtime(policy, store, Executor(store, policy))


def fired_rows(store: SqlStore, schedule: str = "periodic_review") -> list:
    with store.reading() as conn:
        return conn.execute(select(occurrences).where(occurrences.c.schedule == schedule)
                            .order_by(occurrences.c.nominal_at)).mappings().all()


def months(start: date, end: date) -> Iterator[date]:
    """The 15th of every month from `start`'s month to `end`'s, in order."""
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        yield date(year, month, 15)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


# --------------------------------------------------------------------------- the periodic review


def test_four_years_month_by_month_fire_eight_reviews(policy: Policy, store: SqlStore, stepped) -> None:
    """Stepping 2027–2030 month by month fires eight reviews, in June or December, on working days at 08:00, hosts alternating from dic."""
    runtime = runtime_for(policy, store)
    fired = []
    for day in months(date(2027, 1, 1), date(2031, 1, 1)):
        stepped.set(datetime(day.year, day.month, day.day, 12, 0, tzinfo=VN))
        fired += schedules.fire_due(store, policy)
        runtime.settle()

    assert len(fired) == 8
    local = [f.nominal_at.astimezone(VN) for f in fired]
    assert [(t.year, t.month) for t in local] == [(y, m) for y in range(2027, 2031) for m in (6, 12)]
    assert all(policy.calendar.is_working_day(t.date()) for t in local)
    assert all((t.hour, t.minute) == (8, 0) for t in local)
    assert [f.host for f in fired] == ["dic", "police"] * 4
    assert len({f.instance for f in fired}) == 8

    with store.reading() as conn:
        rows = conn.execute(select(instances.c.id, instances.c.state, instances.c.fields)
                            .where(instances.c.workflow == "periodic_review")).all()
    by_id = {r.id: r for r in rows}
    assert [(by_id[f.instance].fields["period"], by_id[f.instance].fields["host"]) for f in fired] == [
        (f"{y}H{h}", host) for (y, h), host in zip([(y, h) for y in range(2027, 2031) for h in (1, 2)],
                                                   ["dic", "police"] * 4, strict=False)]
    assert [r["host"] for r in fired_rows(store)] == ["dic", "police"] * 4


def test_fire_due_twice_at_same_instant_fires_nothing_new(policy: Policy, store: SqlStore, stepped) -> None:
    """Calling fire_due again at the same instant fires nothing new."""
    schedules.fire_due(store, policy)
    stepped.set(datetime(2027, 6, 1, 8, 0, tzinfo=VN))
    first = schedules.fire_due(store, policy)
    assert [f.nominal_at for f in first] == [datetime(2027, 6, 1, 1, 0, tzinfo=UTC)]
    assert first[0].late_by == 0
    assert schedules.fire_due(store, policy) == []
    assert len(fired_rows(store)) == 1


def test_fire_due_before_nominal_instant_fires_nothing(policy: Policy, store: SqlStore, stepped) -> None:
    """One second before the nominal instant nothing is due; at it, the occurrence fires."""
    schedules.fire_due(store, policy)
    stepped.set(datetime(2027, 6, 1, 7, 59, 59, tzinfo=VN))
    assert schedules.fire_due(store, policy) == []
    stepped.advance(timedelta(seconds=1))
    assert len(schedules.fire_due(store, policy)) == 1


def test_occurrences_before_the_store_first_saw_the_schedule_are_not_due(policy: Policy, store: SqlStore, stepped) -> None:
    """A new store starting in July does not fire June's review retroactively; December's fires."""
    stepped.set(datetime(2027, 7, 10, 9, 0, tzinfo=VN))
    assert schedules.fire_due(store, policy) == []
    stepped.set(datetime(2027, 12, 31, 9, 0, tzinfo=VN))
    assert [f.nominal_at.astimezone(VN).month for f in schedules.fire_due(store, policy)] == [12]


def test_downtime_across_june_fires_once_when_time_resumes(policy: Policy, store: SqlStore, stepped) -> None:
    """After a downtime spanning June, the June review fires once (marked late) and not again."""
    runtime = runtime_for(policy, store)
    stepped.set(datetime(2027, 5, 20, 8, 0, tzinfo=VN))
    assert schedules.fire_due(store, policy) == []
    stepped.set(datetime(2027, 7, 10, 9, 0, tzinfo=VN))
    fired = schedules.fire_due(store, policy)
    assert len(fired) == 1
    assert fired[0].nominal_at == datetime(2027, 6, 1, 1, 0, tzinfo=UTC)
    assert fired[0].late_by == (datetime(2027, 7, 10, 9, 0, tzinfo=VN) - datetime(2027, 6, 1, 8, 0, tzinfo=VN)).total_seconds()
    runtime.settle()
    stepped.advance(timedelta(days=1))
    assert schedules.fire_due(store, policy) == []
    runtime.settle()
    with store.reading() as conn:
        periods = conn.execute(select(instances.c.fields).where(instances.c.workflow == "periodic_review")).scalars().all()
    assert [p["period"] for p in periods] == ["2027H1"]


def test_downtime_of_years_fires_each_missed_occurrence_once_in_order(policy: Policy, store: SqlStore, stepped) -> None:
    """A downtime of two years fires each of the four missed reviews once, oldest first, hosts still alternating."""
    schedules.fire_due(store, policy)
    stepped.set(datetime(2029, 1, 20, tzinfo=VN))
    fired = schedules.fire_due(store, policy)
    assert [(f.nominal_at.astimezone(VN).year, f.nominal_at.astimezone(VN).month) for f in fired] == [
        (2027, 6), (2027, 12), (2028, 6), (2028, 12)]
    assert [f.host for f in fired] == ["dic", "police", "dic", "police"]
    assert schedules.fire_due(store, policy) == []


def test_two_daemons_firing_concurrently_fire_each_occurrence_once(policy: Policy, store_url: str, opened, stepped) -> None:
    """Two stores on one database calling fire_due at the same instants from two threads fire each occurrence once."""
    a, b = SqlStore(store_url), SqlStore(store_url)
    opened += [a, b]
    schedules.since(a, "periodic_review")
    results: dict[str, list] = {"a": [], "b": []}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2, timeout=30)

    def daemon(name: str, store: SqlStore) -> None:
        try:
            for day in months(date(2027, 1, 1), date(2031, 1, 1)):
                barrier.wait()
                if name == "a":
                    stepped.set(datetime(day.year, day.month, day.day, 12, 0, tzinfo=VN))
                barrier.wait()
                results[name] += schedules.fire_due(store, policy)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=daemon, args=(n, s)) for n, s in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    fired = sorted(results["a"] + results["b"], key=lambda f: f.nominal_at)
    assert len(fired) == 8
    assert len({f.nominal_at for f in fired}) == 8
    rows = fired_rows(a)
    assert len(rows) == 8
    assert [r["host"] for r in rows] == ["dic", "police"] * 4


def test_concurrent_first_sight_of_a_schedule_agrees_on_since(store_url: str, opened, stepped) -> None:
    """Two stores asking at once when a schedule was first seen both get one answer, without an error."""
    stores = [SqlStore(store_url) for _ in range(4)]
    opened += stores
    barrier = threading.Barrier(len(stores), timeout=30)
    answers: list[datetime] = []
    errors: list[BaseException] = []

    def ask(store: SqlStore) -> None:
        try:
            barrier.wait()
            answers.append(schedules.since(store, "periodic_review"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(answers) == len(stores) and len(set(answers)) == 1


def test_upcoming_lists_next_occurrences_with_rotating_hosts(policy: Policy, store: SqlStore, stepped) -> None:
    """upcoming() gives the next occurrences after now with the hosts they will have (the same before and after firing)."""
    stepped.set(datetime(2027, 5, 20, 8, 0, tzinfo=VN))
    schedules.fire_due(store, policy)
    ahead = schedules.upcoming(store, policy, clock.now(), count=3)
    assert [(at.astimezone(VN).strftime("%Y-%m-%d %H:%M"), host) for _, at, host in ahead] == [
        ("2027-06-01 08:00", "dic"), ("2027-12-01 08:00", "police"), ("2028-06-01 08:00", "dic")]
    stepped.set(datetime(2027, 6, 2, 8, 0, tzinfo=VN))
    schedules.fire_due(store, policy)
    (_, at, host), = schedules.upcoming(store, policy, clock.now())
    assert (at.astimezone(VN).date(), host) == (date(2027, 12, 1), "police")


# --------------------------------------------------------------------------- daylight saving time


@pytest.mark.parametrize(
    ("schedule", "expected_utc", "expected_local"),
    [
        ("spring_forward", datetime(2028, 3, 26, 1, 0, tzinfo=UTC), "2028-03-26T03:00:00+02:00"),
        ("fall_back", datetime(2028, 10, 29, 0, 30, tzinfo=UTC), "2028-10-29T02:30:00+02:00"),
    ],
    ids=["spring-forward-gap", "fall-back-repeat"],
)
def test_dst_change_day_fires_once_at_right_instant(tmp_path: Path, opened, stepped, schedule: str,
                                                    expected_utc: datetime, expected_local: str) -> None:
    """In Europe/Berlin a 02:30 occurrence on a DST change day fires once: at 03:00 CEST when 02:30 does not exist, at the first 02:30 when it happens twice."""
    config = copy_shipped_policy(tmp_path / "berlin")
    config.write_text(config.read_text(encoding="utf-8").replace("timezone: Asia/Ho_Chi_Minh", "timezone: Europe/Berlin"),
                      encoding="utf-8")
    (config.parent / "rules" / "reviews.yaml").write_text(DST_RULES, encoding="utf-8")
    policy = load_policy(config)
    assert policy.tz.key == "Europe/Berlin"
    store = SqlStore(f"sqlite:///{tmp_path / 'berlin.db'}")
    opened.append(store)

    stepped.set(datetime(2028, 1, 1, tzinfo=UTC))
    assert schedules.fire_due(store, policy) == []
    (_, at, _), = [u for u in schedules.upcoming(store, policy, clock.now()) if u[0].id == schedule]
    assert at.astimezone(UTC) == expected_utc

    stepped.set(expected_utc - timedelta(seconds=1))
    assert [f for f in schedules.fire_due(store, policy) if f.schedule == schedule] == []
    stepped.set(expected_utc)
    fired = [f for f in schedules.fire_due(store, policy) if f.schedule == schedule]
    assert len(fired) == 1
    # Compare in UTC: Python never finds an ambiguous local time equal to an instant in another zone.
    assert fired[0].nominal_at.astimezone(UTC) == expected_utc
    assert fired[0].nominal_at.astimezone(policy.tz).isoformat() == expected_local
    assert fired[0].late_by == 0

    # Walk through the rest of the day (across the repeated hour in October) in 10-minute steps.
    for _ in range(6 * 24):
        stepped.advance(timedelta(minutes=10))
        assert [f for f in schedules.fire_due(store, policy) if f.schedule == schedule] == []
    assert [r["nominal_at"] for r in fired_rows(store, schedule)] == [expected_utc]


# --------------------------------------------------------------------------- deadlines


def submit_due_timers(store: SqlStore) -> int:
    """What the daemon's deadline jobs and sweep do: queue every armed timer that is due."""
    with store.transaction() as conn:
        due = timers.armed(conn, due_before=clock.now())
        for timer in due:
            timers.submit_due(conn, timer.id)
    return len(due)


def instance_state(store: SqlStore, instance: str) -> str:
    with store.reading() as conn:
        return conn.execute(select(instances.c.state).where(instances.c.id == instance)).scalar_one()


def test_emergency_review_meeting_deadline_moves_it_on(policy: Policy, store: SqlStore, stepped) -> None:
    """Once both leaders agree, the convened state's deadline at meeting_at fires meeting_time when the clock passes it."""
    runtime = runtime_for(policy, store)
    executor = runtime.executor
    stepped.set(datetime(2027, 3, 1, 9, 0, tzinfo=VN))  # a Monday
    meeting = datetime(2027, 3, 1, 15, 0, tzinfo=VN)
    sub = executor.submit_start("emergency_review", "dic.leader",
                                {"issue": "Tin giả lan truyền", "proposed_by": "dic", "meeting_at": meeting.isoformat()})
    runtime.settle()
    assert instance_state(store, sub.instance) == "proposed"

    stepped.advance(timedelta(minutes=5))
    executor.submit_fire(sub.instance, "agree", "dic.leader:tran_van_binh")
    outcomes = runtime.settle()
    assert outcomes[0].text.startswith("consent recorded for dic: 1 of 2")
    assert instance_state(store, sub.instance) == "proposed"
    executor.submit_fire(sub.instance, "agree", "police.leader:hoang_van_son")
    runtime.settle()
    assert instance_state(store, sub.instance) == "convened"

    with store.reading() as conn:
        armed = timers.armed(conn)
    assert [(t.instance, t.trigger, t.due_at) for t in armed] == [(sub.instance, "meeting_time", meeting.astimezone(UTC))]

    stepped.set(meeting - timedelta(seconds=1))
    assert submit_due_timers(store) == 0
    stepped.set(meeting + timedelta(seconds=1))
    assert submit_due_timers(store) == 1
    assert submit_due_timers(store) == 1  # still armed until applied: the same idempotent inbox row
    outcomes = runtime.settle()
    assert [(o.trigger, o.status, o.to_state) for o in outcomes] == [("meeting_time", "applied", "in_session")]
    assert instance_state(store, sub.instance) == "in_session"
    assert submit_due_timers(store) == 0

    with store.reading() as conn:
        rows = conn.execute(select(history.c.trigger, history.c.actor, history.c.data)
                            .where(history.c.instance == sub.instance).order_by(history.c.seq)).all()
    assert [r.trigger for r in rows] == [None, "agree", "agree", "meeting_time"]
    assert rows[-1].actor == "system" and rows[-1].data["timer"] == armed[0].id

    # The consent deadline (1 working day) was disarmed when the leaders agreed: nothing else fires.
    stepped.set(datetime(2027, 3, 10, 9, 0, tzinfo=VN))
    assert submit_due_timers(store) == 0
    assert instance_state(store, sub.instance) == "in_session"
