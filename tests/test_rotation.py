"""Host rotation anchored to the agreement (issue #10 item 2).

The shipped agreement took effect on 3 April 2023 and its reviews fall on the first working day
of June and December, so counting from June 2023 (dic) the review of June 2027 is the ninth, hosted
by dic again. Whatever date a store is first started, the daemon's firing (`fire_due`), `upcoming`
and `coopflow simulate --from` give each occurrence the same host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import copy_shipped_policy
from sqlalchemy import select

from engine import clock
from engine.policy.loader import load_policy
from engine.policy.spec import HostRotation
from engine.scheduling import schedules
from engine.store.database import SqlStore, inbox, occurrences

VN = ZoneInfo("Asia/Ho_Chi_Minh")
ENV = {k: v for k, v in os.environ.items() if not k.startswith("COOPFLOW_")}
FIRST_STARTS = [datetime(2027, 1, 1, tzinfo=VN), datetime(2027, 9, 15, tzinfo=VN), datetime(2028, 7, 2, 13, tzinfo=VN)]
END = datetime(2030, 12, 31, 23, tzinfo=VN)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return copy_shipped_policy(tmp_path / "policy")


def hosts_fired(config: Path, store_path: Path, first_start: datetime) -> dict[date, str]:
    """Start a store at `first_start`, then let every occurrence up to END fire as a daemon would."""
    policy = load_policy(config)
    store = SqlStore(f"sqlite:///{store_path}")
    source = clock.SteppedClock(first_start)
    try:
        with clock.using(source.now):
            schedules.fire_due(store, policy)
            for year in range(first_start.year, END.year + 1):
                source.set(max(first_start, datetime(year, 12, 31, 23, tzinfo=VN)))
                schedules.fire_due(store, policy)
        with store.reading() as conn:
            rows = conn.execute(select(occurrences.c.nominal_at, occurrences.c.host)).all()
    finally:
        store.dispose()
    return {r.nominal_at.astimezone(VN).date(): r.host for r in rows}


def test_three_first_start_dates_give_the_same_hosts(config, tmp_path):
    """Stores first started in January 2027, September 2027 and July 2028 agree on every host they share."""
    runs = [hosts_fired(config, tmp_path / f"s{i}.db", start) for i, start in enumerate(FIRST_STARTS)]
    assert min(runs[0]) == date(2027, 6, 1) and min(runs[1]) == date(2027, 12, 1) and min(runs[2]) == date(2028, 12, 1)
    for later in runs[1:]:
        assert later == {d: h for d, h in runs[0].items() if d in later}
    assert [runs[0][d] for d in sorted(runs[0])] == ["dic", "police"] * 4
    assert runs[2][date(2028, 12, 1)] == "police"  # the first one that store fires is not rotate[0]


def test_upcoming_and_simulate_agree_with_the_daemon(config, tmp_path):
    """`upcoming` from an empty store and `simulate --from 2028-07-01` name the hosts the daemon fired."""
    fired = hosts_fired(config, tmp_path / "d.db", FIRST_STARTS[0])
    policy = load_policy(config)
    store = SqlStore(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        ahead = schedules.upcoming(store, policy, datetime(2028, 7, 1, tzinfo=VN), count=4)
    finally:
        store.dispose()
    assert [(at.date(), host) for _, at, host in ahead] == [(d, fired[d]) for d in sorted(fired) if d >= date(2028, 7, 1)][:4]
    done = subprocess.run([sys.executable, "-m", "engine", "simulate", "-c", str(config), "--from", "2028-07-01",
                           "--to", "2030-12-31", "--json"], capture_output=True, text=True, env=ENV, cwd=config.parent, timeout=180)
    assert done.returncode == 0, done.stderr
    simulated = {datetime.fromisoformat(e["at"]).date(): e["host"] for e in json.loads(done.stdout) if e["kind"] == "schedule"}
    assert simulated and simulated == {d: h for d, h in fired.items() if d >= date(2028, 7, 1)}


def rotated(policy, **rotation):
    schedule = policy.schedules["periodic_review"]
    return schedule.model_copy(update={"host": HostRotation.model_validate({"field": "host", **rotation})})


def at(policy, y: int, m: int) -> datetime:
    return datetime.combine(policy.calendar.nth_working_day(y, m, 1), datetime.min.time().replace(hour=8), VN)


def test_a_stated_occurrence_fixes_the_turns_before_and_after_it(config):
    """`from: 2028-06-01, first: ubnd` over three parties: ubnd hosts June 2028, and the turns count both ways."""
    policy = load_policy(config)
    schedule = rotated(policy, rotate=["dic", "police", "ubnd"], first="ubnd", **{"from": date(2028, 6, 1)})
    got = [schedules.host_for(policy, schedule, at(policy, y, m)) for y in (2027, 2028, 2029) for m in (6, 12)]
    assert got == ["dic", "police", "ubnd", "dic", "police", "ubnd"]


def test_a_change_applies_from_its_occurrence_without_rewriting_earlier_ones(config):
    """Police leaves the rotation from December 2028: earlier hosts stay, later ones turn over dic and ubnd."""
    policy = load_policy(config)
    before = rotated(policy, rotate=["dic", "police"])
    after = rotated(policy, rotate=["dic", "police"], changes=[{"from": date(2028, 11, 1), "rotate": ["ubnd", "dic"]}])
    dates = [at(policy, y, m) for y in (2027, 2028, 2029, 2030) for m in (6, 12)]
    old = [schedules.host_for(policy, before, d) for d in dates]
    new = [schedules.host_for(policy, after, d) for d in dates]
    assert new[:3] == old[:3] == ["dic", "police", "dic"]
    assert new[3:] == ["ubnd", "dic", "ubnd", "dic", "ubnd"]


@pytest.mark.parametrize(("host", "message"), [
    ("{rotate: [dic, police], first: ubnd}", "first host 'ubnd' is not in rotate"),
    ("{rotate: [dic, nobody]}", "unknown party 'nobody'"),
    ("{rotate: [dic, police], changes: [{from: 2028-01-01, rotate: [dic, ghost]}]}", "unknown party 'ghost'"),
    ("{rotate: [dic, police], from: 2028-01-01, changes: [{from: 2027-01-01, first: police}]}", "changes must come in date order"),
])
def test_rotation_mistakes_are_reported_by_check(config, coopflow_cli, host, message):
    rules = config.parent / "rules" / "reviews.yaml"
    text = rules.read_text(encoding="utf-8")
    rules.write_text(text.replace("host: {rotate: [dic, police], field: host}", f"host: {host}"), encoding="utf-8")
    code, out, err = coopflow_cli("check", "-c", str(config))
    assert code == 1 and message in out + err, out + err
    assert "Traceback" not in out + err


def test_rotation_without_any_date_still_agrees(config):
    """Neither `from` nor agreement dates: the turns count from 2000 (documented), whatever the start."""
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("  signed: 2023-04-03\n  effective: 2023-04-03\n", ""), encoding="utf-8")
    policy = load_policy(config)
    assert policy.config.agreement.effective is None and policy.config.agreement.signed is None
    schedule = policy.schedules["periodic_review"]
    count = sum(1 for _ in schedules.trigger_for(policy, schedule).occurrences(datetime(2000, 1, 1, tzinfo=VN), at(policy, 2027, 6)))
    assert schedules.host_for(policy, schedule, at(policy, 2027, 6)) == ["dic", "police"][(count - 1) % 2]


def test_occurrence_index_counts_from_the_agreement_not_from_the_store(config, tmp_path):
    """`occurrence.index` is the ordinal since the agreement took effect (June 2023 is the first),
    whatever date the store is first started: December 2027 is the tenth for every store."""
    reviews = config.parent / "rules" / "reviews.yaml"
    reviews.write_text(reviews.read_text(encoding="utf-8").replace(
        'period: "=occurrence.period"', 'period: "=occurrence.period"\n      venue: "=occurrence.index"'), encoding="utf-8")
    policy = load_policy(config)
    schedule = policy.schedules["periodic_review"]
    assert schedules.ordinal(policy, schedule, datetime(2023, 6, 1, 8, tzinfo=VN)) == 1
    assert schedules.ordinal(policy, schedule, datetime(2027, 6, 1, 8, tzinfo=VN)) == 9
    for i, start in enumerate(FIRST_STARTS):
        store = SqlStore(f"sqlite:///{tmp_path / f'i{i}.db'}")
        try:
            with clock.using(clock.SteppedClock(start).now):
                schedules.fire_due(store, policy)
            with clock.using(clock.SteppedClock(datetime(2028, 12, 31, 23, tzinfo=VN)).now):
                fired = schedules.fire_due(store, policy)
            with store.reading() as conn:
                payloads = {r.instance: r.payload for r in conn.execute(select(inbox.c.instance, inbox.c.payload))}
        finally:
            store.dispose()
        venues = {f.nominal_at.astimezone(VN).date(): payloads[f.instance]["set"]["venue"] for f in fired}
        assert venues[date(2028, 12, 1)] == 12, (start, venues)
        if start < datetime(2027, 12, 1, tzinfo=VN):
            assert venues[date(2027, 12, 1)] == 10, (start, venues)
