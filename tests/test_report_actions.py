"""Conclusions that become work: the June review records four action items; the next reports account for them.

The periodic review is played through the executor under a stepped clock (tests/test_report.py's
Scenario): held by a person, conclusions issued, one `record_action` per item. Each item is an
`action_item` instance with its deadline; the second half-year's report lists them as done, done
late or late, and the third quarter's shows the one not yet due as open.
"""

from __future__ import annotations

import pytest
from conftest import shipped_policy_with_store
from sqlalchemy import select
from test_report import Scenario, at

from engine import clock
from engine.store.database import instances
from engine.views import report as reports


@pytest.fixture(scope="module")
def played(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("actions")
    db = root / "store.db"
    config = shipped_policy_with_store(root / "policy", db)
    play = Scenario(config, db)
    items = {"rà soát": ("Rà soát thuê bao ảo", "police", "2027-08-15T17:00+07:00"),
             "quy trình": ("Cập nhật quy trình gỡ tin giả", "dic", "2027-07-20T17:00+07:00"),
             "tập huấn": ("Tập huấn an ninh mạng", "dic", "2027-12-15T17:00+07:00"),
             "kiểm tra": ("Kiểm tra hệ thống cảnh báo", "police", "2027-07-30T17:00+07:00")}
    with clock.using(play.clock.now):
        p1 = play.start("2027-06-01T08:00+07:00", "periodic_review", "system", host="dic", period="2027H1")
        play.fire("2027-06-01T09:00+07:00", p1, "request_reports", "dic.focal_point")
        play.fire("2027-06-02T09:00+07:00", p1, "submit_reports", "dic.focal_point")
        play.fire("2027-06-02T10:00+07:00", p1, "submit_reports", "police.focal_point")
        play.fire("2027-06-03T09:00+07:00", p1, "invite", "dic.focal_point", meeting_at="2027-06-10T08:00+07:00")
        play.fire("2027-06-10T11:00+07:00", p1, "hold", "dic.leader")
        play.fire("2027-06-11T09:00+07:00", p1, "issue_conclusions", "dic.focal_point", conclusions="Thông báo 05/TB-GB")
        for what, party, due in items.values():
            play.fire("2027-06-11T10:00+07:00", p1, "record_action", "dic.focal_point",
                      action=what, action_party=party, action_due=due)
        with play.store.reading() as conn:
            made = {r.fields["what"]: r.id for r in conn.execute(select(instances).where(instances.c.workflow == "action_item"))}
        ids = {key: made[what] for key, (what, _, _) in items.items()}
        play.fire("2027-08-01T09:00+07:00", ids["rà soát"], "complete", "police.focal_point", result="Đã rà soát 1.200 thuê bao")
        play.fire("2027-08-05T09:00+07:00", ids["quy trình"], "complete", "dic.leader", result="Quy trình 02/QT")
        play.until(at("2027-09-01T00:00+07:00"))
    reports_of = {p: reports.build(play.store, play.policy, reports.parse_period(p, play.policy.tz),
                                   now=at("2032-01-02T00:00+07:00")) for p in ("2027H1", "2027Q3", "2027H2")}
    play.store.dispose()
    return {"config": config, "p1": p1, "ids": ids, "reports": reports_of}


def _actions(data: dict) -> dict[str, dict]:
    return {a["subject"]: a for a in data["actions"]}


def test_each_recorded_conclusion_is_a_tracked_instance(played):
    """Four record_action firings made four action items pointing at the meeting, each with its party and due time."""
    actions = _actions(played["reports"]["2027H1"])
    assert set(actions) == {"Rà soát thuê bao ảo", "Cập nhật quy trình gỡ tin giả", "Tập huấn an ninh mạng",
                            "Kiểm tra hệ thống cảnh báo"}
    assert {a["meeting"] for a in actions.values()} == {played["p1"]}
    assert {a["meeting_subject"] for a in actions.values()} == {"2027H1"}
    assert actions["Rà soát thuê bao ảo"]["party"] == "police"
    assert {a["status"] for a in actions.values()} == {"open"}  # none was due by 1 July


def test_the_meeting_is_held_with_its_conclusions(played):
    meeting = next(m for m in played["reports"]["2027H1"]["meetings"] if m["instance"] == played["p1"])
    assert meeting["held"] and meeting["held_by"] == "dic.leader" and meeting["conclusions"] == "Thông báo 05/TB-GB"
    assert meeting["meeting_at"] == "2027-06-10T08:00:00+07:00" and meeting["opened_by"] is None and meeting["rule"] is None


def test_the_next_report_says_done_late_or_open(played):
    """H2: done on time, done 12 working days late, and late (one due in December, one escalated since July)."""
    actions = _actions(played["reports"]["2027H2"])
    assert (actions["Rà soát thuê bao ảo"]["status"], actions["Rà soát thuê bao ảo"]["late_days"]) == ("done", None)
    late_done = actions["Cập nhật quy trình gỡ tin giả"]
    assert (late_done["status"], late_done["late_days"]) == ("done_late", 12)  # 21 July – 5 August, working days
    assert actions["Tập huấn an ninh mạng"]["status"] == "late"
    check = actions["Kiểm tra hệ thống cảnh báo"]
    assert check["status"] == "late" and check["state_title"] == "Đã báo cáo lãnh đạo hai cơ quan" and check["late_days"] > 90
    assert _actions(played["reports"]["2027Q3"])["Tập huấn an ninh mạng"]["status"] == "open"  # not due by 1 October


def test_the_report_document_lists_them(coopflow_cli, played, monkeypatch):
    monkeypatch.setattr(clock, "_source", lambda: at("2032-01-02T00:00+07:00"))
    code, out, err = coopflow_cli("report", "--period", "2027H2", "-c", played["config"])
    assert code == 0, err
    assert "## 4. Thực hiện kết luận các cuộc họp" in out
    assert "| Cập nhật quy trình gỡ tin giả | Sở Thông tin và Truyền thông tỉnh Lào Cai | 20/07/2027 | " \
           "Hoàn thành chậm (12 ngày làm việc) | 2027H1 |" in out
    assert "| Rà soát thuê bao ảo | Công an tỉnh Lào Cai | 15/08/2027 | Đã hoàn thành | 2027H1 |" in out
    assert "Đã hoàn thành: 1; hoàn thành chậm: 1; quá hạn: 2." in out
