"""Downtime does not stretch deadlines (issue #10 item 5).

A request sent on Monday 1 March 2027 goes through a chain of deadlines (deemed received after
1 working day, overdue after 5, escalated after 2 more, an emergency meeting proposed whose
consent lapses after 1, referred to the People's Committee). A real daemon first started on
25 June 2027 (COOPFLOW_CLOCK_START) fires the whole chain late, each deadline counted from the
previous one's nominal due time; it ends where `coopflow simulate` (an uninterrupted run over
the same months) ends, and history keeps each deadline's nominal due time beside its firing.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from conftest import copy_shipped_policy
from sqlalchemy import select
from test_daemon import base_env, open_store, run_cli, spawn, wait_until  # noqa: F401  (fixtures)

from engine.scheduling.timers import late_text
from engine.store.database import history, instances

SENT = "2027-03-01T09:00:00+07:00"
BACK = "2027-06-25T09:00:00+07:00"
REQUEST = ["--set", "requester=dic", "--set", "recipient=police", "--set", "subject=Xin thông tin thuê bao"]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return copy_shipped_policy(tmp_path / "policy")


def final_states(conn) -> dict[str, str]:
    """workflow -> state of every instance but the periodic reviews (which depend on when a store started)."""
    rows = conn.execute(select(instances.c.workflow, instances.c.state).where(instances.c.workflow != "periodic_review")).all()
    assert len({r.workflow for r in rows}) == len(rows), rows
    return {r.workflow: r.state for r in rows}


def test_daemon_down_across_a_chain_of_deadlines_ends_where_an_uninterrupted_run_does(config, tmp_path, spawn, open_store):  # noqa: F811
    url = f"sqlite:///{tmp_path / 'down.db'}"
    before = base_env(url, COOPFLOW_CLOCK_START=SENT)
    assert run_cli(config, before, "init").returncode == 0
    started = run_cli(config, before, "start", "information_exchange", "--as", "dic.focal_point", *REQUEST)
    assert started.returncode == 0, started.stderr
    instance = started.stdout.split()[0]
    sent = run_cli(config, before, "fire", instance, "send", "--as", "dic.focal_point", "--set", "dispatch_no=125/STTTT")
    assert sent.returncode == 0 and "drafted -> sent" in sent.stdout, sent.stdout + sent.stderr

    daemon = spawn(config, base_env(url, COOPFLOW_CLOCK_START=BACK))
    store = open_store(url)

    def settled():
        with store.reading() as conn:
            states = final_states(conn)
        return states if states.get("information_exchange") == "referred" and states.get("emergency_review") == "lapsed" else None

    down = wait_until(settled, 60, lambda: f"the chain to settle:\n{daemon.tail()}")
    daemon.wait_log(r"fires late by \d+d \(trễ \d+ ngày\)")
    assert daemon.stop() == 0

    script = tmp_path / "events.yaml"
    script.write_text(json.dumps([
        {"at": SENT, "as": "dic.focal_point", "start": "information_exchange", "ref": "r",
         "set": {"requester": "dic", "recipient": "police", "subject": "Xin thông tin thuê bao"}},
        {"at": SENT, "as": "dic.focal_point", "fire": "send", "instance": "r", "set": {"dispatch_no": "125/STTTT"}},
    ]), encoding="utf-8")
    done = run_cli(config, base_env(f"sqlite:///{tmp_path / 'unused.db'}"), "simulate", "--from", "2027-03-01",
                   "--to", "2027-06-25", "--events", str(script), "--json", timeout=180)
    assert done.returncode == 0, done.stderr
    timeline = [e for e in json.loads(done.stdout) if e["workflow"] != "periodic_review" and e["outcome"] == "applied"]
    uninterrupted = {}
    for e in timeline:
        uninterrupted[e["workflow"]] = e["to"]
    assert down == uninterrupted == {"information_exchange": "referred", "emergency_review": "lapsed"}

    # The same deadlines fired, in the same order, at the same nominal times; history keeps both times.
    with store.reading() as conn:
        rows = conn.execute(select(history.c.workflow, history.c.trigger, history.c.at, history.c.data, history.c.outcome)
                            .where(history.c.workflow != "periodic_review").order_by(history.c.seq)).all()
    fired = [(r.workflow, r.trigger, r.data["due_at"]) for r in rows if r.outcome == "applied" and "due_at" in r.data]
    expected = [(e["workflow"], e["trigger"], e["at"]) for e in timeline if e["kind"] == "deadline"]
    assert [(w, t) for w, t, _ in fired] == [(w, t) for w, t, _ in expected]
    assert [datetime.fromisoformat(d) for _, _, d in fired] == [datetime.fromisoformat(a) for _, _, a in expected]
    assert all(r.at >= datetime.fromisoformat(BACK) for r in rows if "due_at" in r.data)
    first_due = datetime.fromisoformat(fired[0][2])
    assert first_due < datetime.fromisoformat("2027-03-04T00:00:00+07:00")  # deemed received on 2 March, not in June


@pytest.mark.parametrize(("seconds", "text"), [
    (114 * 86400 + 3600, "114d (trễ 114 ngày)"), (5 * 3600 + 180, "5h 3m (trễ 5 giờ 3 phút)"), (42, "42s (trễ 42 giây)")])
def test_late_text_says_days(seconds, text):
    assert late_text(seconds) == text
