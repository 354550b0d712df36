"""`coopflow upcoming`: schedule occurrences, deadlines and emergency meetings ahead, from the real store."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import shipped_policy_with_store
from sqlalchemy import func, select

from engine.policy.loader import load_policy
from engine.scheduling import schedules
from engine.store.database import SqlStore, history, inbox, instances, occurrences

NOW = datetime.fromisoformat("2027-05-20T09:00:00+07:00")  # a Thursday


@pytest.fixture
def config(tmp_path: Path, monkeypatch) -> Path:
    """A shipped-policy copy whose store is a tmp SQLite file."""
    monkeypatch.delenv("COOPFLOW_STORE_URL", raising=False)
    return shipped_policy_with_store(tmp_path / "policy", tmp_path / "store.db")


@pytest.fixture
def built(cli_ok, config, stepped_clock) -> dict:
    """At NOW: a request sent (deadline armed) and an emergency meeting convened for 27 May 14:00, built by CLI commands."""
    ok = cli_ok
    stepped_clock.set(NOW)

    request = ok("start", "information_exchange", "--as", "dic.focal_point", "--set", "requester=dic",
                 "--set", "recipient=police", "--set", "subject=Danh sách thuê bao")
    ok("fire", request, "send", "--as", "dic.focal_point", "--set", "dispatch_no=77/STTTT")
    meeting = ok("start", "emergency_review", "--as", "police.leader", "--set", "issue=Sự cố an ninh mạng",
                 "--set", "proposed_by=police")
    ok("fire", meeting, "agree", "--as", "police.leader")
    ok("fire", meeting, "agree", "--as", "dic.leader", "--set", "meeting_at=2027-05-27T14:00+07:00", "--set", "venue=Hội trường")
    return {"request": request, "meeting": meeting, "policy": load_policy(config)}


def upcoming(coopflow_cli, config, *args) -> list[dict]:
    code, out, err = coopflow_cli("upcoming", "--json", *args, "-c", config)
    assert code == 0, err
    return json.loads(out)


def test_lists_schedule_deadline_and_meeting_in_time_order(coopflow_cli, config, built):
    """The next 30 days hold the request's deadline, the convened meeting and the June review with its host, by time."""
    cal = built["policy"].calendar
    items = upcoming(coopflow_cli, config)
    assert [(i["kind"], i.get("instance")) for i in items] == [
        ("deadline", built["request"]), ("meeting", built["meeting"]), ("schedule", None)]
    deadline, meeting, review = items
    assert datetime.fromisoformat(deadline["at"]) == cal.add_working_days(NOW, 1)
    assert (deadline["workflow"], deadline["state"], deadline["trigger"], deadline["overdue"]) == \
        ("information_exchange", "sent", "deemed_received", False)
    assert meeting["at"] == "2027-05-27T14:00:00+07:00" and meeting["issue"] == "Sự cố an ninh mạng"
    assert meeting["trigger"] == "meeting_time" and meeting["meeting_at_set"] is True
    first_june = cal.nth_working_day(2027, 6, 1)
    assert review["at"] == f"{first_june.isoformat()}T08:00:00+07:00"
    assert (review["schedule"], review["workflow"], review["host"]) == ("periodic_review", "periodic_review", "dic")
    assert all(i["at"].endswith("+07:00") for i in items)
    # The meeting's own deadline is shown once, as the meeting.
    assert not [i for i in items if i["kind"] == "deadline" and i["instance"] == built["meeting"]]


def test_days_limits_the_horizon(coopflow_cli, config, built):
    """--days 5 keeps only what falls within five days: the request's deadline."""
    assert [i["kind"] for i in upcoming(coopflow_cli, config, "--days", "5")] == ["deadline"]
    assert upcoming(coopflow_cli, config, "--days", "0") == []


def test_hosts_follow_the_rotation_anchored_to_the_agreement(coopflow_cli, config, built, stepped_clock):
    """Counting from June 2023 (dic), December 2026 is police's; the next reviews within 400 days are dic, police, dic."""
    policy = built["policy"]
    store = SqlStore(f"sqlite:///{config.parent.parent / 'store.db'}")
    try:
        schedule = policy.schedules["periodic_review"]
        nominal = datetime.fromisoformat(f"{policy.calendar.nth_working_day(2026, 12, 1).isoformat()}T08:00:00+07:00")
        stepped_clock.set(nominal)
        assert schedules.fire(store, policy, schedule, nominal).host == "police"
    finally:
        store.dispose()
    stepped_clock.set(NOW)
    reviews = [i for i in upcoming(coopflow_cli, config, "--days", "400") if i["kind"] == "schedule"]
    assert [(i["at"][:7], i["host"]) for i in reviews] == [("2027-06", "dic"), ("2027-12", "police"), ("2028-06", "dic")]


def test_a_passed_deadline_is_listed_as_overdue(coopflow_cli, config, built, stepped_clock):
    """An armed deadline already past (no daemon fired it) is listed first and marked overdue."""
    stepped_clock.set(NOW + timedelta(days=3))
    items = upcoming(coopflow_cli, config, "--days", "1")
    assert [(i["kind"], i["instance"], i["overdue"]) for i in items] == [("deadline", built["request"], True)]


def test_meeting_without_time_uses_its_deadline(coopflow_cli, config, stepped_clock):
    """A meeting convened without meeting_at is shown at its fallback deadline, 72 hours after consent."""
    stepped_clock.set(NOW)
    code, out, err = coopflow_cli("start", "emergency_review", "--as", "dic.leader", "--set", "issue=Họp gấp", "-c", config)
    assert code == 0, err
    meeting = out.splitlines()[0]
    for leader in ("dic.leader", "police.leader"):
        code, out, err = coopflow_cli("fire", meeting, "agree", "--as", leader, "-c", config)
        assert code == 0, out + err
    items = upcoming(coopflow_cli, config, "--days", "5")
    assert [(i["kind"], i["at"], i["meeting_at_set"]) for i in items] == [("meeting", "2027-05-23T09:00:00+07:00", False)]
    # The fallback is described from the policy (the deadline of `meeting.state`), not written into the engine.
    assert items[0]["time_rule"] == "72 hours after reaching convened"
    code, out, err = coopflow_cli("upcoming", "--days", "5", "-c", config)
    assert code == 0, err
    assert "(no time set: 72 hours after reaching convened)" in out


def test_table_shows_local_times_and_changes_nothing(coopflow_cli, config, built):
    """The table shows each item in the policy's time zone; listing writes nothing to the store."""
    store = SqlStore(f"sqlite:///{config.parent.parent / 'store.db'}")

    def counts() -> tuple:
        with store.reading() as conn:
            return tuple(conn.execute(select(func.count()).select_from(t)).scalar_one()
                         for t in (instances, history, inbox, occurrences))

    try:
        before = counts()
        code, out, err = coopflow_cli("upcoming", "-c", config)
        assert code == 0, err
        assert counts() == before
    finally:
        store.dispose()
    assert "3 item(s) in the next 30 day(s) (Asia/Ho_Chi_Minh)" in out
    # A meeting is named by its workflow's title (the policy's `meeting:`), not by words in the engine.
    assert "2027-05-27 14:00" in out and "meeting" in out and "Họp giao ban đột xuất: Sự cố an ninh mạng" in out
    assert "host dic" in out
    assert built["request"] in out and "deemed_received" in out
