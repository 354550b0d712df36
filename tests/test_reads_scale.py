"""Reads that cost what they show: `upcoming` and `status` on a store far bigger than a page.

`upcoming` once put every armed instance's id into one IN list: 70,000 armed timers crashed it on
PostgreSQL ("number of parameters must be between 0 and 65535") and 1M on SQLite ("too many SQL
variables"). Rows are built here with bulk inserts into the store's own tables (what the
executor writes after `send`), not by 70,000 events. Meetings come from the policy's `meeting:`
declarations, so a renamed meeting workflow keeps its meetings in `upcoming`.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import copy_shipped_policy, shipped_policy_with_store
from sqlalchemy import insert

from engine.policy.loader import load_policy
from engine.policy.versions import canonical_json, workflow_version
from engine.rules.fields import defaults
from engine.store.database import SqlStore, instances, timers, workflow_versions
from engine.views import overview

NOW = datetime.fromisoformat("2027-03-01T09:00:00+07:00")  # a Monday; no periodic review within 30 days
ARMED = 70_000


def bulk_sent_requests(store: SqlStore, policy, count: int, first_due: datetime, step: timedelta, prefix: str = "r") -> list[str]:
    """`count` information requests in state `sent` (dic asks police), each with its armed
    `deemed_received` deadline; deadline i is due at first_due + i * step. Returns their ids."""
    spec = policy.workflows["information_exchange"]
    version = workflow_version(spec)
    base = defaults(spec.fields)
    with store.transaction() as conn:
        conn.execute(insert(workflow_versions).values(version=version, workflow=spec.id,
                                                      spec=json.loads(canonical_json(spec)), created_at=NOW))
    ids = [f"information_exchange-{prefix}{i:06d}" for i in range(count)]
    for start in range(0, count, 10_000):
        chunk = range(start, min(count, start + 10_000))
        entered = [NOW - timedelta(minutes=count - i) for i in chunk]  # the first made is the longest in `sent`
        with store.transaction() as conn:
            conn.execute(insert(instances), [
                {"id": ids[i], "workflow": spec.id, "version": version, "state": "sent", "final": 0, "seq": 2,
                 "fields": {**base, "requester": "dic", "recipient": "police", "subject": f"Yêu cầu {i}"},
                 "created_at": at, "updated_at": at, "state_entered_at": at} for i, at in zip(chunk, entered, strict=False)])
            conn.execute(insert(timers), [
                {"id": f"{ids[i]}:2", "instance": ids[i], "workflow": spec.id, "state": "sent", "trigger": "deemed_received",
                 "due_at": first_due + step * i, "status": "armed"} for i in chunk])
    return ids


@pytest.fixture
def big(store_url: str, tmp_path: Path):
    """The shipped policy over a store (SQLite or PostgreSQL) holding 70,000 armed deadlines: the
    first 1,000 already past at NOW, then one every 60 s (those within 30 days: up to #44,200)."""
    config = copy_shipped_policy(tmp_path / "policy")
    policy = load_policy(config)
    store = SqlStore(store_url)
    try:
        ids = bulk_sent_requests(store, policy, ARMED, NOW - timedelta(minutes=1000), timedelta(minutes=1))
        yield store, policy, ids
    finally:
        store.dispose()


def test_upcoming_and_status_with_70k_armed_timers(big):
    """70,000 armed deadlines (one store per run, both checks on it):

    * upcoming counts those within the horizon in SQL and returns one page, soonest first (passed
      ones marked overdue), a later page continuing where the earlier ended;
    * the overview counts all 70,000 (1,000 overdue) and lists one page per party, longest waiting first.
    """
    store, policy, ids = big
    first = overview.upcoming_page(store, policy, 30, now=NOW, limit=100)
    horizon_minutes = 30 * 24 * 60
    assert first["total"] == 1000 + horizon_minutes + 1  # passed, then one a minute up to NOW + 30 days included
    assert [i["instance"] for i in first["items"]] == ids[:100]
    assert all(i["kind"] == "deadline" and i["overdue"] and i["subject"] == f"Yêu cầu {n}" for n, i in enumerate(first["items"]))
    later = overview.upcoming_page(store, policy, 30, now=NOW, limit=100, offset=1000)
    assert [i["instance"] for i in later["items"]] == ids[1000:1100]
    assert [i["overdue"] for i in later["items"][:2]] == [False, False]
    assert overview.upcoming_page(store, policy, 60, now=NOW, limit=10)["total"] == ARMED

    data = overview.build_overview(store, policy, now=NOW, limit=25, page=2)
    (request,) = [w for w in data["workflows"] if w["open"]]
    assert (request["workflow"], request["open"], request["overdue"]) == ("information_exchange", ARMED, 1000)
    assert [(s["state"], s["open"], s["overdue"]) for s in request["states"]] == [("sent", ARMED, 1000)]
    assert (data["open_total"], data["overdue_total"]) == (ARMED, 1000)
    assert [o["instance"] for o in data["overdue"]] == ids[25:50]
    assert [r["why"] for r in data["overdue"][0]["reasons"]] == ["deadline_passed"]
    owed = {p["party"]: p for p in data["parties"]}
    assert owed["police"]["open"] == ARMED and owed["dic"]["open"] == 0 and owed["ubnd"]["open"] == 0  # dic may only take them back (optional)
    assert [s["instance"] for s in owed["police"]["next_steps"]] == ids[25:50]
    assert owed["police"]["next_steps"][0]["triggers"] == ["acknowledge"]
    assert owed["dic"]["next_steps"] == []
    assert all(s["overdue"] for s in owed["police"]["next_steps"]) and owed["police"]["next_steps"][0]["deadline"]
    assert data["page"] == {"page": 2, "limit": 25, "pages": ARMED // 25, "more": True}


@pytest.fixture
def small(tmp_path: Path, monkeypatch, stepped_clock):
    """The shipped policy over a SQLite store with 45 sent requests (the first 5 overdue at NOW)."""
    monkeypatch.delenv("COOPFLOW_STORE_URL", raising=False)
    config = shipped_policy_with_store(tmp_path / "policy", tmp_path / "store.db")
    stepped_clock.set(NOW)
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        ids = bulk_sent_requests(store, load_policy(config), 45, NOW - timedelta(hours=5), timedelta(hours=1))
    finally:
        store.dispose()
    return config, ids


def test_status_pages_and_says_how_to_see_more(coopflow_cli, small):
    """`status` shows a bounded page with the totals and a line naming the next page; --page walks on."""
    config, ids = small
    code, out, err = coopflow_cli("status", "--limit", "20", "-c", config)
    assert code == 0, err
    assert "open instances per clause: 45" in out and "5 overdue instance(s)" in out
    assert ids[19] in out and ids[20] not in out
    assert "showing 1–20 of 45; next: coopflow status --page 2" in out
    code, out, err = coopflow_cli("status", "--limit", "20", "--page", "3", "--json", "-c", config)
    assert code == 0, err
    data = json.loads(out)
    police = next(p for p in data["parties"] if p["party"] == "police")
    assert [s["instance"] for s in police["next_steps"]] == ids[40:] and police["open"] == 45
    assert data["overdue"] == [] and data["overdue_total"] == 5 and data["page"]["more"] is False
    code, out, err = coopflow_cli("status", "--page", "9", "-c", config)
    assert code == 0, err
    assert "page 9 is past the end (45 in all): coopflow status --page 1" in out


def test_filtered_list_and_upcoming_page_too(coopflow_cli, small):
    """`status --workflow` and `upcoming` are paged the same way (JSON stays a list; the hint goes to stderr)."""
    config, ids = small
    code, out, err = coopflow_cli("status", "--workflow", "information_exchange", "--limit", "10", "--page", "2",
                                  "--json", "-c", config)
    assert code == 0, err
    assert [r["instance"] for r in json.loads(out)] == list(reversed(ids))[10:20]
    assert "showing 11–20 of 45; next: coopflow status --workflow information_exchange --page 3" in err
    code, out, err = coopflow_cli("upcoming", "--limit", "10", "--page", "5", "-c", config)
    assert code == 0, err
    assert "45 item(s) in the next 30 day(s)" in out and ids[44] in out and ids[39] not in out
    assert "showing 41–45 of 45" in out and "next:" not in out
    code, out, err = coopflow_cli("upcoming", "--limit", "0", "-c", config)
    assert code == 2 and "'--limit'" in err


def test_a_renamed_meeting_workflow_keeps_its_meetings_in_upcoming(coopflow_cli, tmp_path, monkeypatch, stepped_clock):
    """Rename emergency_review and give it 48 hours instead of 72: upcoming still lists its meetings,
    with the time rule read from the policy."""
    monkeypatch.delenv("COOPFLOW_STORE_URL", raising=False)
    root = tmp_path / "policy"
    copy_shipped_policy(root)
    for path in [*root.glob("workflows/*.yaml"), *root.glob("rules/*.yaml")]:
        text = path.read_text(encoding="utf-8").replace("emergency_review", "hop_dot_xuat")
        path.write_text(text.replace("{at: meeting_at, hours: 72,", "{at: meeting_at, hours: 48,"), encoding="utf-8")
    config = root / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("store: sqlite:///coopflow.db",
                                                                 f"store: sqlite:///{tmp_path / 'store.db'}"), encoding="utf-8")
    stepped_clock.set(NOW)
    code, out, err = coopflow_cli("init", "-c", config)
    assert code == 0, out + err
    code, out, err = coopflow_cli("start", "hop_dot_xuat", "--as", "dic.leader", "--set", "issue=Họp gấp", "-c", config)
    assert code == 0, out + err
    meeting = out.splitlines()[0]
    for leader in ("dic.leader", "police.leader"):
        code, out, err = coopflow_cli("fire", meeting, "agree", "--as", leader, "-c", config)
        assert code == 0, out + err
    code, out, err = coopflow_cli("upcoming", "--days", "5", "--json", "-c", config)
    assert code == 0, err
    (item,) = json.loads(out)
    assert (item["kind"], item["workflow"], item["instance"], item["subject"]) == ("meeting", "hop_dot_xuat", meeting, "Họp gấp")
    assert item["at"] == "2027-03-03T09:00:00+07:00" and item["time_rule"] == "48 hours after reaching convened"
    code, out, err = coopflow_cli("upcoming", "--days", "5", "-c", config)
    assert code == 0, err
    assert "Họp giao ban đột xuất: Họp gấp (no time set: 48 hours after reaching convened)" in out
