"""Reminders before a deadline and the daily digest, under a stepped clock, delivered to a real SMTP
server (aiosmtpd) from a real store; and a real `coopflow run` SIGKILLed while it sends."""

from __future__ import annotations

import json
import os
import signal
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import select
from test_daemon import base_env, count_rows, open_store, policy_copy, spawn, sqlite_url, wait_until  # noqa: F401  (fixtures)
from test_notifications import POLICE_FP, PUBLIC, REQUEST, Mailbox, configure, free_port, runtime, send_request, smtp  # noqa: F401

from engine.execution.executor import Executor
from engine.notify import deliveries, digest, reminders
from engine.policy.loader import load_policy
from engine.scheduling import schedules, timers
from engine.store.database import SqlStore
from engine.store.database import deliveries as deliveries_table
from engine.store.database import reminders as reminders_table

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
POLICE_LEADERS = {"hoang.van.son@congan.laocai.example.gov.vn", "ngo.thi.mai@congan.laocai.example.gov.vn"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def complex_request(rt, subject: str) -> str:
    """A request dic sends to police that police acknowledges and marks complex (15 working days)."""
    instance = send_request(rt, {**REQUEST, "subject": subject})
    rt.executor.submit_fire(instance, "acknowledge", "police.focal_point:nguyen_thi_b")
    rt.executor.submit_fire(instance, "mark_complex", "police.focal_point:nguyen_thi_b")
    rt.settle()
    return instance


def tick(rt, stepped_clock, moment: datetime) -> int:
    """Move the clock, fire what is due as the scheduling core does, send; returns how many were sent."""
    stepped_clock.set(moment)
    schedules.fire_due(rt.store, rt.policy, moment)
    with rt.store.transaction() as conn:
        for timer in timers.armed(conn, due_before=moment):
            timers.submit_due(conn, timer.id)
    reminders.fire_due(rt.store, rt.policy, moment)
    digest.send_due(rt.store, rt.policy, moment)
    rt.settle()
    return deliveries.deliver_due(rt.store, rt.policy, limit=100)


def test_a_reminder_fires_on_the_right_working_day_and_not_after_the_state_is_left(
        shipped_policy, store_url, store, smtp, stepped_clock):
    configure(shipped_policy, store_url, smtp.port)
    smtp.controller.start()
    rt = runtime(shipped_policy, store)
    stepped_clock.set(at("2025-04-11T09:00"))  # a Friday; 15 working days end on Tuesday 6 May 2025
    kept = complex_request(rt, "Danh sách thuê bao A")
    left = complex_request(rt, "Danh sách thuê bao B")
    assert deliveries.deliver_due(store, rt.policy, limit=100) > 0  # the request and "complex" notices
    smtp.messages.clear()
    with store.reading() as conn:
        [armed] = reminders.armed(conn, kept)
    # 3 working days before the end of 6 May: 6 May, 5 May, then 29 April (30/4, 1/5 and the
    # swapped 2/5 are days off, 3-4 May a weekend); the in_progress reminder was disarmed by mark_complex.
    assert armed.due_at == at("2025-04-29T07:30")
    assert armed.deadline_at == at("2025-05-07T00:00")

    stepped_clock.set(at("2025-04-28T10:00"))
    rt.executor.submit_fire(left, "answer", "police.focal_point:nguyen_thi_b", {"answer": "Công văn 88/CAT"})
    rt.settle()
    assert tick(rt, stepped_clock, at("2025-04-29T07:29")) == 1  # only the answer's notice to dic
    smtp.messages.clear()
    assert tick(rt, stepped_clock, at("2025-04-29T07:30")) > 0
    mine = [m for m in smtp.messages if m["To"] == POLICE_FP]
    assert len(mine) == 1 and POLICE_LEADERS <= {m["To"] for m in smtp.messages}
    mail = mine[0]
    assert "NHẮC HẠN" in mail["Subject"] and kept in mail["Subject"]
    body = mail.get_content()
    assert "15 ngày làm việc theo khoản 2.complex" in body and "hạn: hết ngày 06/05/2025" in body
    assert "Danh sách thuê bao A" in body and f"{PUBLIC}/i/{kept}" in body
    assert left not in " ".join(m.get_content() for m in smtp.messages)  # answered: no reminder
    sent = len(smtp.messages)
    assert tick(rt, stepped_clock, at("2025-04-29T12:00")) == 0 and len(smtp.messages) == sent  # once
    with store.reading() as conn:
        statuses = dict(conn.execute(select(reminders_table.c.instance, reminders_table.c.status)
                                     .where(reminders_table.c.state == "in_progress_complex")).all())
    assert statuses == {kept: "sent", left: "disarmed"}


def test_the_digest_goes_on_working_days_only_soonest_first_and_honours_opt_out(
        shipped_policy, store_url, store, smtp, stepped_clock):
    configure(shipped_policy, store_url, smtp.port, settings={"digest": {"at": "07:30", "opt_out": ["ngo_thi_mai"]}})
    smtp.controller.start()
    rt = runtime(shipped_policy, store)
    stepped_clock.set(at("2025-04-24T09:00"))  # Thursday
    later = complex_request(rt, "Yêu cầu phức tạp")  # due after 15 working days
    sooner = send_request(rt, {**REQUEST, "subject": "Yêu cầu đơn giản"})
    rt.executor.submit_fire(sooner, "acknowledge", "police.focal_point:nguyen_thi_b")  # 5 working days
    rt.settle()
    deliveries.deliver_due(store, rt.policy, limit=100)
    smtp.messages.clear()

    for holiday in ("2025-04-30T08:00", "2025-05-02T08:00", "2025-05-03T08:00"):  # 30/4, the swapped 2/5, Saturday
        assert tick(rt, stepped_clock, at(holiday)) == 0
    assert tick(rt, stepped_clock, at("2025-05-05T07:29")) == 0  # Monday, before the hour
    assert tick(rt, stepped_clock, at("2025-05-05T07:30")) > 0
    digests = [m for m in smtp.messages if "Việc cần xử lý hôm nay" in m["Subject"]]
    by_address = {m["To"]: m for m in digests}
    assert len(by_address) == len(digests)  # one per person
    assert "ngo.thi.mai@congan.laocai.example.gov.vn" not in by_address  # opted out
    assert "hoang.van.son@congan.laocai.example.gov.vn" in by_address
    body = by_address[POLICE_FP].get_content()
    assert "2 hồ sơ" in by_address[POLICE_FP]["Subject"]
    assert body.index(sooner) < body.index(later)  # soonest deadline first
    assert "Yêu cầu đơn giản" in body and f"{PUBLIC}/i/{sooner}" in body
    with store.reading() as conn:
        rows = conn.execute(select(deliveries_table.c.key).where(deliveries_table.c.kind == "digest")).scalars().all()
    assert all(k.startswith("schedule:digest:2025-05-05:") for k in rows) and len(rows) == len(digests)
    count = len(smtp.messages)
    assert tick(rt, stepped_clock, at("2025-05-05T16:00")) == 0 and len(smtp.messages) == count  # once a day
    assert tick(rt, stepped_clock, at("2025-05-06T07:30")) > 0  # and again the next working day
    assert count_rows(store, deliveries_table, deliveries_table.c.key.like("schedule:digest:2025-05-06:%")) > 0


def test_an_overdue_message_names_the_deadline_its_clause_and_what_happens_next(
        shipped_policy, store_url, store, smtp, stepped_clock):
    configure(shipped_policy, store_url, smtp.port)
    smtp.controller.start()
    rt = runtime(shipped_policy, store)
    instance = send_request(rt)  # Monday 2 June 2025
    rt.executor.submit_fire(instance, "acknowledge", "police.focal_point:nguyen_thi_b")  # 5 working days: to 9 June
    rt.settle()
    deliveries.deliver_due(store, rt.policy, limit=100)
    smtp.messages.clear()
    assert tick(rt, stepped_clock, at("2025-06-09T23:59")) > 0  # the reminder of the morning only
    assert all("NHẮC HẠN" in m["Subject"] for m in smtp.messages)
    smtp.messages.clear()
    assert tick(rt, stepped_clock, at("2025-06-10T00:00")) > 0
    [mail] = [m for m in smtp.messages if m["To"] == POLICE_FP]
    assert "QUÁ HẠN" in mail["Subject"]
    body = mail.get_content()
    assert 'quá thời hạn xử lý ở bước "Đang xử lý (yêu cầu đơn giản, 5 ngày làm việc)"' in body
    assert "Thời hạn: 5 ngày làm việc theo khoản 2.simple" in body
    assert ('Tiếp theo: nếu trong 2 ngày làm việc (hạn: hết ngày 12/06/2025) chưa xử lý, hồ sơ sẽ chuyển sang '
            '"Đã báo cáo lãnh đạo hai cơ quan, đề xuất họp giao ban đột xuất" (khoản 2.overdue)') in body
    assert "Bước tiếp theo thuộc trách nhiệm của:" in body and "Trả lời yêu cầu" in body


def test_a_broken_reminder_template_skips_that_reminder_and_nothing_else(
        shipped_policy, tmp_path, smtp, stepped_clock, log_records):
    store_url = f"sqlite:///{tmp_path / 'broken.db'}"
    configure(shipped_policy, store_url, smtp.port)
    template = shipped_policy.parent / "templates" / "remind.txt.j2"
    template.write_text(template.read_text(encoding="utf-8") + "{{ tasks[0].link }}\n", encoding="utf-8")
    smtp.controller.start()
    store = SqlStore(store_url)
    try:
        rt = runtime(shipped_policy, store)
        instance = send_request(rt)
        rt.executor.submit_fire(instance, "acknowledge", "police.focal_point:nguyen_thi_b")
        rt.settle()
        tick(rt, stepped_clock, at("2025-06-09T07:30"))  # the reminder's instant: does not raise
        with store.reading() as conn:
            status = conn.execute(select(reminders_table.c.status).where(reminders_table.c.instance == instance)).scalar()
        assert status == "failed"
        assert any(r["level"] == "ERROR" and r["message"].startswith("reminder ") and "not sent: UndefinedError" in r["message"]
                   for r in log_records)
        assert tick(rt, stepped_clock, at("2025-06-10T00:00")) > 0  # the deadline still fires and notifies
        assert any("QUÁ HẠN" in m["Subject"] for m in smtp.messages)
    finally:
        store.dispose()


def test_simulate_shows_reminders_and_digests_with_who_when_channel_and_subject(shipped_policy, tmp_path, coopflow_cli):
    configure(shipped_policy, f"sqlite:///{tmp_path / 'unused.db'}", 25, settings={"digest": {"at": "07:30"}})
    events = tmp_path / "events.yaml"
    events.write_text(yaml.safe_dump([
        {"at": "2025-06-02T09:00:00+07:00", "start": "information_exchange", "as": "dic.focal_point", "ref": "r", "set": REQUEST},
        {"at": "2025-06-02T10:00:00+07:00", "fire": "send", "instance": "r", "as": "dic.focal_point", "set": {"dispatch_no": "CV-01"}},
        {"at": "2025-06-02T11:00:00+07:00", "fire": "acknowledge", "instance": "r", "as": "police.focal_point:nguyen_thi_b"},
    ], allow_unicode=True), encoding="utf-8")
    code, out, err = coopflow_cli("simulate", "--from", "2025-06-02", "--to", "2025-06-09", "--events", events, "--json", "-c", shipped_policy)
    assert code == 0, err
    mine = [e for e in json.loads(out) if e["kind"] == "message" and e["address"] == POLICE_FP]
    [remind] = [e for e in mine if e["message"] == "remind"]
    assert remind["at"] == "2025-06-09T07:30:00+07:00" and remind["channel"] == "email" and "NHẮC HẠN" in remind["subject"]
    assert remind["recipient"] == "police.focal_point:nguyen_thi_b"
    days = [e["at"][:10] for e in mine if e["message"] == "digest"]
    assert days == ["2025-06-03", "2025-06-04", "2025-06-05", "2025-06-06", "2025-06-09"]  # working days, after the request
    assert all(e["at"].endswith("T07:30:00+07:00") for e in mine if e["message"] == "digest")


# --------------------------------------------------------------------------- a real daemon, killed


class KillingMailbox(Mailbox):
    """Accepts mail like Mailbox, but SIGKILLs the daemon the first time it reaches `stage`
    (before accepting the recipient, or after taking the message in but before answering)."""

    def __init__(self, stage: str):
        super().__init__()
        self.stage, self.victim = stage, None

    def _kill(self, stage: str) -> None:
        if self.stage == stage and self.victim is not None:
            victim, self.victim = self.victim, None
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self._kill("rcpt")
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):
        answer = await super().handle_DATA(server, session, envelope)
        self._kill("data")
        return answer


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_daemon_killed_while_sending_delivers_after_restart_with_the_same_message_id(
        stage, policy_copy, sqlite_url, spawn, open_store):
    from aiosmtpd.controller import Controller

    box = KillingMailbox(stage)
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        configure(policy_copy, sqlite_url, port)
        policy_copy.write_text(policy_copy.read_text(encoding="utf-8") + "\nhttp:\n  enabled: false\n", encoding="utf-8")
        env = base_env(sqlite_url)
        daemon = spawn(policy_copy, env)
        daemon.wait_log(r"leader lease taken")
        store = open_store(sqlite_url)
        policy = load_policy(policy_copy)
        executor = Executor(store, policy)
        sub = executor.submit_start("information_exchange", "dic.focal_point", REQUEST, key="crash-start")
        box.victim = daemon.proc
        executor.submit_fire(sub.instance, "send", "dic.focal_point", {"dispatch_no": "CV-01"}, key="crash-send")
        wait_until(lambda: daemon.proc.poll() is not None, 30, lambda: f"the SMTP server to kill the daemon:\n{daemon.tail()}")
        assert daemon.proc.returncode == -signal.SIGKILL
        [row] = deliveries.listing(store)
        assert row.status == "sending" and row.attempts == 1  # committed, claimed, never marked sent
        assert len(box.messages) == (1 if stage == "data" else 0)

        again = spawn(policy_copy, env)
        wait_until(lambda: deliveries.listing(store)[0].status == "sent", 40,
                   lambda: f"the restarted daemon to deliver:\n{again.tail()}")
        again.wait_log(r"left sending by the previous leader will be sent again")
        assert again.stop() == 0
        [row] = deliveries.listing(store)
        assert row.attempts == 2
        assert [m["To"] for m in box.messages] == [POLICE_FP] * len(box.messages)
        assert len(box.messages) == (2 if stage == "data" else 1)
        assert len({m["Message-ID"] for m in box.messages}) == 1  # a resend is recognisable
        assert {m["X-Coopflow-Delivery"] for m in box.messages} == {str(row.id)}
    finally:
        controller.stop()



def test_the_mail_that_arrives_is_exactly_what_simulate_predicted(shipped_policy, store_url, store, smtp, stepped_clock,
                                                                    tmp_path, coopflow_cli):
    """Issue 13's promise: the same scripted week through `coopflow simulate` and through the store
    and a real SMTP server under a stepped clock gives the same messages, to the same people."""
    configure(shipped_policy, store_url, smtp.port, settings={"digest": {"at": "07:30"}})
    script = [
        ("2025-06-02T09:00", None, "start", "dic.focal_point", REQUEST),
        ("2025-06-02T10:00", "r", "send", "dic.focal_point", {"dispatch_no": "CV-01"}),
        ("2025-06-02T11:00", "r", "acknowledge", "police.focal_point:nguyen_thi_b", {}),
        ("2025-06-05T15:00", "r", "answer", "police.focal_point:nguyen_thi_b", {"answer": "Công văn 88/CAT"}),
    ]
    events = tmp_path / "events.yaml"
    events.write_text(yaml.safe_dump([
        {"at": f"{when}:00+07:00", "as": actor, "set": values,
         **({"start": "information_exchange", "ref": "r"} if trigger == "start" else {"fire": trigger, "instance": ref})}
        for when, ref, trigger, actor, values in script], allow_unicode=True), encoding="utf-8")
    code, out, err = coopflow_cli("simulate", "--from", "2025-06-02", "--to", "2025-06-11", "--events", events, "--json",
                                  "-c", shipped_policy)
    assert code == 0, err
    predicted = [e for e in json.loads(out) if e["kind"] == "message" and e["channel"] == "email"]
    assert {e["message"] for e in predicted} >= {"digest"} and len(predicted) > 5

    smtp.controller.start()
    rt = runtime(shipped_policy, store)
    instance = None
    timeline = json.loads(out)  # every instant something happened in the simulation, the June review's included
    moments = sorted({at(w) for w, *_ in script} | {datetime.fromisoformat(e["at"]) for e in timeline}
                     | {at("2025-06-02T00:00"), at("2025-06-11T23:59")})
    pending = list(script)
    for moment in moments:
        while pending and at(pending[0][0]) <= moment:
            when, _ref, trigger, actor, values = pending.pop(0)
            tick(rt, stepped_clock, at(when))
            if trigger == "start":
                instance = rt.executor.submit_start("information_exchange", actor, values).instance
            else:
                rt.executor.submit_fire(instance, trigger, actor, values)
            rt.settle()
        tick(rt, stepped_clock, moment)
    got = sorted((m["To"], str(m["Subject"])) for m in smtp.messages)
    # simulate names its instance differently: compare with the instance id swapped in
    sim_id = next(e["instance"] for e in timeline if e.get("workflow") == "information_exchange")
    expected = sorted((e["address"], e["subject"].replace(sim_id, instance)) for e in predicted)
    assert got == expected
