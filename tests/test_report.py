"""`coopflow report`: the half-year report's figures match a store built by a scripted scenario.

The scenario is played by the executor under a stepped clock (deadlines fire at their due
instant, as the daemon fires them); the report is then written through the command line.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
from conftest import shipped_policy_with_store
from sqlalchemy import select

from engine import clock
from engine.execution.executor import Executor
from engine.execution.runtime import Runtime
from engine.policy.loader import load_policy
from engine.scheduling import timers
from engine.store import inbox
from engine.store.database import SqlStore, history, instances
from engine.views import report as reports

HOUR = 3600


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


class Scenario:
    """Plays events at given instants; armed deadlines due on the way fire at their due instant."""

    def __init__(self, config: Path, db: Path | str):
        self.policy = load_policy(config)
        self.store = SqlStore(db if isinstance(db, str) else f"sqlite:///{db}")
        self.runtime = Runtime(self.policy, self.store, Executor(self.store, self.policy))
        self.clock = clock.SteppedClock(at("2027-01-01T00:00:00+07:00"))

    def until(self, moment: datetime) -> None:
        while True:
            with self.store.reading() as conn:
                due = timers.armed(conn, due_before=moment)
            if not due:
                break
            self.clock.set(max(due[0].due_at, self.clock.now()))
            with self.store.transaction() as conn:
                timers.submit_due(conn, due[0].id)
            self.runtime.settle()
        self.clock.set(moment)
        self.runtime.settle()

    def down(self, moment: datetime) -> None:
        """The daemon is down until `moment`: deadlines due meanwhile fire late, when `until` next runs."""
        self.clock.set(moment)

    def _apply(self, when: str, submit) -> str:
        self.until(at(when))
        sub = submit()
        self.runtime.settle()
        with self.store.reading() as conn:
            status, text = inbox.status(conn, sub.inbox_id)
        assert status == inbox.APPLIED, text
        return sub.instance

    def start(self, when: str, workflow: str, actor: str, **values) -> str:
        return self._apply(when, lambda: self.runtime.executor.submit_start(workflow, actor, values))

    def fire(self, when: str, instance: str, trigger: str, actor: str, **values) -> str:
        return self._apply(when, lambda: self.runtime.executor.submit_fire(instance, trigger, actor, values))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> dict:
    """Half-year 2027H1 with an answered request, an overdue one that escalates, and a meeting held; one request in H2."""
    root = tmp_path_factory.mktemp("report")
    db = root / "store.db"
    config = shipped_policy_with_store(root / "policy", db)
    play = Scenario(config, db)
    ids: dict[str, str] = {}
    with clock.using(play.clock.now):
        # R1: answered. dic drafts and sends (1 h); police acknowledges after 28 h and answers after 50 h.
        r1 = ids["r1"] = play.start("2027-03-01T09:00+07:00", "information_exchange", "dic.focal_point",
                                    requester="dic", recipient="police", subject="Danh sách thuê bao")
        play.fire("2027-03-01T10:00+07:00", r1, "send", "dic.focal_point", dispatch_no="101/STTTT")
        play.fire("2027-03-02T14:00+07:00", r1, "acknowledge", "police.focal_point:nguyen_thi_b")
        play.fire("2027-03-04T16:00+07:00", r1, "answer", "police.focal_point", answer="Công văn 55/CAT")
        # R2: sent after 30 min, then nobody acts: deemed received, overdue, escalated -> emergency review E1
        # proposed by rule, which lapses -> R2 referred to the People's Committee by rule.
        r2 = ids["r2"] = play.start("2027-04-01T09:00+07:00", "information_exchange", "dic.focal_point",
                                    requester="dic", recipient="police", subject="Tài khoản mạng xã hội")
        play.fire("2027-04-01T09:30+07:00", r2, "send", "dic.focal_point", dispatch_no="140/STTTT")
        # E2: an emergency meeting proposed by police, agreed, held, concluded and closed.
        e2 = ids["e2"] = play.start("2027-05-10T09:00+07:00", "emergency_review", "police.leader",
                                    issue="Sự cố tấn công trang thông tin điện tử", proposed_by="police")
        play.fire("2027-05-10T10:00+07:00", e2, "agree", "police.leader")            # police consents after 1 h
        play.fire("2027-05-10T11:00+07:00", e2, "agree", "dic.leader",              # dic agrees after 2 h
                  meeting_at="2027-05-12T14:00+07:00")
        play.fire("2027-05-12T16:00+07:00", e2, "finish", "dic.focal_point")        # meeting_time fired at 14:00
        play.fire("2027-05-13T09:00+07:00", e2, "issue_conclusions", "police.focal_point", conclusions="TB 12/KL")
        play.fire("2027-05-14T09:00+07:00", e2, "close", "dic.leader")
        # R4 (police to dic): deemed received, then the daemon is down when the answer falls due (11 June 00:00);
        # `overdue` fires late on 14 June 09:00, dic answers at 15:00: 2 working days late (11 and 14 June), from the due time.
        r4 = ids["r4"] = play.start("2027-06-01T09:00+07:00", "information_exchange", "police.focal_point",
                                    requester="police", recipient="dic", subject="Thuê bao ảo")
        play.fire("2027-06-01T09:10+07:00", r4, "send", "police.focal_point", dispatch_no="31/CAT")
        play.until(at("2027-06-10T12:00+07:00"))
        play.down(at("2027-06-14T09:00+07:00"))
        play.fire("2027-06-14T15:00+07:00", r4, "answer", "dic.focal_point", answer="Công văn 210/STTTT")
        # E3 (dic proposes): agreed, the meeting time comes (a timer), and nobody records the meeting.
        e3 = ids["e3"] = play.start("2027-06-21T09:00+07:00", "emergency_review", "dic.leader",
                                    issue="Tin giả về dịch bệnh", proposed_by="dic")
        play.fire("2027-06-21T12:00+07:00", e3, "agree", "police.leader")           # police responds after 3 h
        play.fire("2027-06-21T13:00+07:00", e3, "agree", "dic.leader", meeting_at="2027-06-23T09:00+07:00")
        play.until(at("2027-06-25T00:00+07:00"))
        # R3: in the second half year only.
        ids["r3"] = play.start("2027-08-02T09:00+07:00", "information_exchange", "police.focal_point",
                               requester="police", recipient="dic", subject="Kỳ sau")
        play.until(at("2027-09-01T00:00+07:00"))
    with play.store.reading() as conn:
        rows = {r.id: r for r in conn.execute(select(instances))}
    e1 = [i for i, r in rows.items() if r.workflow == "emergency_review" and i not in (ids["e2"], ids["e3"])]
    assert len(e1) == 1 and rows[e1[0]].state == "lapsed" and rows[ids["r2"]].state == "referred"
    ids["e1"] = e1[0]
    data = reports.build(play.store, play.policy, reports.parse_period("2027H1", play.policy.tz))
    play.store.dispose()
    return {"config": config, "ids": ids, "data": data, "policy": play.policy, "db": db}


@pytest.fixture(autouse=True)
def after_2031(monkeypatch):
    """The command-line reports run "in 2032", so that 2027 and 2031 are periods that have begun."""
    monkeypatch.setattr(clock, "_source", lambda: at("2032-01-02T00:00+07:00"))


def _clause(data: dict, workflow: str) -> dict:
    return next(c for c in data["workflows"] if c["workflow"] == workflow)


def _party(data: dict, party: str) -> dict:
    return next(p for p in data["parties"] if p["party"] == party)


def test_counts_per_clause(scenario):
    """Opened, closed, overdue, escalated, referred and still open per clause count exactly the scenario's steps."""
    data = scenario["data"]
    keys = ("opened", "closed", "overdue", "escalated", "referred", "open")
    # overdue: deemed_received, overdue, escalate on R2; deemed_received, overdue on R4
    assert {k: _clause(data, "information_exchange")[k] for k in keys} == \
        {"opened": 3, "closed": 2, "overdue": 5, "escalated": 1, "referred": 1, "open": 1}
    # consent_expired on E1; E2's and E3's meeting_time are on schedule (people may fire it too)
    assert {k: _clause(data, "emergency_review")[k] for k in keys} == \
        {"opened": 3, "closed": 2, "overdue": 1, "escalated": 0, "referred": 0, "open": 1}
    assert _clause(data, "periodic_review")["opened"] == 0
    assert data["totals"] == {"opened": 6, "closed": 4, "overdue": 6, "escalated": 1, "referred": 1, "open": 2}


def test_a_response_is_an_action_on_what_another_party_addressed(scenario):
    """A party's own drafting and sending is not a response; consents and steps on others' requests are."""
    data = scenario["data"]
    police, dic, ubnd = _party(data, "police"), _party(data, "dic"), _party(data, "ubnd")
    # police: R1 sent->acknowledge 28 h, R1 in_progress->answer 50 h, E3 consent 3 h (E2 is its own proposal; R4 its own request)
    assert police["responses"] == 3
    assert police["median_seconds"] == 28 * HOUR and police["worst_seconds"] == 50 * HOUR
    assert (police["worst_instance"], police["worst_state"]) == (scenario["ids"]["r1"], "in_progress")
    # dic: E2 agree 2 h, E2 finish 2 h, E2 close 24 h, R4 overdue->answer 6 h (its sending of R1 and R2 is not a response)
    assert dic["responses"] == 4
    assert dic["median_seconds"] == 4 * HOUR and dic["worst_seconds"] == 24 * HOUR
    assert (dic["worst_instance"], dic["worst_state"]) == (scenario["ids"]["e2"], "concluded")
    assert ubnd["responses"] == 0 and ubnd["median_seconds"] is None


def test_lateness_counts_from_the_nominal_due_time(scenario):
    """R4's answer fell due on 11 June 00:00; the timer fired late (downtime, 14 June 09:00): lateness counts from the due time."""
    requests = {r["instance"]: r for r in _clause(scenario["data"], "information_exchange")["requests"]}
    r4 = requests[scenario["ids"]["r4"]]
    assert r4["due_at"] == "2027-06-11T00:00:00+07:00" and r4["late_days"] == 2  # 11 and 14 June (not 0: from the firing)
    assert r4["dispatch"] == ["31/CAT"] and r4["answer"] == "Công văn 210/STTTT"
    assert requests[scenario["ids"]["r1"]]["late_days"] is None  # answered in time
    assert set(requests) == {scenario["ids"][k] for k in ("r1", "r2", "r4")}


def test_a_meeting_is_held_when_a_person_records_it(scenario):
    """E2 was recorded held by a person; E3's meeting time came by a timer and nobody recorded it; E1 lapsed."""
    data, ids = scenario["data"], scenario["ids"]
    meetings = {m["instance"]: m for m in data["meetings"]}
    assert set(meetings) == {ids["e1"], ids["e2"], ids["e3"]}
    e2 = meetings[ids["e2"]]
    assert e2["held"] and e2["held_by"] == "dic.focal_point" and e2["held_at"] == "2027-05-12T16:00:00+07:00"
    assert e2["conclusions"] == "TB 12/KL" and e2["outcome"] == "Kết thúc" and e2["opened_by"] == "police"
    assert not meetings[ids["e3"]]["held"] and meetings[ids["e3"]]["state"] == "in_session"
    assert not meetings[ids["e1"]]["held"] and meetings[ids["e1"]]["rule"] == "propose_emergency_review"
    assert meetings[ids["e1"]]["outcome"] == "Không thống nhất được việc họp — báo cáo UBND tỉnh"


def test_escalations_in_history_order(scenario):
    """Escalations are the lateness and rule-driven steps, in the order they happened, with their level."""
    data, ids = scenario["data"], scenario["ids"]
    steps = [(e["instance"], e["kind"], e["trigger"] or e["rule"], e["level"]) for e in data["escalations"]]
    assert steps == [
        (ids["r2"], "deadline", "deemed_received", "overdue"),
        (ids["r2"], "deadline", "overdue", "overdue"),
        (ids["r2"], "deadline", "escalate", "escalated"),
        (ids["e1"], "rule", "propose_emergency_review", None),
        (ids["e1"], "deadline", "consent_expired", "overdue"),
        (ids["r2"], "rule", "refer_to_ubnd", "referred"),
        (ids["r4"], "deadline", "deemed_received", "overdue"),
        (ids["r4"], "deadline", "overdue", "overdue"),
    ]
    assert [r["instance"] for r in data["remaining"]] == [ids["r2"]]  # open and late at the period's end


def test_the_audit_anchor_is_the_last_row_of_the_period(scenario):
    """The anchor is the head of the hash chain at the period's end: seq and hash of the last history row before it."""
    anchor = scenario["data"]["anchor"]
    store = SqlStore(f"sqlite:///{scenario['db']}")
    try:
        with store.reading() as conn:
            last = conn.execute(select(history.c.seq, history.c.hash).where(history.c.at < at("2027-07-01T00:00+07:00"))
                                .order_by(history.c.seq.desc()).limit(1)).one()
            later = conn.execute(select(history.c.seq).where(history.c.seq > last.seq).limit(1)).first()
    finally:
        store.dispose()
    assert (anchor["seq"], anchor["hash"]) == (last.seq, last.hash) and later is not None  # R3 came after the period


def test_the_next_half_year_counts_only_its_own(coopflow_cli, scenario, tmp_path):
    """2027H2 counts R3 alone, and an empty period writes zero figures rather than failing."""
    code, out, err = coopflow_cli("report", "--period", "2027H2", "-c", scenario["config"])
    assert code == 0, err
    assert "| 2 | Phối hợp trao đổi thông tin | 1 | 0 | 0 | 0 | 0 | 2 |" in out  # R3 opened; R2 (referred) and R3 open
    code, out, err = coopflow_cli("report", "--period", "2031H1", "-c", scenario["config"])
    assert code == 0, err
    assert "|  | Tổng cộng | 0 | 0 | 0 | 0 | 0 | 3 |" in out and "Không có cuộc họp giao ban nào trong kỳ." in out


def test_markdown_report_shows_the_figures(coopflow_cli, scenario):
    """The Markdown report holds the per-clause row, the requests, response times as text, meetings, anchor and definitions."""
    ids = scenario["ids"]
    code, out, err = coopflow_cli("report", "--period", "2027H1", "-c", scenario["config"])
    assert code == 0, err
    assert out.startswith("# Báo cáo kết quả phối hợp 6 tháng đầu năm 2027 (2027H1)")
    assert "| 2 | Phối hợp trao đổi thông tin | 3 | 2 | 5 | 1 | 1 | 1 |" in out
    assert "| review.adhoc | Họp giao ban đột xuất | 3 | 2 | 1 | 0 | 0 | 1 |" in out
    assert (f"| {ids['r4']} | Thuê bao ảo | 31/CAT | 01/06/2027 | Đã trả lời | Công văn 210/STTTT | 14/06/2027 | "
            f"2 ngày làm việc |") in out
    assert f"| Công an tỉnh Lào Cai | 3 | 1 ngày 4 giờ | 2 ngày 2 giờ | {ids['r1']} (Đang xử lý" in out
    assert "| Sở Thông tin và Truyền thông tỉnh Lào Cai | 4 | 4 giờ | 1 ngày |" in out
    assert "có, ghi nhận lúc 16:00 12/05/2027" in out and "chưa có người ghi nhận việc họp" in out
    assert "Tổng số lần chuyển cấp: 8." in out
    assert f"số thứ tự {scenario['data']['anchor']['seq']}" in out and scenario["data"]["anchor"]["hash"] in out
    assert "**Phản hồi của một cơ quan**" in out and "**Đã họp**" in out and "thời hạn danh nghĩa" in out
    assert "first applied event" not in out  # Vietnamese only


def test_html_report_is_self_contained_and_printable(coopflow_cli, scenario, tmp_path):
    """The HTML report is one UTF-8 file with inline CSS and SVG, print rules, the same figures, and no external reference."""
    target = tmp_path / "report.html"
    code, out, err = coopflow_cli("report", "--period", "2027H1", "--format", "html", "--out", target, "-c", scenario["config"])
    assert code == 0, err
    text = target.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in text and 'lang="vi"' in text
    assert "<style>" in text and "@media print" in text
    assert "<svg" in text and "</svg>" in text and "<script" not in text.lower()
    assert "http://" not in text and "https://" not in text and "src=" not in text and "<link" not in text
    assert "url(" not in text and "@import" not in text
    assert "Phối hợp trao đổi thông tin" in text and "Công an tỉnh Lào Cai" in text
    row = re.search(r"<tr><td>2</td><td>Phối hợp trao đổi thông tin</td>(.*?)</tr>", text)
    assert row and re.findall(r'<td class="n">(\d+)</td>', row.group(1)) == ["3", "2", "5", "1", "1", "1"]
    assert "1 ngày 4 giờ" in text and "2 ngày 2 giờ" in text
    assert "Đang xử lý (yêu cầu đơn giản, 5 ngày làm việc)" in text  # the worst response's state, by its title
    assert "50.0 giờ" in text and "28.0 giờ" in text  # the chart's bar labels for police (worst, median)


@pytest.mark.parametrize("period", ["2027H3", "2027Q0", "H1-2027", "2027-06"], ids=["H3", "Q0", "reversed", "month"])
def test_bad_period_is_a_usage_error(coopflow_cli, scenario, period):
    """A period that is not YYYYQn / YYYYHn / YYYY exits 2 with a message naming --period, no traceback."""
    code, out, err = coopflow_cli("report", "--period", period, "-c", scenario["config"])
    assert code == 2
    assert "--period" in err and "YYYYH1" in err and "Traceback" not in err


@pytest.mark.parametrize("text,start,end", [
    ("2027H1", "2027-01-01T00:00:00+07:00", "2027-07-01T00:00:00+07:00"),
    ("2027h2", "2027-07-01T00:00:00+07:00", "2028-01-01T00:00:00+07:00"),
], ids=["H1", "H2-lowercase"])
def test_periods_are_half_years_in_the_policy_time_zone(scenario, text, start, end):
    """YYYYH1 is January–June and YYYYH2 July–December, midnight to midnight in the policy's zone."""
    period = reports.parse_period(text, scenario["policy"].tz)
    assert (period.start, period.end) == (at(start), at(end))
    assert period.start.isoformat() == start
