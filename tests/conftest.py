"""Shared fixtures: a tiny valid policy written to a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The CLI speaks the locale's language, else config.yaml's `cli.language` (the shipped policy: Vietnamese;
# engine/cli/language.py). The suite reads its English, and every command it runs (CliRunner or a
# subprocess, which inherits this) is in English unless a test chooses (tests/test_cli_i18n.py).
os.environ["LC_MESSAGES"] = "en_US.UTF-8"
if os.environ.get("LC_ALL"):  # LC_ALL would win over LC_MESSAGES: keep its character set, drop the rest
    os.environ["LC_CTYPE"] = os.environ.pop("LC_ALL")

MINIMAL_CONFIG = """\
agreement:
  id: demo
  title: Demo agreement
parties:
  a:
    title: Party A
    roles:
      leader: {}
      focal_point: {}
  b:
    title: Party B
    roles:
      leader: {}
      focal_point: {}
timezone: Asia/Ho_Chi_Minh
calendar:
  holidays: VN
  overrides:
    2025:
      off: [2025-05-02]
"""

MINIMAL_WORKFLOW = """\
id: request
title: Request
clause: "1"
started_by: [focal_point, system]
fields:
  recipient: {type: party, required: true}
  subject: {type: str}
  kind: {type: enum, values: [simple, urgent], default: simple}
  reply_by: {type: datetime}
initial: open
states:
  open:
    title: Open
    deadline: {working_days: 5, fire: expire}
  answered:
    title: Answered
    final: true
  expired:
    title: Expired
    final: true
transitions:
  - trigger: answer
    from: open
    to: answered
    by: [$recipient.focal_point]
    when: fields.kind == 'simple'
    then:
      - emit: request.answered
        data: {subject: "=fields.subject"}
  - trigger: expire
    from: open
    to: expired
    by: [system]
"""

MINIMAL_RULES = """\
schedules:
  - id: half_yearly
    start: request
    every:
      months: [6, 12]
      day: {nth_working_day: 1}
      at: "08:00"
    host: {rotate: [a, b], field: recipient}
    with: {subject: "='Review ' + occurrence.period"}
events:
  - id: close_on_answer
    on: request.answered
    fire:
      workflow: request
      trigger: expire
      instance: "=event.instance"
"""

MINIMAL_FILES: dict[str, str] = {
    "config.yaml": MINIMAL_CONFIG,
    "workflows/request.yaml": MINIMAL_WORKFLOW,
    "rules/rules.yaml": MINIMAL_RULES,
}


def write_minimal_policy(root: Path) -> Path:
    """Write the minimal valid policy under `root` and return the path of its config.yaml."""
    for rel, text in MINIMAL_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "config.yaml"


def shipped_policy_with_store(root: Path, db: Path) -> Path:
    """The shipped policy copied under `root`, its store an initialised SQLite file `db`; its config.yaml."""
    from engine.execution.runtime import open_runtime

    config = copy_shipped_policy(root)
    config.write_text(config.read_text(encoding="utf-8").replace("store: sqlite:///coopflow.db", f"store: sqlite:///{db}"),
                      encoding="utf-8")
    open_runtime(config, create=True).store.dispose()
    return config


@pytest.fixture
def minimal_policy(tmp_path: Path) -> Path:
    """A valid tiny policy (parties a and b, one workflow, one schedule, one event rule); its config.yaml."""
    return write_minimal_policy(tmp_path)


# --------------------------------------------------------------------------- stores and the shipped policy
# Added for the store/executor/approvals/audit suites.

import secrets  # noqa: E402
import shutil  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_URL_ENV = "COOPFLOW_TEST_PG_URL"
PG_DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def copy_shipped_policy(root: Path) -> Path:
    """Copy the shipped policy (config.yaml, workflows/, rules/) under `root`; its config.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "config.yaml", root / "config.yaml")
    for folder in ("workflows", "rules", "templates"):
        shutil.copytree(REPO_ROOT / folder, root / folder)
    return root / "config.yaml"


@pytest.fixture
def shipped_policy(tmp_path: Path) -> Path:
    """A private copy of the shipped Lào Cai policy under tmp_path; its config.yaml."""
    return copy_shipped_policy(tmp_path / "policy")


def _pg_engine():
    """An SQLAlchemy engine on the test PostgreSQL server, or a pytest fail/skip when unreachable."""
    from sqlalchemy import create_engine, text

    url = os.environ.get(PG_URL_ENV, PG_DEFAULT_URL)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # unreachable server, bad credentials, missing driver
        engine.dispose()
        message = f"PostgreSQL at {url} is unreachable: {exc}"
        if os.environ.get("COOPFLOW_REQUIRE_PG") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return url, engine


STORE_KINDS = ["sqlite", "postgres"]


@contextmanager
def temporary_store_url(kind: str, folder: Path) -> Iterator[str]:
    """A URL for an empty store: a SQLite file in `folder`, or a fresh PostgreSQL schema dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'store.db'}"
        return
    from sqlalchemy import text

    base, engine = _pg_engine()
    schema = f"t_{secrets.token_hex(6)}"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        engine.dispose()


@pytest.fixture(params=STORE_KINDS, ids=STORE_KINDS)
def store_url(request, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty store: a tmp SQLite file, or a PostgreSQL schema of this test's own."""
    with temporary_store_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def store(store_url: str):
    """An open, migrated SqlStore on SQLite or PostgreSQL (the same tests run on both)."""
    from engine.store.database import SqlStore

    opened = SqlStore(store_url)
    try:
        yield opened
    finally:
        opened.dispose()


@pytest.fixture
def stepped_clock():
    """Replace engine.clock with a SteppedClock at Monday 2025-06-02 09:00 ICT; restored afterwards."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from engine import clock

    saved = clock._source
    stepped = clock.SteppedClock(datetime(2025, 6, 2, 9, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")))
    clock.set_source(stepped.now)
    try:
        yield stepped
    finally:
        clock.set_source(saved)


@pytest.fixture
def log_records():
    """Every loguru record (message and bound extra) logged while the test runs."""
    from loguru import logger

    records: list[dict] = []
    handler = logger.add(lambda m: records.append({"message": m.record["message"], "level": m.record["level"].name,
                                                   **m.record["extra"]}), level="DEBUG")
    try:
        yield records
    finally:
        logger.remove(handler)


# --------------------------------------------------------------------------- the CLI in this process
# Added for the operator-view suites (simulate, upcoming, status overview, report, diagram).


@pytest.fixture
def coopflow_cli(monkeypatch):
    """Run `coopflow ARGS...` in this process exactly as the console script does (engine.cli.main.main).

    Returns (exit code, stdout, stderr); `input=` is its standard input. File log sinks a command installs are removed afterwards.
    """
    import sys

    from click.testing import CliRunner

    from engine import logs
    from engine.cli import main as cli

    def run(*args, input: str | None = None) -> tuple[int, str, str]:
        runner = CliRunner()
        with runner.isolation(input=input) as (out, err, _):
            monkeypatch.setattr(sys, "argv", ["coopflow", *map(str, args)])
            try:
                cli.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            finally:
                logs.remove_sinks()
            return code, out.getvalue().decode("utf-8"), err.getvalue().decode("utf-8")

    return run


@pytest.fixture
def cli_ok(coopflow_cli, config):
    """`ok(ARGS...)`: a coopflow command on the test module's `config` that must succeed; returns its
    first output line (the id `start` prints)."""

    def ok(*args) -> str:
        code, out, err = coopflow_cli(*args, "-c", config)
        assert code == 0, out + err
        return out.splitlines()[0] if out else ""

    return ok


# --------------------------------------------------------------------------- a real `coopflow run`


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without COOPFLOW_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COOPFLOW_")}
    env.update(extra)
    return env


@contextmanager
def running_daemon(config: Path, port: int, ready_timeout: float = 60) -> Iterator[str]:
    """`coopflow run -c config` in a subprocess serving HTTP on `port` (config's `http:`); yields its
    base URL once /readyz answers 200 (the store reachable, the lease held); stopped with SIGTERM."""
    import signal
    import subprocess
    import sys
    import time

    import httpx

    log = config.parent / "daemon.stderr"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "engine", "run", "-c", str(config)],
                                env=clean_env(PYTHONUNBUFFERED="1", COOPFLOW_LEASE_TTL="3"), cwd=config.parent,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    try:
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("daemon did not become ready:\n" + log.read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0, log.read_text(errors="replace")[-3000:]

_LOADED_PROBE = """\
import json, sys
from engine.cli.main import main
watched = json.loads(sys.argv[1])
sys.argv = ["coopflow", *sys.argv[2:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "loaded": [m for m in watched if m in sys.modules]}))
"""


def modules_loaded_by(args, watched, **env: str) -> tuple[int, list[str], str]:
    """`coopflow ARGS` in a fresh interpreter: its exit code, which of the `watched` modules it
    imported, and its output (for a failing assertion's message)."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _LOADED_PROBE, json.dumps(list(watched)), *map(str, args)],
                          capture_output=True, text=True, env=clean_env(**env), timeout=120)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["code"], result["loaded"], proc.stdout + proc.stderr


@contextmanager
def served_shipped_policy(root: Path, people, password: str, ready_timeout: float = 90) -> Iterator[tuple[str, Path]]:
    """The shipped policy under `root` on its own SQLite store, `coopflow init`, each of `people` added
    with `password`, served by `running_daemon` on a free port; yields (base URL, config)."""
    import subprocess
    import sys

    config = copy_shipped_policy(root)
    port = free_port()
    text = config.read_text(encoding="utf-8").replace("store: sqlite:///coopflow.db", f"store: sqlite:///{root / 'served.db'}")
    config.write_text(text + f"\nhttp:\n  port: {port}\n", encoding="utf-8")

    def admin(*args: str, input: str | None = None) -> None:
        done = subprocess.run([sys.executable, "-m", "engine", *args, "-c", str(config)], input=input, text=True,
                              capture_output=True, env=clean_env(), cwd=root, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr

    admin("init")
    for person in people:
        admin("user", "add", person, "--password-stdin", input=password + "\n")
    with running_daemon(config, port, ready_timeout=ready_timeout) as url:
        yield url, config


@pytest.fixture(autouse=True, scope="session")
def _check_cache_in_tmp(tmp_path_factory):
    """`coopflow check` caches validated files (engine.policy.cache): keep the tests' cache out of ~/.cache."""
    import os

    os.environ.setdefault("COOPFLOW_CHECK_CACHE", str(tmp_path_factory.mktemp("check-cache")))
    yield
