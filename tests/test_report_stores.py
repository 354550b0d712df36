"""The streamed figures are the same on SQLite and PostgreSQL (server-side cursor, the database's JSON extraction)."""

from __future__ import annotations

from conftest import copy_shipped_policy
from test_report import HOUR, Scenario, at

from engine import clock
from engine.views import report as reports


def test_figures_on_both_stores(store_url, tmp_path):
    config = copy_shipped_policy(tmp_path / "policy")
    play = Scenario(config, store_url)
    with clock.using(play.clock.now):
        r1 = play.start("2027-03-01T09:00+07:00", "information_exchange", "dic.focal_point",
                        requester="dic", recipient="police", subject="Danh sách thuê bao")
        play.fire("2027-03-01T10:00+07:00", r1, "send", "dic.focal_point", dispatch_no="101/STTTT")
        play.until(at("2027-03-03T12:00+07:00"))                                    # deemed received 3 March 00:00
        play.fire("2027-03-04T16:00+07:00", r1, "answer", "police.focal_point", answer="Công văn 55/CAT")
        e = play.start("2027-05-10T09:00+07:00", "emergency_review", "police.leader", issue="Sự cố", proposed_by="police")
        play.fire("2027-05-10T10:00+07:00", e, "agree", "police.leader")
        play.fire("2027-05-10T11:00+07:00", e, "agree", "dic.leader", meeting_at="2027-05-12T14:00+07:00")
        play.fire("2027-05-12T16:00+07:00", e, "finish", "dic.focal_point")
    data = reports.build(play.store, play.policy, reports.parse_period("2027H1", play.policy.tz), now=at("2028-01-01T00:00+07:00"))
    play.store.dispose()
    police = next(p for p in data["parties"] if p["party"] == "police")
    assert (police["responses"], police["worst_seconds"]) == (1, 40 * HOUR)  # deemed received -> answer
    request = next(c for c in data["workflows"] if c["workflow"] == "information_exchange")["requests"][0]
    assert (request["subject"], request["dispatch"], request["answer"]) == ("Danh sách thuê bao", ["101/STTTT"], "Công văn 55/CAT")
    meeting = data["meetings"][0]
    assert meeting["held"] and meeting["held_by"] == "dic.focal_point" and meeting["meeting_at"] == "2027-05-12T14:00:00+07:00"
    assert [e["trigger"] for e in data["escalations"]] == ["deemed_received"]
    assert data["anchor"]["seq"] > 0 and len(data["anchor"]["hash"]) == 64
