"""50 concurrent API clients with idempotency keys while the daemon is SIGKILLed and restarted 5 times.

A real `coopflow run` (daemon and HTTP API in one process) on a copy of the shipped policy, on
SQLite and on PostgreSQL. Each of CLIENTS threads starts ROUNDS requests (`POST /instances`) and
sends each (`POST /instances/{id}/events`, trigger `send`), every call under its own
`Idempotency-Key`, and retries the very same call (same key, same body) after a dropped
connection, a refused connection, a 5xx or a 202 (queued, not yet applied), until it is applied.
Meanwhile the server is killed with SIGKILL five times, at growing shares of the work done, and
started again each time. Afterwards the store must hold exactly one instance per start key, each
sent exactly once, one applied inbox row per key, and `coopflow audit verify` must pass.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import clean_env, copy_shipped_policy, free_port
from sqlalchemy import func, select
from test_cli_client import PASSWORD, admin

CLIENTS = 50
ROUNDS = 3
KILLS = 5
PEOPLE = ("nguyen_van_a", "tran_van_binh")  # dic.focal_point, dic.leader: both may start and send
GIVE_UP = 600.0  # seconds: a hung run fails instead of blocking the suite (not a speed assertion)


class Server:
    """`coopflow run` on one config, killed and started again on demand."""

    def __init__(self, config: Path, port: int):
        self.config, self.url, self.proc, self.starts = config, f"http://127.0.0.1:{port}", None, 0

    def start(self) -> None:
        self.starts += 1
        with open(self.config.parent / f"daemon-{self.starts}.stderr", "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "engine", "run", "-c", str(self.config)],
                                         env=clean_env(PYTHONUNBUFFERED="1", COOPFLOW_LEASE_TTL="3"), cwd=self.config.parent,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, "the daemon did not start"
            time.sleep(0.1)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0


def call_until_applied(client: httpx.Client, path: str, body: dict, key: str, stop: threading.Event) -> dict:
    """POST under `key` again and again until the server says applied (200/201); refusals fail the test."""
    while not stop.is_set():
        try:
            r = client.post(path, json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError:  # the server is down or was killed mid-request
            time.sleep(0.2)
            continue
        if r.status_code in (200, 201):
            return r.json()
        if r.status_code == 202 or r.status_code >= 500:  # queued, not yet applied; or store busy
            time.sleep(0.2)
            continue
        raise AssertionError(f"{path} under {key}: {r.status_code} {r.text}")
    raise AssertionError("gave up")


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request, tmp_path):
    from conftest import temporary_store_url

    with temporary_store_url(request.param, tmp_path) as url:
        config = copy_shipped_policy(tmp_path / "policy")
        text = config.read_text(encoding="utf-8").replace("store: sqlite:///coopflow.db", f"store: {url}")
        port = free_port()
        config.write_text(text + f"\nhttp:\n  port: {port}\n", encoding="utf-8")
        assert admin(config, "init").returncode == 0
        tokens = {}
        for person in PEOPLE:
            assert admin(config, "user", "add", person, "--password-stdin", input=PASSWORD + "\n").returncode == 0
            tokens[person] = admin(config, "token", "issue", person).stdout.strip()
        yield config, port, tokens, url


def test_nothing_lost_nothing_doubled_while_the_daemon_is_killed(deployment):
    from engine.store.database import SqlStore, history, inbox, instances

    config, port, tokens, url = deployment
    server = Server(config, port)
    server.start()
    done, failures, stop = [], [], threading.Event()
    lock = threading.Lock()

    def client(i: int) -> None:
        person = PEOPLE[i % len(PEOPLE)]
        with httpx.Client(base_url=server.url + "/api/v1", timeout=60,
                          headers={"Authorization": f"Bearer {tokens[person]}"}) as http:
            try:
                for r in range(ROUNDS):
                    values = {"requester": "dic", "recipient": "police", "subject": f"client {i} round {r}"}
                    started = call_until_applied(http, "/instances", {"workflow": "information_exchange", "values": values},
                                                 f"c{i}-r{r}-start", stop)
                    call_until_applied(http, f"/instances/{started['instance']}/events",
                                       {"trigger": "send", "values": {"dispatch_no": f"{i}-{r}/STTTT"}}, f"c{i}-r{r}-send", stop)
                    with lock:
                        done.append((i, r, started["instance"]))
            except Exception as exc:  # noqa: BLE001  (reported by the main thread)
                failures.append(f"client {i}: {exc}")

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    total, deadline = CLIENTS * ROUNDS, time.monotonic() + GIVE_UP
    for k in range(1, KILLS + 1):
        while len(done) < total * k // (KILLS + 2) and not failures and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()
        server.start()
    for t in threads:
        t.join(timeout=max(1.0, deadline - time.monotonic()))
    stop.set()
    server.stop()
    assert not failures, failures[:5]
    assert len(done) == total and server.starts == KILLS + 1

    store = SqlStore(url)
    try:
        with store.reading() as conn:
            rows = conn.execute(select(instances.c.id, instances.c.state).where(instances.c.workflow == "information_exchange")).all()
            assert sorted(r.id for r in rows) == sorted(ident for _, _, ident in done)  # one instance per start key
            assert {r.state for r in rows} == {"sent"}
            keys = conn.execute(select(inbox.c.key, inbox.c.status).where(inbox.c.key.like("user:c%"))).all()
            assert len(keys) == 2 * total and {k.status for k in keys} == {"applied"}
            applied = dict(conn.execute(select(history.c.instance, func.count()).where(
                history.c.outcome == "applied").group_by(history.c.instance)).all())
            assert all(applied[ident] == 2 for _, _, ident in done)  # started once, sent once
    finally:
        store.dispose()
    verified = admin(config, "audit", "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("ok: "), verified.stderr
