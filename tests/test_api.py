"""The HTTP API against a real `coopflow run` process (uvicorn beside the daemon) on a temp store.

One daemon serves the whole module; each test makes its own instances. Accounts and tokens are
created through engine.auth on the same SQLite file, as `coopflow user add` / `token issue` do.
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from conftest import clean_env, copy_shipped_policy, free_port, running_daemon
from sqlalchemy import update

from engine import clock
from engine.auth import accounts, tokens
from engine.policy.loader import load_policy
from engine.store.database import SqlStore
from engine.store.database import tokens as tokens_table

PASSWORD = "mật khẩu đủ dài 2027"
PEOPLE = {
    "nguyen_van_a": "dic.focal_point", "pham_thi_lan": "dic.staff", "nguyen_thi_b": "police.focal_point",
    "bui_van_nam": "police.staff", "dinh_quang_khai": "dic.it_admin", "vu_minh_tuan": "dic.inspector",
}


class Server:
    def __init__(self, root: Path):
        self.config = copy_shipped_policy(root)
        self.db = root / "api.db"
        self.port = free_port()
        text = self.config.read_text(encoding="utf-8").replace("store: sqlite:///coopflow.db", f"store: sqlite:///{self.db}")
        self.config.write_text(text + f"\nhttp:\n  port: {self.port}\n", encoding="utf-8")
        self.policy = load_policy(self.config)
        self.store = SqlStore(f"sqlite:///{self.db}")
        self.tokens: dict[str, str] = {}
        self.clients: list[httpx.Client] = []
        for person in PEOPLE:
            accounts.add_user(self.store, self.policy.config, person, PASSWORD)
            self.tokens[person] = tokens.issue(self.store, self.policy.config, person, timedelta(days=1))[1]
        self.running = ExitStack()
        self.url = self.running.enter_context(running_daemon(self.config, self.port))

    def client(self, person: str | None = None, token: str | None = None) -> httpx.Client:
        token = token or (self.tokens[person] if person else None)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=30)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        """Close the clients, then stop the daemon (running_daemon asserts it exits 0)."""
        for client in self.clients:
            client.close()
        try:
            self.running.close()
        finally:
            self.store.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("api"))
    yield s
    s.stop()


def start_request(api: httpx.Client, **extra) -> str:
    r = api.post("/instances", json={"workflow": "information_exchange", "values": {
        "requester": "dic", "recipient": "police", "subject": "Xin thông tin thuê bao"}, **extra})
    assert r.status_code == 201, r.text
    return r.json()["instance"]


def test_only_health_and_metrics_answer_anonymously(server):
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(server.url + path).status_code == 200, path
    anon = server.client()
    for method, path in [("GET", "/me"), ("GET", "/me/tasks"), ("GET", "/workflows"), ("GET", "/instances"),
                         ("POST", "/instances"), ("GET", "/upcoming"), ("GET", "/overview"), ("GET", "/audit"),
                         ("GET", "/instances/x/history"), ("POST", "/instances/x/events"), ("GET", "/reports/2027H1")]:
        r = anon.request(method, path, json={} if method == "POST" else None)
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/unauthenticated")
    assert server.client(token="cft_000000000000_" + "x" * 43).get("/me").status_code == 401


def test_two_people_of_two_parties_take_a_request_to_answered(server):
    dic, police = server.client("nguyen_van_a"), server.client("nguyen_thi_b")
    assert dic.get("/me").json() == {"person": "nguyen_van_a", "party": "dic", "roles": ["dic.focal_point"],
                                     "acting_role": None, "admin": False, "read_only": False,
                                     "method": dic.get("/me").json()["method"], "timezone": "Asia/Ho_Chi_Minh"}
    ident = start_request(dic)
    view = police.get(f"/instances/{ident}").json()
    assert view["state"] == "drafted"
    assert {a["trigger"]: a["allowed"] for a in view["actions"]}["send"] is False
    assert "may not fire 'send'" in next(a for a in view["actions"] if a["trigger"] == "send")["reason"]
    assert next(a for a in dic.get(f"/instances/{ident}").json()["actions"] if a["trigger"] == "send")["allowed"]
    for api, trigger, values, state in [(dic, "send", {"dispatch_no": "125/STTTT"}, "sent"),
                                         (police, "acknowledge", {}, "in_progress"),
                                         (police, "answer", {"answer": "Công văn 88/CAT"}, "answered")]:
        r = api.post(f"/instances/{ident}/events", json={"trigger": trigger, "values": values})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "applied"
        assert api.get(f"/instances/{ident}").json()["state"] == state
    rows = police.get(f"/instances/{ident}/history").json()["items"]
    assert [(h["trigger"], h["actor"], h["data"]["principal"]["person"]) for h in rows] == [
        (None, "dic.focal_point:nguyen_van_a", "nguyen_van_a"),
        ("send", "dic.focal_point:nguyen_van_a", "nguyen_van_a"),
        ("acknowledge", "police.focal_point:nguyen_thi_b", "nguyen_thi_b"),
        ("answer", "police.focal_point:nguyen_thi_b", "nguyen_thi_b"),
    ]
    assert rows[-1]["data"]["principal"]["auth"].startswith("token:")
    assert rows[-1]["data"]["principal"]["client"] == "127.0.0.1"
    # the CLI's history shows the same provenance
    out = subprocess.run([sys.executable, "-m", "engine", "history", ident, "--json", "-c", str(server.config)],
                         capture_output=True, text=True, timeout=60, env=clean_env())
    assert out.returncode == 0, out.stderr
    assert "nguyen_thi_b" in out.stdout and '"principal"' in out.stdout


def test_another_partys_transition_is_refused_and_recorded(server):
    dic = server.client("nguyen_van_a")
    ident = start_request(dic)
    r = server.client("nguyen_thi_b").post(f"/instances/{ident}/events", json={"trigger": "send",
                                                                               "values": {"dispatch_no": "1/CAT"}})
    assert r.status_code == 409
    body = r.json()
    assert body["type"].endswith("/refused") and "may not fire 'send'" in body["detail"]
    last = dic.get(f"/instances/{ident}/history").json()["items"][-1]
    assert (last["outcome"], last["trigger"], last["data"]["principal"]["person"]) == ("refused", "send", "nguyen_thi_b")
    assert dic.get(f"/instances/{ident}").json()["state"] == "drafted"


def test_no_way_to_act_as_someone_else(server):
    dic = server.client("nguyen_van_a")
    ident = start_request(dic)
    r = dic.post(f"/instances/{ident}/events", json={"trigger": "send", "role": "dic.leader",
                                                      "values": {"dispatch_no": "2/STTTT"}})
    assert r.status_code == 403 and "not granted dic.leader" in r.json()["detail"]
    r = dic.post(f"/instances/{ident}/events", json={"trigger": "send", "actor": "dic.leader:tran_van_binh",
                                                      "values": {"dispatch_no": "2/STTTT"}})
    assert r.status_code == 422 and "actor" in r.json()["detail"]
    r = dic.post("/instances", json={"workflow": "periodic_review", "role": "system", "values": {}})
    assert r.status_code == 403 and "only administrators act as system" in r.json()["detail"]
    assert dic.get(f"/instances/{ident}").json()["state"] == "drafted"


def test_revoked_expired_and_read_only_tokens(server):
    cfg = server.policy.config
    tid, token = tokens.issue(server.store, cfg, "pham_thi_lan", timedelta(days=1))
    assert server.client(token=token).get("/me").status_code == 200
    tokens.revoke(server.store, tid)
    r = server.client(token=token).get("/me")
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    tid, token = tokens.issue(server.store, cfg, "pham_thi_lan", timedelta(days=1))
    with server.store.transaction() as conn:
        conn.execute(update(tokens_table).where(tokens_table.c.id == tid).values(expires_at=clock.now() - timedelta(seconds=1)))
    r = server.client(token=token).get("/me")
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    _, token = tokens.issue(server.store, cfg, "pham_thi_lan", timedelta(days=1), read_only=True)
    reader = server.client(token=token)
    assert reader.get("/me").json()["read_only"] is True
    assert reader.get("/instances").status_code == 200
    r = reader.post("/instances", json={"workflow": "information_exchange", "values": {}})
    assert r.status_code == 403 and "read-only" in r.json()["detail"]


def test_reads_are_filtered_by_party(server):
    dic = server.client("nguyen_van_a")
    ident = start_request(dic)  # between dic and police
    r = dic.post("/instances", json={"workflow": "information_exchange", "values": {
        "requester": "dic", "recipient": "ubnd", "subject": "Báo cáo"}})
    if r.status_code != 201:
        pytest.skip(f"cannot start a dic-only instance in the shipped policy: {r.text}")
    private = r.json()["instance"]
    police = server.client("nguyen_thi_b")
    assert police.get(f"/instances/{ident}").status_code == 200
    r = police.get(f"/instances/{private}")
    assert r.status_code == 404 and r.json()["type"].endswith("/not-found")
    assert police.get(f"/instances/{private}/history").status_code == 404
    assert police.post(f"/instances/{private}/events", json={"trigger": "send"}).status_code == 404
    seen = {i["id"] for i in police.get("/instances", params={"limit": 500}).json()["items"]}
    assert ident in seen and private not in seen
    admin = server.client("dinh_quang_khai")
    assert admin.get(f"/instances/{private}").status_code == 200
    # Totals and pages count only what the caller may see, the private deadline included for the administrator only.
    for sent in (ident, private):
        assert dic.post(f"/instances/{sent}/events", json={"trigger": "send", "values": {"dispatch_no": "9/STTTT"}}
                        ).status_code == 200
    for reader, sees in ((police, False), (admin, True)):
        every = reader.get("/instances", params={"workflow": "information_exchange", "limit": 500}).json()
        first = reader.get("/instances", params={"workflow": "information_exchange", "limit": 1}).json()
        assert first["total"] == every["total"] == len(every["items"]) > 1
        answer = reader.get("/upcoming", params={"days": 400, "limit": 1000})
        items = answer.json()
        assert int(answer.headers["x-total-count"]) == len(items) > 1
        assert any(i.get("instance") == private for i in items) is sees
        assert reader.get("/upcoming", params={"days": 400, "limit": 1, "page": 2}).json() == items[1:2]
    assert police.get("/instances", params={"limit": 500}).json()["total"] < admin.get("/instances").json()["total"]


def test_pagination_tasks_and_idempotency(server):
    dic = server.client("pham_thi_lan")
    made = {start_request(dic) for _ in range(3)}
    seen, cursor = [], None
    while True:
        page = dic.get("/instances", params={"workflow": "information_exchange", "limit": 2,
                                             **({"cursor": cursor} if cursor else {})}).json()
        assert len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert made <= set(seen) and len(seen) == len(set(seen))
    assert dic.get("/instances", params={"cursor": "nonsense"}).status_code == 422
    tasks = dic.get("/me/tasks").json()
    assert made <= {t["instance"] for t in tasks if "send" in t["triggers"]}
    body = {"workflow": "information_exchange", "values": {"requester": "dic", "recipient": "police", "subject": "A"}}
    first = dic.post("/instances", json=body, headers={"Idempotency-Key": "k-1"})
    again = dic.post("/instances", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["instance"] == first.json()["instance"] and again.json()["new"] is False
    other = dic.post("/instances", json={**body, "values": {**body["values"], "subject": "B"}},
                     headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 422 and other.json()["type"].endswith("/idempotency-key-reused")


def test_sessions_login_and_csrf(server):
    with httpx.Client(base_url=server.url + "/api/v1", timeout=30) as web:
        assert web.post("/session", json={"person": "nguyen_van_a", "password": "wrong password!!"}).status_code == 401
        r = web.post("/session", json={"person": "nguyen_van_a", "password": PASSWORD})
        assert r.status_code == 200, r.text
        cookie = r.headers["set-cookie"]
        assert "coopflow_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Secure" not in cookie  # plain HTTP here
        csrf = r.json()["csrf_token"]
        assert web.get("/me").json()["person"] == "nguyen_van_a"
        body = {"workflow": "information_exchange", "values": {"requester": "dic", "recipient": "police", "subject": "S"}}
        r = web.post("/instances", json=body)
        assert r.status_code == 403 and "CSRF" in r.json()["detail"]
        assert web.post("/instances", json=body, headers={"X-CSRF-Token": csrf}).status_code == 201
        assert web.delete("/session", headers={"X-CSRF-Token": csrf}).status_code == 204
        assert web.get("/me").status_code == 401
    r = httpx.post(server.url + "/api/v1/login", json={"person": "bui_van_nam", "password": PASSWORD, "expires": "1d"})
    assert r.status_code == 201
    assert server.client(token=r.json()["token"]).get("/me").json()["roles"] == ["police.staff"]


def test_reads_metrics_and_admin_audit(server):
    dic = server.client("nguyen_van_a")
    start_request(dic)
    wf = dic.get("/workflows/information_exchange").json()
    assert wf["initial"] == "drafted" and any(t["trigger"] == "answer" and "$recipient.focal_point" in t["by"]
                                              for t in wf["transitions"])
    assert dic.get("/workflows/nope").status_code == 404
    assert dic.get("/upcoming", params={"days": 60}).status_code == 200
    assert dic.get("/overview").status_code == 200
    assert dic.get(f"/reports/{clock.now().year}").status_code == 200  # a period that has begun
    assert dic.get("/reports/bad").status_code == 422
    assert dic.get("/audit").status_code == 403
    audit = server.client("dinh_quang_khai").get("/audit").json()
    assert audit["ok"] is True and audit["rows"] > 0
    text = httpx.get(server.url + "/metrics").text
    assert 'coopflow_events_total{status="applied",workflow="information_exchange"}' in text
    assert "coopflow_inbox_depth" in text and "coopflow_timer_lag_seconds" in text
