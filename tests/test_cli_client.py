"""The CLI as a client of the HTTP API, against a real `coopflow run` on a copy of the shipped policy.

Each person's shell is a real `python -m engine` process in a folder without any config.yaml,
with its own XDG_CONFIG_HOME (where `coopflow login` keeps the token) and no COOPFLOW_* variables
but those a test sets: "another machine's CLI, with only the server URL".
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from conftest import clean_env as without_settings
from conftest import free_port, served_shipped_policy

from engine.policy.loader import load_policy

PASSWORD = "mật khẩu đủ dài 2027"
PEOPLE = {"nguyen_van_a": "dic.focal_point", "nguyen_thi_b": "police.focal_point", "dinh_quang_khai": "dic.it_admin",
          "tran_van_binh": "dic.leader"}


def clean_env(**extra: str) -> dict[str, str]:
    """conftest's environment without COOPFLOW_* settings, also without a saved login's folder and a terminal width."""
    env = without_settings(**extra)
    for name in ("XDG_CONFIG_HOME", "COLUMNS"):
        if name not in extra:
            env.pop(name, None)
    return env


def admin(config: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """The administrator on the server: the local mode, with -c."""
    done = subprocess.run([sys.executable, "-m", "engine", *args, "-c", str(config)], input=input, text=True,
                          capture_output=True, env=clean_env(), cwd=config.parent, timeout=120)
    return done


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    with served_shipped_policy(root, PEOPLE, PASSWORD) as (url, config):
        yield {"url": url, "config": config, "root": root}


class Desk:
    """One person's shell on another machine: a home for the saved login, no policy, no store."""

    def __init__(self, root: Path, name: str, **env: str):
        self.home = root / name
        (self.home / "work").mkdir(parents=True, exist_ok=True)
        self.env = clean_env(XDG_CONFIG_HOME=str(self.home / "config"), **env)

    def __call__(self, *args: str, input: str | None = None, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "engine", *args], input=input, text=True, capture_output=True,
                              env={**self.env, **env}, cwd=self.home / "work", timeout=120)

    @property
    def credentials(self) -> Path:
        return self.home / "config" / "coopflow" / "credentials"

    def login(self, url: str, person: str) -> subprocess.CompletedProcess:
        done = self("login", "--server", url, "--user", person, "--password-stdin", input=PASSWORD + "\n")
        assert done.returncode == 0, done.stderr
        return done


def no_traceback(done: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr


@pytest.fixture(scope="module")
def desks(server, tmp_path_factory):
    root = tmp_path_factory.mktemp("desks")
    a, b = Desk(root, "a"), Desk(root, "b")
    a.login(server["url"], "nguyen_van_a")
    b.login(server["url"], "nguyen_thi_b")
    return a, b


def start_request(desk: Desk) -> str:
    done = desk("start", "information_exchange", "--set", "requester=dic", "--set", "recipient=police",
                "--set", "subject=Xin thông tin thuê bao")
    assert done.returncode == 0, done.stderr
    ident, outcome = done.stdout.splitlines()
    assert outcome == "applied: started in drafted"
    return ident


def test_login_keeps_the_token_readable_only_by_its_owner(server, desks):
    a, _ = desks
    assert stat.S_IMODE(a.credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(a.credentials.parent.stat().st_mode) == 0o700
    saved = json.loads(a.credentials.read_text(encoding="utf-8"))
    assert (saved["server"], saved["person"], saved["timezone"]) == (server["url"], "nguyen_van_a", "Asia/Ho_Chi_Minh")
    assert saved["token"].startswith("cft_")
    overview = a("status")
    assert overview.returncode == 0, overview.stderr
    assert "open instances per clause" in overview.stdout and "who owes the next step" in overview.stdout


def test_two_people_of_two_parties_act_as_themselves_and_history_names_them(desks):
    a, b = desks
    ident = start_request(a)
    sent = a("fire", ident, "send", "--set", "dispatch_no=125/STTTT")
    assert (sent.returncode, sent.stdout) == (0, "applied: drafted -> sent\n"), sent.stderr
    early = b("fire", ident, "answer", "--set", "answer=Công văn 88/CAT")
    assert early.returncode == 1
    assert early.stdout == ("refused: trigger 'answer' is not allowed from state 'sent' "
                            "(allowed: acknowledge, deemed_received, withdraw)\n")
    acked = b("fire", ident, "acknowledge")
    assert (acked.returncode, acked.stdout) == (0, "applied: sent -> in_progress\n"), acked.stderr
    shown = json.loads(b("status", ident, "--json").stdout)
    assert (shown["state"], shown["acting_role"]) == ("in_progress", "police.focal_point")
    assert {x["trigger"] for x in shown["actions"] if x["allowed"]} == {"mark_complex", "answer"}
    rows = [json.loads(line) for line in a("history", ident, "--json").stdout.splitlines()]
    assert [(r["trigger"], r["actor"], r["data"]["principal"]["person"]) for r in rows] == [
        (None, "dic.focal_point:nguyen_van_a", "nguyen_van_a"),
        ("send", "dic.focal_point:nguyen_van_a", "nguyen_van_a"),
        ("answer", "police.focal_point:nguyen_thi_b", "nguyen_thi_b"),
        ("acknowledge", "police.focal_point:nguyen_thi_b", "nguyen_thi_b"),
    ]
    assert all(r["at"].endswith("+07:00") for r in rows)  # the agreement's zone, as every other command
    table = b("history", ident)
    assert table.returncode == 0 and "police.focal_point:nguyen_thi_b" in table.stdout
    tasks = json.loads(b("tasks", "--json").stdout)
    assert any(t["instance"] == ident and "answer" in t["triggers"] for t in tasks)


def test_a_step_of_the_other_party_is_refused_with_the_resolved_role(desks):
    a, b = desks
    ident = start_request(a)
    assert a("fire", ident, "send", "--set", "dispatch_no=7/STTTT").returncode == 0
    done = b("withdraw", ident, "agree")
    assert done.returncode == 1
    assert done.stdout.startswith("refused: unknown trigger 'agree'")
    done = b("fire", ident, "withdraw")
    assert done.returncode == 1
    assert done.stdout == ("refused: police.focal_point:nguyen_thi_b may not fire 'withdraw' "
                           "(allowed: dic.focal_point, dic.leader)\n")
    assert json.loads(a("status", ident, "--json").stdout)["state"] == "sent"


def test_as_is_the_local_mode_only_and_usage_mistakes_exit_2(desks):
    _, b = desks
    done = b("fire", "information_exchange-00000000", "acknowledge", "--as", "police.leader")
    assert done.returncode == 2 and "--as is for the administrator's local mode" in done.stderr
    typo = b("status", "--state", "sentt")
    assert typo.returncode == 2 and "unknown state 'sentt'; did you mean 'sent'?" in typo.stderr
    unknown = b("status", "information_exchange-00000000")
    assert (unknown.returncode, unknown.stderr) == (1, "error: unknown instance 'information_exchange-00000000'\n")
    for done in (typo, unknown):
        no_traceback(done)


def test_a_wrong_password_is_refused_cleanly(server, tmp_path):
    desk = Desk(tmp_path, "c")
    done = desk("login", "--server", server["url"], "--user", "nguyen_van_a", "--password-stdin", input="sai\n")
    assert done.returncode == 1 and done.stderr.startswith("error: not logged in: ")
    assert not desk.credentials.exists()
    no_traceback(done)


def test_revoked_and_expired_tokens_are_refused(server, tmp_path):
    from engine import clock
    from engine.service import Deployment
    from engine.store.database import tokens

    issued = admin(server["config"], "token", "issue", "nguyen_thi_b", "--expires", "1h")
    assert issued.returncode == 0, issued.stderr
    secret = issued.stdout.strip()
    desk = Desk(tmp_path, "env", COOPFLOW_SERVER=server["url"], COOPFLOW_TOKEN=secret)
    assert desk("status", "-w", "information_exchange").returncode == 0
    token_id = secret.split("_")[1]
    with Deployment.open(server["config"], log_to_files=False) as d, d.runtime.store.transaction() as conn:
        conn.execute(tokens.update().where(tokens.c.id == token_id).values(expires_at=clock.now() - timedelta(minutes=1)))
    expired = desk("status", "-w", "information_exchange")
    assert expired.returncode == 1
    assert expired.stderr == f"error: not logged in: token {token_id} expired (coopflow login --server {server['url']})\n"
    issued = admin(server["config"], "token", "issue", "nguyen_thi_b")
    desk.env["COOPFLOW_TOKEN"] = secret = issued.stdout.strip()
    assert desk("upcoming").returncode == 0
    assert admin(server["config"], "token", "revoke", secret.split("_")[1]).returncode == 0
    revoked = desk("upcoming")
    assert revoked.returncode == 1 and "revoked" in revoked.stderr and revoked.stderr.startswith("error: not logged in: ")
    no_traceback(revoked)


def test_logout_revokes_the_token_and_forgets_it(server, tmp_path):
    desk = Desk(tmp_path, "d")
    desk.login(server["url"], "nguyen_van_a")
    token = json.loads(desk.credentials.read_text(encoding="utf-8"))["token"]
    done = desk("logout")
    assert (done.returncode, done.stdout) == (0, f"logged out of {server['url']} (token revoked)\n")
    assert not desk.credentials.exists()
    answer = httpx.get(server["url"] + "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401 and "revoked" in answer.json()["detail"]
    assert desk("logout").stdout == "not logged in\n"


def test_server_down_is_server_unavailable(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    desk = Desk(tmp_path, "e", COOPFLOW_SERVER=url, COOPFLOW_TOKEN="cft_000000000000_x")
    for args in (("status",), ("fire", "information_exchange-00000000", "send")):
        done = desk(*args)
        assert done.returncode == 1 and done.stderr.startswith(f"server unavailable: {url}: "), done.stderr
        assert len(done.stderr.splitlines()) == 1
        no_traceback(done)
    login = desk("login", "--server", url, "--user", "x", "--password-stdin", input="y\n")
    assert login.returncode == 1 and login.stderr.startswith("server unavailable: ")


def test_the_client_path_loads_neither_sqlalchemy_nor_the_policy(desks):
    a, b = desks
    done = b("status", "-w", "information_exchange", PYTHONPROFILEIMPORTTIME="1")
    assert done.returncode == 0, done.stderr
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "engine.cli.http1" in loaded and "engine.cli.tables" in loaded  # the profile is real
    assert not {m for m in loaded if m.split(".")[0] in ("sqlalchemy", "pydantic", "yaml", "loguru", "holidays", "httpx",
                                                          "email", "ssl")}
    assert "http.client" not in loaded  # engine.cli.http1 does the exchange (http.client loads email and ssl)
    assert not {m for m in loaded if m.startswith(("engine.policy", "engine.store", "engine.service"))}
    one = a("status", start_request(a), PYTHONPROFILEIMPORTTIME="1")
    assert one.returncode == 0 and "state: " in one.stdout
    assert " rich" not in one.stderr  # one instance is plain lines: not even rich is loaded


def test_ids_are_never_cut_on_an_80_column_terminal(desks):
    a, _ = desks
    ident = start_request(a)
    for args in (("status", "-w", "information_exchange"), ("status",), ("history", ident), ("tasks",)):
        done = a(*args, COLUMNS="80")
        assert done.returncode == 0, done.stderr
        assert ident in done.stdout, (args, done.stdout)
        assert max(len(line) for line in done.stdout.splitlines()) <= 80, (args, done.stdout)


def test_completion_offers_workflows_instances_and_triggers(server, desks):
    a, _ = desks
    ident = start_request(a)

    def complete(*words: str) -> list[str]:
        done = a(_COOPFLOW_COMPLETE="bash_complete", COMP_WORDS=" ".join(["coopflow", *words]), COMP_CWORD=str(len(words)))
        assert done.returncode == 0, done.stderr
        return [line.split(",", 1)[1] for line in done.stdout.splitlines()]

    assert "information_exchange" in complete("start", "inf")
    assert ident in complete("fire", ident[:-3])
    spec = load_policy(server["config"]).workflows["information_exchange"]
    leaving = sorted({t.trigger for t in spec.transitions if spec.leaves(t, "drafted")})
    assert "send" in leaving and complete("fire", ident, "") == leaving
    assert complete("fire", ident, "se") == ["send"]


def test_c_is_accepted_before_and_after_the_command(server):
    config = str(server["config"])
    env = clean_env()
    before = subprocess.run([sys.executable, "-m", "engine", "-c", config, "status", "-w", "information_exchange", "--json"],
                            capture_output=True, text=True, env=env, timeout=120)
    after = subprocess.run([sys.executable, "-m", "engine", "status", "-w", "information_exchange", "--json", "-c", config],
                           capture_output=True, text=True, env=env, timeout=120)
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout) != []


AT_MINUTE = re.compile(r"\(at \d{4}-\d\d-\d\d \d\d:\d\d\)")  # the overview's "now": two runs may straddle a minute


def test_remote_and_local_print_the_same(server, desks, tmp_path):
    """The administrator's desk (who sees every instance) against the same server's local mode:
    the same lines, totals and next-page hints, and the same exit codes."""
    a, _ = desks
    root = Desk(tmp_path, "admin")
    root.login(server["url"], "dinh_quang_khai")
    idents = [start_request(a) for _ in range(3)]
    config = server["config"]

    def both(*args: str) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
        remote, local = root(*args), admin(config, *args)
        assert remote.returncode == local.returncode, (args, remote.stderr, local.stderr)
        return remote, local

    for args in (("status", "-w", "information_exchange", "--limit", "2"),
                 ("status", "-w", "information_exchange", "--limit", "2", "--page", "2"),
                 ("status", "-s", "drafted", "--limit", "1", "--page", "999"),
                 ("upcoming", "--days", "400", "--limit", "1"), ("upcoming", "--days", "400", "--limit", "1", "--page", "2"),
                 ("history", idents[0]), ("status", "--limit", "1")):
        remote, local = both(*args)
        assert remote.returncode == 0, (args, remote.stderr)
        assert AT_MINUTE.sub("", remote.stdout) == AT_MINUTE.sub("", local.stdout), args
    listed = root("status", "-w", "information_exchange", "--limit", "2").stdout
    assert "showing 1–2 of " in listed and "next: coopflow status --workflow information_exchange --page 2" in listed
    assert "item(s) in the next 400 day(s)" in root("upcoming", "--days", "400", "--limit", "1").stdout
    past = root("status", "-s", "drafted", "--limit", "1", "--page", "999").stdout
    assert "page 999 is past the end" in past
    for args in (("status", "-w", "nowhere"), ("status", "information_exchange-00000000"),
                 ("fire", idents[1], "nothing_such", "--as", "dic.focal_point")):
        remote, local = root(*(a for a in args if a not in ("--as", "dic.focal_point"))), admin(config, *args)
        assert remote.returncode == local.returncode != 0, (args, remote.stderr, local.stderr, local.stdout)


def test_status_of_one_instance_says_whose_consent_is_still_needed(server, desks, tmp_path):
    a, b = desks
    leader = Desk(tmp_path, "leader")
    leader.login(server["url"], "tran_van_binh")
    done = a("start", "emergency_review", "--set", "issue=Sự cố an toàn thông tin", "--set", "proposed_by=dic")
    assert done.returncode == 0, done.stderr
    ident = done.stdout.splitlines()[0]
    agreed = leader("consent", ident, "agree")
    assert (agreed.returncode, agreed.stdout) == (0, "applied: consent recorded for dic: 1 of 2, waiting for police\n")
    local = admin(server["config"], "status", ident)
    remote = b("status", ident)
    assert local.returncode == remote.returncode == 0, remote.stderr
    needed = "consent to agree still needed from: police"
    assert needed in local.stdout.splitlines() and needed in remote.stdout.splitlines()
    assert remote.stdout.startswith(local.stdout)  # and then what the caller may do now
    assert "you may (police.focal_point)" in remote.stdout
    assert json.loads(b("status", ident, "--json").stdout)["awaiting_consent"] == {"agree": ["police"]}


# --------------------------------------------------------------------------- engine.cli.http1 on a real socket


class Canned:
    """A TCP server on 127.0.0.1 that reads one request and answers `answer` (bytes), then closes."""

    def __init__(self, answer: bytes):
        import socket
        import threading

        self.answer, self.request = answer, b""
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while b"\r\n\r\n" not in self.request:
                self.request += conn.recv(65536)
            head, _, body = self.request.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                body += conn.recv(65536)
            self.request = head + b"\r\n\r\n" + body
            conn.sendall(self.answer)
        self.sock.close()

    def exchange(self, method: str = "GET", body: bytes | None = None, **headers: str):
        from engine.cli.http1 import exchange

        try:
            return exchange("http", "127.0.0.1", self.port, method, "/api/v1/me?x=1", headers, body, 10)
        finally:
            self.thread.join(10)


@pytest.mark.parametrize("answer, body", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-Total-Count: 7\r\n\r\n{\"a\": \"b\"}", b'{"a": "b"}'),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Total-Count: 7\r\n\r\n"
     b"4\r\n{\"a\"\r\n6;ext=1\r\n: \"b\"}\r\n0\r\nTrailer: x\r\n\r\n", b'{"a": "b"}'),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nx-total-count:7\r\n\r\n{\"a\": \"b\"}", b'{"a": "b"}'),
], ids=["content-length", "chunked", "interim-then-until-close"])
def test_http1_reads_each_framing_of_an_answer(answer, body):
    server = Canned(answer)
    status, headers, got = server.exchange("POST", b'{"q": 1}', Authorization="Bearer t")
    assert (status, headers["x-total-count"], got) == (200, "7", body)
    head, _, sent = server.request.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /api/v1/me?x=1 HTTP/1.1" and sent == b'{"q": 1}'
    assert {b"Host: 127.0.0.1:%d" % server.port, b"Connection: close", b"Authorization: Bearer t",
            b"Content-Length: 8"} <= set(lines)


@pytest.mark.parametrize("answer, why", [
    (b"<html>hello</html>", "not an HTTP/1.x answer"),
    (b"", "no answer"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", "cut short"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "not a chunk size"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "not a header line"),
])
def test_http1_names_an_answer_it_cannot_read(answer, why):
    from engine.cli.http1 import BadAnswer

    with pytest.raises(BadAnswer, match=why):
        Canned(answer).exchange()


def test_http1_refuses_to_send_a_header_with_a_line_break_or_beyond_latin1():
    from engine.cli.http1 import exchange

    for value, why in (("k\r\nX-Admin: 1", "line break"), ("khóa-ключ", "Latin-1")):
        with pytest.raises(ValueError, match=why):  # refused before connecting: port 9 is never reached
            exchange("http", "127.0.0.1", 9, "POST", "/x", {"Idempotency-Key": value}, b"", 1)
    with pytest.raises(ValueError, match="control character"):
        exchange("http", "127.0.0.1", 9, "GET", "/x y", {}, None, 1)


def test_a_server_that_is_not_http_is_server_unavailable(tmp_path):
    server = Canned(b"SSH-2.0-OpenSSH_9.2\r\n")
    desk = Desk(tmp_path, "f", COOPFLOW_SERVER=f"http://127.0.0.1:{server.port}", COOPFLOW_TOKEN="cft_000000000000_x")
    done = desk("status", "-w", "information_exchange")
    assert done.returncode == 1 and done.stderr.startswith(f"server unavailable: http://127.0.0.1:{server.port}: "
                                                           "not an HTTP/1.x answer"), done.stderr
    no_traceback(done)
