"""Private files and store faults (issue #8, part 5), driven as an operator would: the CLI and the
daemon as real processes on real SQLite files and a real PostgreSQL server.

- files holding personal data (store, -wal, -shm, logs) are 0600 whatever the umask (0640 for logs
  with `group_readable: true`); looser existing files are tightened;
- only `coopflow init` and `coopflow run` create a store; a missing file or folder, or a 0-byte
  file, is refused with `store unavailable: ...` (exit 1) and nothing is created;
- a store file deleted under a running daemon stops it (exit 1), no new empty store;
- a hot reload that changes `store:` keeps the store and says a restart is needed;
- a read-only or full disk is `store unavailable` (exit 1), not an internal error;
- PostgreSQL: a writer frozen behind a half-open connection cannot hold the history lock past the bounds;
- the systemd unit in docs/deploy.md is docs/coopflow.service.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, copy_shipped_policy
from sqlalchemy import text
from test_daemon import START_TIMEOUT, base_env, spawn, wait_until  # noqa: F401  (spawn is a fixture)

from engine import logs
from engine.policy.loader import load_policy
from engine.store.database import SqlStore, StoreError

ADVISORY = ("advisory", "--as", "police.focal_point", "--set", "topic=Dự thảo quy chế",
            "--set", "doc_type=state_management")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cli(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`python -m engine ARGS -c CONFIG` under umask 022 (what a shell usually has)."""
    return subprocess.run([sys.executable, "-m", "engine", *args, "-c", str(config)], env=env, cwd=config.parent,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          preexec_fn=lambda: os.umask(0o022))


def assert_refused(done: subprocess.CompletedProcess, pattern: str) -> None:
    assert done.returncode == 1, done.stderr
    assert re.search(pattern, done.stderr), done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    """A copy of the shipped policy whose store and logs live beside it (relative paths)."""
    return copy_shipped_policy(tmp_path / "policy")


def env_for(config: Path, **extra: str) -> dict[str, str]:
    return base_env(f"sqlite:///{config.parent / 'coopflow.db'}", **extra)


# --------------------------------------------------------------------------- file modes


def test_store_wal_shm_and_logs_are_private_under_umask_022(policy: Path) -> None:
    """init and an applied event under umask 022: store, WAL, SHM and both log files are 0600."""
    env = env_for(policy)
    assert cli(policy, env, "init").returncode == 0
    done = cli(policy, env, "start", *ADVISORY)
    assert done.returncode == 0 and "applied" in done.stdout, done.stderr
    db = policy.parent / "coopflow.db"
    old = os.umask(0o022)
    try:
        store = SqlStore(f"sqlite:///{db}", create=False)
        with store.transaction() as conn:  # an open connection keeps -wal and -shm in place
            conn.execute(text("SELECT 1"))
            wal, shm = db.with_name("coopflow.db-wal"), db.with_name("coopflow.db-shm")
            assert wal.exists() and shm.exists()
            assert (mode(db), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
        store.dispose()
    finally:
        os.umask(old)
    for name in ("coopflow.log", "coopflow.jsonl"):
        log = policy.parent / "logs" / name
        assert log.stat().st_size > 0 and mode(log) == 0o600, name


def test_group_readable_logs_are_0640_and_loose_files_are_tightened(policy: Path, log_records) -> None:
    """`group_readable: true` makes a log 0640; a 0644 store or log left by an older coopflow is tightened."""
    text_ = policy.read_text(encoding="utf-8").replace("    path: logs/coopflow.jsonl\n",
                                                      "    path: logs/coopflow.jsonl\n    group_readable: true\n")
    policy.write_text(text_, encoding="utf-8")
    loaded = load_policy(policy)
    (policy.parent / "logs").mkdir()
    old_log = policy.parent / "logs" / "coopflow.log"
    old_log.write_text("older line\n", encoding="utf-8")
    old_log.chmod(0o644)
    old = os.umask(0o022)
    try:
        logs.configure(loaded.config.logging, loaded.root, console=False)
        from loguru import logger

        logger.info("một dòng")
        db = policy.parent / "old.db"
        SqlStore(f"sqlite:///{db}").dispose()
        db.chmod(0o644)
        SqlStore(f"sqlite:///{db}", create=False).dispose()
    finally:
        logs.remove_sinks()
        os.umask(old)
    assert mode(policy.parent / "logs" / "coopflow.jsonl") == 0o640
    assert mode(old_log) == 0o600 and mode(db) == 0o600
    assert any("was mode 0644; tightened to 0600" in r["message"] for r in log_records)


# --------------------------------------------------------------------------- creating a store is explicit


def test_cli_refuses_to_create_a_store_init_creates_it(policy: Path) -> None:
    """A typo'd or not yet created store: `status`/`start` refuse (exit 1), nothing is created; `init` creates it."""
    env = env_for(policy)
    db = policy.parent / "coopflow.db"
    for args in (("status",), ("start", *ADVISORY), ("audit", "verify")):
        assert_refused(cli(policy, env, *args), r"store unavailable: .*coopflow\.db.*does not exist.*coopflow init")
    assert not db.exists()
    done = cli(policy, env, "init")
    assert done.returncode == 0 and "ok: store" in done.stdout, done.stderr
    assert db.exists() and mode(db) == 0o600
    assert cli(policy, env, "status").returncode == 0


def test_missing_folder_and_empty_file_are_refused(policy: Path) -> None:
    """A missing store folder or a 0-byte store file: every command, `init` and `run` included, refuses."""
    missing = base_env(f"sqlite:///{policy.parent / 'typo' / 'coopflow.db'}")
    for args in (("status",), ("init",)):
        assert_refused(cli(policy, missing, *args), r"store unavailable: .*folder .*typo does not exist")
    assert not (policy.parent / "typo").exists()
    empty = policy.parent / "coopflow.db"
    empty.touch()
    for args in (("status",), ("init",), ("run",)):
        assert_refused(cli(policy, env_for(policy), *args), r"empty \(0 bytes\), not a coopflow store")
    assert empty.stat().st_size == 0


def test_postgres_database_without_store_is_not_initialised_by_the_cli(policy: Path) -> None:
    """A PostgreSQL URL naming an empty schema (a typo'd search_path, a new database): the CLI refuses."""
    from conftest import temporary_store_url

    with temporary_store_url("postgres", policy.parent) as url:
        assert_refused(cli(policy, base_env(url), "status"), r"holds no coopflow store yet.*coopflow init")
        assert cli(policy, base_env(url), "init").returncode == 0


# --------------------------------------------------------------------------- the daemon and its store


def test_store_deleted_while_daemon_runs_stops_it(policy: Path, spawn) -> None:  # noqa: F811
    """Deleting the SQLite file under a running daemon: it stops with exit 1 and a clear line, and does not recreate it."""
    daemon = spawn(policy, env_for(policy))
    daemon.wait_log(r"leader lease taken")
    db = policy.parent / "coopflow.db"
    for file in (db, db.with_name("coopflow.db-wal"), db.with_name("coopflow.db-shm")):
        file.unlink(missing_ok=True)
    assert daemon.proc.wait(timeout=15) == 1, daemon.tail()
    assert re.search(r"coopflow\.db is unavailable: the file was deleted while coopflow ran", daemon.log())
    assert not db.exists()
    assert "Traceback" not in daemon.log()


def test_reload_keeps_the_store_when_config_names_another(policy: Path, spawn) -> None:  # noqa: F811
    """Editing `store:` under a running daemon: the policy reloads, the store stays, the log says to restart."""
    env = {k: v for k, v in env_for(policy).items() if k != "COOPFLOW_STORE_URL"}
    daemon = spawn(policy, env)
    daemon.wait_log(r"leader lease taken")
    edited = policy.read_text(encoding="utf-8").replace("store: sqlite:///coopflow.db", "store: sqlite:///coopflwo.db")
    policy.write_text(edited.replace("signed: 2023-04-03", "signed: 2023-04-04"), encoding="utf-8")
    daemon.wait_log(r"store changed in the config .*coopflwo\.db\): still using .*/coopflow\.db; restart the daemon")
    daemon.wait_log(r"policy reloaded")
    done = cli(policy, env, "start", *ADVISORY)  # the CLI reads the typo too: refused, nothing created
    assert_refused(done, r"coopflwo\.db is unavailable: the file does not exist")
    assert not (policy.parent / "coopflwo.db").exists()
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0


# --------------------------------------------------------------------------- read-only and full disks


@pytest.fixture
def small_mount(tmp_path: Path):
    """A 1 MB tmpfs of this test's own (root only): the store's disk, made full or read-only at will."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a tmpfs")
    point = tmp_path / "disk"
    point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_read_only_store_is_store_unavailable_exit_1(policy: Path, small_mount: Path) -> None:
    """The store's file system remounted read-only: `coopflow start` says `store unavailable` and exits 1."""
    env = base_env(f"sqlite:///{small_mount / 'coopflow.db'}")
    assert cli(policy, env, "init").returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    assert_refused(cli(policy, env, "start", *ADVISORY), r"store unavailable: .*read-only")


def test_full_disk_is_store_unavailable_exit_1(policy: Path, small_mount: Path) -> None:
    """The store's disk full: applying an event says `store unavailable: ... full` and exits 1, not exit 3."""
    env = base_env(f"sqlite:///{small_mount / 'coopflow.db'}")
    assert cli(policy, env, "init").returncode == 0
    filler = small_mount / "filler"
    try:  # unbuffered: a buffered file's close() would raise ENOSPC again for its unwritten tail
        with open(filler, "wb", buffering=0) as out:
            while True:
                out.write(b"\0" * 65536)
    except OSError:
        pass
    done = cli(policy, env, "start", *ADVISORY)
    assert_refused(done, r"store unavailable: .*full")


def test_sqlite_store_error_is_a_store_error(tmp_path: Path) -> None:
    """In-process: a write on a store whose file turned read-only raises StoreError, not a driver error."""
    store = SqlStore(f"sqlite:///{tmp_path / 's.db'}")
    store.dispose()
    if os.geteuid() == 0:
        pytest.skip("root writes read-only files")
    (tmp_path / "s.db").chmod(0o400)
    with pytest.raises(StoreError, match="unavailable"):
        SqlStore(f"sqlite:///{tmp_path / 's.db'}", create=False)


# --------------------------------------------------------------------------- PostgreSQL: a half-open connection


class FreezableProxy:
    """127.0.0.1:<random> -> PostgreSQL; `freeze()` stops forwarding without closing (a network partition)."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.frozen = target, threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                return
            while self.frozen.is_set():  # hold the bytes: the peer sees silence, not a close
                time.sleep(0.05)
            try:
                dst.sendall(data)
            except OSError:
                return

    def freeze(self) -> None:
        self.frozen.set()

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def test_frozen_postgres_writer_cannot_hold_the_history_lock(policy: Path, monkeypatch) -> None:
    """Writer A (through a proxy that freezes) holds the history lock in an open transaction; writer B
    (direct) must get the lock within the bounds: the server ends A's idle transaction."""
    from urllib.parse import urlsplit, urlunsplit

    from conftest import temporary_store_url

    from engine.store import history

    monkeypatch.setenv("COOPFLOW_PG_IDLE_TIMEOUT", "2")
    monkeypatch.setenv("COOPFLOW_PG_LOCK_TIMEOUT", "10")
    monkeypatch.setenv("COOPFLOW_PG_TCP_TIMEOUT", "4")
    with temporary_store_url("postgres", policy.parent) as url:
        parts = urlsplit(url)
        proxy = FreezableProxy((parts.hostname, parts.port or 5432))
        via_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
        direct, frozen = SqlStore(url), SqlStore(via_proxy)
        holding, outcome = threading.Event(), {}

        def writer_a():
            try:
                with frozen.transaction() as conn:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": history.ADVISORY_LOCK_ID})
                    proxy.freeze()
                    holding.set()
                    conn.execute(text("SELECT 1"))  # never answered: the partition
            except Exception as exc:  # noqa: BLE001 - whatever A sees, it must not block B
                outcome["a"] = exc
            holding.set()

        thread = threading.Thread(target=writer_a, daemon=True)
        thread.start()
        assert holding.wait(10)
        began = time.monotonic()
        try:
            with direct.transaction() as conn:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": history.ADVISORY_LOCK_ID})
                settings = [conn.execute(text(f"SHOW {name}")).scalar() for name in
                            ("idle_in_transaction_session_timeout", "lock_timeout", "statement_timeout")]
            waited = time.monotonic() - began
        finally:
            proxy.close()
            thread.join(15)
            frozen.dispose()
            direct.dispose()
        assert waited < 8, f"writer B waited {waited:.1f} s behind the frozen writer"
        assert settings == ["2s", "10s", "30s"]
        assert not thread.is_alive()


def test_postgres_defaults_bound_every_wait() -> None:
    """Without tunables: connect 10 s, statements 30 s, locks 30 s, idle transactions 15 s, TCP 20 s."""
    from engine.store.database import pg_connect_args

    args = pg_connect_args()
    assert (args["connect_timeout"], args["keepalives"], args["tcp_user_timeout"]) == (10, 1, 20000)
    assert "statement_timeout = 30000" in args["_session"] and "idle_in_transaction_session_timeout = 15000" in args["_session"]


# --------------------------------------------------------------------------- the systemd unit


def test_systemd_unit_in_docs_is_the_committed_file() -> None:
    """docs/deploy.md shows docs/coopflow.service verbatim, with UMask=0027 and the sandbox."""
    unit = (REPO_ROOT / "docs" / "coopflow.service").read_text(encoding="utf-8")
    deploy = (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert f"```ini\n{unit}```" in deploy
    for line in ("UMask=0027", "ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=",
                 "SystemCallFilter=@system-service", "ReadWritePaths=/var/lib/coopflow /var/log/coopflow"):
        assert line in unit.splitlines(), line


def test_systemd_unit_exposure_is_at_most_3() -> None:
    """`systemd-analyze security --offline=yes` rates the unit 3.0 or lower (the figure in docs/deploy.md)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(REPO_ROOT / "docs" / "coopflow.service")],
                          capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for coopflow\.service: (\d+\.\d+)", done.stdout + done.stderr)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= 3.0
    assert f"rates it **{found.group(1)} " in (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
