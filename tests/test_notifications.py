"""Notifications that reach people: a real SMTP server (aiosmtpd) and a real HTTP server in this
process, deliveries in a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml
from aiosmtpd.controller import Controller
from sqlalchemy import update

from engine import clock
from engine.execution.executor import Executor
from engine.execution.runtime import Runtime
from engine.notify import channels, deliveries
from engine.policy.loader import load_policy
from engine.store.database import SqlStore
from engine.store.database import deliveries as deliveries_table

REQUEST = {"requester": "dic", "recipient": "police", "subject": "Danh sách tài khoản giả mạo"}
POLICE_FP = "nguyen.thi.b@congan.laocai.example.gov.vn"
DIC_FP = "nguyen.van.a@stttt.laocai.example.gov.vn"
REFUSED = "khong.ton.tai@congan.laocai.example.gov.vn"
SECRET = "bí-mật-ký-webhook"
PUBLIC = "https://coopflow.laocai.example.gov.vn"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """aiosmtpd handler: keeps what it receives, refuses REFUSED with 550."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == REFUSED:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default))
        return "250 Message accepted"


@pytest.fixture
def smtp():
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    box.port, box.controller = port, controller
    yield box
    if getattr(box, "running", True):
        controller.stop()


class Hooks(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_server():
    handler = type("H", (Hooks,), {"received": []})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler.received
    server.shutdown()
    server.server_close()


def configure(config: Path, store_url: str, smtp_port: int, webhook_url: str | None = None, settings: dict | None = None,
              **contacts) -> None:
    """Point the shipped config at the test store, SMTP server and webhook (`settings` go under
    notifications, e.g. a digest); the rest stays as shipped."""
    text = config.read_text(encoding="utf-8")
    assert text.count("store: sqlite:///coopflow.db\n") == 1
    text = text.replace("store: sqlite:///coopflow.db\n", f"store: {json.dumps(store_url)}\n")
    head, _, section = text.partition("\nnotifications:\n")
    n = yaml.safe_load("notifications:\n" + section)["notifications"]
    n["smtp"] = {"host": "127.0.0.1", "port": smtp_port, "security": "none", "from": "coopflow@laocai.example.gov.vn"}
    n.update(timeout=2, attempts=3, backoff=0.05)
    n["contacts"].update(contacts)
    n.update(settings or {})
    if webhook_url:
        n["webhooks"] = {"police": webhook_url}
        n["webhook"] = {"secret": {"env": "COOPFLOW_TEST_WEBHOOK_SECRET"}}
    config.write_text(head + "\n" + yaml.safe_dump({"notifications": n}, allow_unicode=True, sort_keys=False), encoding="utf-8")


def send_request(rt: Runtime, request=REQUEST, actor="dic.focal_point") -> str:
    sub = rt.executor.submit_start("information_exchange", actor, request)
    rt.executor.submit_fire(sub.instance, "send", actor, {"dispatch_no": "CV-01"})
    rt.settle()
    return sub.instance


def runtime(config: Path, store: SqlStore) -> Runtime:
    policy = load_policy(config)
    return Runtime(policy, store, Executor(store, policy))


def test_a_request_sent_by_dic_emails_the_police_focal_point_once_and_signs_the_webhook(
        shipped_policy, store_url, store, smtp, webhook_server, monkeypatch):
    server, received = webhook_server
    monkeypatch.setenv("COOPFLOW_TEST_WEBHOOK_SECRET", SECRET)
    configure(shipped_policy, store_url, smtp.port, f"http://127.0.0.1:{server.server_port}/coopflow")
    smtp.controller.start()
    rt = runtime(shipped_policy, store)
    instance = send_request(rt)
    assert deliveries.deliver_due(store, rt.policy) == 2  # e-mail to the focal point, webhook to police
    rt.settle()
    assert deliveries.deliver_due(store, rt.policy) == 0  # nothing twice

    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert mail["To"] == POLICE_FP
    assert "Phối hợp trao đổi thông tin" in mail["Subject"]
    body = mail.get_content()
    assert "Có công văn yêu cầu trao đổi thông tin mới cần tiếp nhận." in body
    assert "Kính gửi Cán bộ đầu mối" in body
    assert f"{PUBLIC}/i/{instance}" in body
    assert mail["Message-ID"].startswith("<coopflow.")

    assert len(received) == 1
    headers, raw = received[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Hub-Signature-256"], expected)
    payload = json.loads(raw)
    assert payload["instance"] == instance and payload["party"] == "police"
    assert payload["link"] == f"{PUBLIC}/i/{instance}"
    assert headers["X-Coopflow-Delivery"] == str(payload["delivery"])
    assert {r.status for r in deliveries.listing(store)} == {"sent"}


def test_smtp_down_is_retried_then_delivered_when_back(shipped_policy, store_url, store, smtp):
    configure(shipped_policy, store_url, smtp.port)
    rt = runtime(shipped_policy, store)
    send_request(rt)
    assert deliveries.deliver_due(store, rt.policy) == 1
    [row] = deliveries.listing(store)
    assert row.status == "pending" and row.attempts == 1 and "Connection" in row.last_error
    smtp.controller.start()
    deadline = time.monotonic() + 10
    while deliveries.listing(store, "sent") == [] and time.monotonic() < deadline:
        deliveries.deliver_due(store, rt.policy)
        time.sleep(0.05)
    [row] = deliveries.listing(store)
    assert row.status == "sent" and row.attempts == 2
    assert [m["To"] for m in smtp.messages] == [POLICE_FP]


def test_a_delivery_left_sending_by_a_crash_is_sent_again_with_the_same_message_id(shipped_policy, store_url, store, smtp):
    configure(shipped_policy, store_url, smtp.port)
    smtp.controller.start()
    rt = runtime(shipped_policy, store)
    send_request(rt)
    [claimed] = deliveries.claim_due(store, rt.policy)
    notifications = rt.policy.config.notifications
    channels.send_email(notifications.smtp, rt.policy.root, notifications.timeout, claimed)  # sent, then the crash
    assert deliveries.deliver_due(store, rt.policy) == 0  # the claim still holds
    with store.transaction() as conn:  # the claim expires
        conn.execute(update(deliveries_table).values(next_at=clock.now() - timedelta(seconds=1)))
    assert deliveries.listing(store)[0].status == "sending"
    assert deliveries.deliver_due(store, runtime(shipped_policy, store).policy) == 1
    assert len(smtp.messages) == 2
    assert smtp.messages[0]["Message-ID"] == smtp.messages[1]["Message-ID"]
    assert smtp.messages[0]["X-Coopflow-Delivery"] == smtp.messages[1]["X-Coopflow-Delivery"]
    assert deliveries.listing(store)[0].status == "sent"


def test_a_refused_address_is_a_dead_letter_and_the_next_delivery_still_goes(shipped_policy, store_url, store, smtp):
    configure(shipped_policy, store_url, smtp.port, nguyen_thi_b=REFUSED)
    smtp.controller.start()
    rt = runtime(shipped_policy, store)
    send_request(rt)  # to police: refused
    other = send_request(rt, {**REQUEST, "requester": "police", "recipient": "dic"}, "police.focal_point")
    assert deliveries.deliver_due(store, rt.policy) == 2
    dead, sent = deliveries.listing(store)
    assert dead.status == "dead" and dead.attempts == 1 and "550" in dead.last_error
    assert sent.status == "sent" and [m["To"] for m in smtp.messages] == [DIC_FP]
    assert f"/i/{other}" in smtp.messages[0].get_content()


def test_operators_see_dead_letters_and_queue_them_again(shipped_policy, tmp_path, smtp, coopflow_cli):
    """The CLI side, on SQLite (each command opens its own store)."""
    store_url = f"sqlite:///{tmp_path / 'cli.db'}"
    configure(shipped_policy, store_url, smtp.port, nguyen_thi_b=REFUSED)
    smtp.controller.start()
    store = SqlStore(store_url)
    rt = runtime(shipped_policy, store)
    send_request(rt)
    send_request(rt, {**REQUEST, "requester": "police", "recipient": "dic"}, "police.focal_point")
    deliveries.deliver_due(store, rt.policy)
    dead, sent = deliveries.listing(store)
    code, out, _ = coopflow_cli("deliveries", "--status", "dead", "--json", "-c", shipped_policy)
    assert code == 0
    [shown] = json.loads(out)
    assert shown["id"] == dead.id and shown["address"] == REFUSED and shown["message_id"].startswith("<coopflow.")
    code, out, _ = coopflow_cli("status", "-c", shipped_policy)
    assert code == 0 and "1 notification(s) could not be delivered" in out
    code, out, _ = coopflow_cli("status", "--json", "-c", shipped_policy)
    assert json.loads(out)["dead_letters"] == 1
    code, out, err = coopflow_cli("deliveries", "retry", str(sent.id), "-c", shipped_policy)
    assert code == 1 and "not a dead letter" in err
    code, out, _ = coopflow_cli("deliveries", "retry", "--all-dead", "-c", shipped_policy)
    assert code == 0 and out.startswith("1 dead letter(s) queued again")
    assert deliveries.listing(store, "pending")[0].id == dead.id
    code, _, err = coopflow_cli("deliveries", "retry", "-c", shipped_policy)
    assert code == 2 and "give a delivery ID or --all-dead" in err
    store.dispose()


def test_check_reports_people_who_cannot_be_reached_and_unknown_template_variables(shipped_policy, coopflow_cli):
    text = shipped_policy.read_text(encoding="utf-8")
    shipped_policy.write_text(text.replace("    nguyen_thi_b: nguyen.thi.b@congan.laocai.example.gov.vn\n", ""), encoding="utf-8")
    template = shipped_policy.parent / "templates" / "overdue.txt.j2"
    template.write_text(template.read_text(encoding="utf-8") + "{{ instance.han_xu_ly }}\n", encoding="utf-8")
    code, _, err = coopflow_cli("check", "-c", shipped_policy)
    assert code == 1
    lines = (shipped_policy.parent / "workflows" / "information_exchange.yaml").read_text(encoding="utf-8").splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.strip() == "- notify: [$recipient.focal_point]")
    assert f"workflows/information_exchange.yaml:{line}:18: '$recipient.focal_point' names police.focal_point:nguyen_thi_b, who cannot be reached" in err
    assert "template overdue.txt.j2: 'dict object' has no attribute 'han_xu_ly'" in err


def test_check_refuses_a_bad_address_and_a_password_in_config(shipped_policy, coopflow_cli):
    text = shipped_policy.read_text(encoding="utf-8")
    text = text.replace("nguyen.van.a@stttt.laocai.example.gov.vn", "nguyen van a@stttt").replace(
        "password: {env: COOPFLOW_SMTP_PASSWORD}", "password: matkhau123")
    shipped_policy.write_text(text, encoding="utf-8")
    code, _, err = coopflow_cli("check", "-c", shipped_policy)
    assert code == 1
    assert "notifications.contacts.nguyen_van_a" in err or "nguyen van a@stttt" in err
    assert "Traceback" not in err


def test_simulate_lists_the_messages_that_would_be_sent(shipped_policy, tmp_path, coopflow_cli):
    events = tmp_path / "events.yaml"
    events.write_text(yaml.safe_dump([
        {"at": "2025-06-02T09:00:00+07:00", "start": "information_exchange", "as": "dic.focal_point", "ref": "r", "set": REQUEST},
        {"at": "2025-06-02T10:00:00+07:00", "fire": "send", "instance": "r", "as": "dic.focal_point", "set": {"dispatch_no": "CV-01"}},
    ], allow_unicode=True), encoding="utf-8")
    code, out, err = coopflow_cli("simulate", "--from", "2025-06-02", "--to", "2025-06-03", "--events", events, "--json", "-c", shipped_policy)
    assert code == 0, err
    messages = [e for e in json.loads(out) if e["kind"] == "message"]
    assert messages and messages[0]["address"] == POLICE_FP and messages[0]["channel"] == "email"
    assert messages[0]["at"].startswith("2025-06-02T10:00")
    assert "Phối hợp trao đổi thông tin" in messages[0]["subject"]
