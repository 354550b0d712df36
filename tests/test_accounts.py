"""Accounts, tokens and sign-in throttling (engine/auth) through the `coopflow user|token` commands.

Each store-touching test runs on SQLite and PostgreSQL (the `store_url` fixture); the CLI runs
in this process (conftest.coopflow_cli) except in the one subprocess test.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import MINIMAL_CONFIG, REPO_ROOT, write_minimal_policy
from sqlalchemy import func, select

from engine.auth import accounts, local_cli_principal
from engine.auth.people import principal_for
from engine.exceptions import AuthError
from engine.execution.runtime import open_runtime
from engine.policy.loader import load_policy
from engine.store.database import SqlStore, login_attempts, metadata, tokens, users

PEOPLE_CONFIG = MINIMAL_CONFIG.replace(
    "  a:\n    title: Party A\n    roles:\n      leader: {}\n      focal_point: {}\n",
    "  a:\n    title: Party A\n    roles:\n      leader: {people: [an_leader, hai_vai]}\n"
    "      focal_point: {people: [an_focal, hai_vai]}\n",
).replace(
    "  b:\n    title: Party B\n    roles:\n      leader: {}\n",
    "  b:\n    title: Party B\n    roles:\n      leader: {people: [binh_leader]}\n",
) + """administrators: [an_leader]
logging:
  console: null
  file: {path: logs/coopflow.log, level: DEBUG}
  json: {path: logs/coopflow.jsonl, level: DEBUG}
"""
assert "hai_vai" in PEOPLE_CONFIG and "binh_leader" in PEOPLE_CONFIG

PASSWORD = "mật khẩu đủ dài 2025"
OTHER_PASSWORD = "một câu khác hẳn 777"
TOKEN_RE = re.compile(r"^cft_([0-9a-f]{12})_[A-Za-z0-9_\-]{43}$")


@pytest.fixture
def policy(tmp_path: Path, store_url: str, monkeypatch) -> Path:
    """The minimal policy with people and an administrator, its store (SQLite or PostgreSQL) created."""
    config = write_minimal_policy(tmp_path / "policy")
    config.write_text(PEOPLE_CONFIG, encoding="utf-8")
    monkeypatch.setenv("COOPFLOW_STORE_URL", store_url)
    monkeypatch.setenv("COOPFLOW_CONFIG", str(config))
    return config


@pytest.fixture
def cli(policy, coopflow_cli):
    """coopflow_cli on that policy, its store created as `coopflow init` does (closed again: `init`
    itself leaves its PostgreSQL connections to the process exit)."""
    open_runtime(policy, create=True).store.dispose()
    return coopflow_cli


def add(cli, person: str, password: str = PASSWORD):
    return cli("user", "add", person, "--password-stdin", input=password + "\n")


def login(cli, person: str, password: str = PASSWORD, client: str = "10.0.0.1", *extra):
    return cli("user", "login", person, "--password-stdin", "--client", client, *extra, input=password + "\n")


def check_token(cli, token: str, *extra):
    return cli("token", "check", "--client", "10.0.0.9", *extra, input=token + "\n")


def issue(cli, person: str, *extra) -> str:
    code, out, err = cli("token", "issue", person, *extra)
    assert code == 0, err
    assert TOKEN_RE.match(out.strip()) and out.count("\n") == 1, out  # the token alone on stdout
    return out.strip()


def user_rows(cli) -> dict[str, dict]:
    code, out, err = cli("user", "list", "--json")
    assert code == 0, err
    return {r["person"]: r for r in json.loads(out)}


def token_rows(cli, *person) -> dict[str, dict]:
    code, out, err = cli("token", "list", *person, "--json")
    assert code == 0, err
    return {r["id"]: r for r in json.loads(out)}


def open_store(policy: Path) -> SqlStore:
    return SqlStore(os.environ["COOPFLOW_STORE_URL"])


# --------------------------------------------------------------------------- accounts


# What the administrator's commands refuse, and the service call each one makes (engine/service_accounts.py).
# an_leader has an account, an_focal a disabled one, binh_leader none; `nobody` is not in config.yaml.
BOGUS_TOKEN = "cft_0123456789ab_" + "x" * 43
REFUSALS = [  # (command, its standard input, the service call, the command's exit code)
    (("user", "add", "nobody"), None, lambda d: d.person_roles("nobody"), 1),
    (("user", "add", "binh_leader", "--password-stdin"), "ngắn quá", lambda d: d.add_user("binh_leader", "ngắn quá"), 1),
    (("user", "add", "an_leader", "--password-stdin"), PASSWORD, lambda d: d.add_user("an_leader", PASSWORD), 1),
    (("user", "passwd", "binh_leader", "--password-stdin"), PASSWORD, lambda d: d.set_password("binh_leader", PASSWORD), 1),
    (("user", "disable", "binh_leader"), None, lambda d: d.set_disabled("binh_leader", True), 1),
    (("user", "unlock", "binh_leader"), None, lambda d: d.unlock_user("binh_leader", "local:test"), 1),
    (("user", "login", "an_focal", "--password-stdin"), PASSWORD,
     lambda d: d.check_password("an_focal", PASSWORD, "10.0.0.1"), 1),
    (("token", "issue", "an_leader", "--expires", "soon"), None, lambda d: d.issue_token("an_leader", "soon"), 2),
    (("token", "issue", "an_leader", "--expires", "9999d"), None, lambda d: d.issue_token("an_leader", "9999d"), 2),
    (("token", "issue", "binh_leader"), None, lambda d: d.issue_token("binh_leader"), 1),
    (("token", "issue", "an_focal"), None, lambda d: d.issue_token("an_focal"), 1),
    (("token", "issue", "nobody"), None, lambda d: d.issue_token("nobody"), 1),
    (("token", "revoke", "xyz"), None, lambda d: d.revoke_token("xyz"), 1),
    (("token", "revoke", "0123456789ab"), None, lambda d: d.revoke_token("0123456789ab"), 1),
    (("token", "check"), BOGUS_TOKEN, lambda d: d.check_token(BOGUS_TOKEN, "10.0.0.9"), 1),
]


def test_the_service_refuses_what_the_commands_refuse(cli, policy):
    from engine.exceptions import UserError
    from engine.service import Deployment

    assert add(cli, "an_leader")[0] == add(cli, "an_focal")[0] == 0
    assert cli("user", "disable", "an_focal")[0] == 0
    with Deployment.open(policy, log_to_files=False) as d:
        for args, stdin, call, exit_code in REFUSALS:
            code, out, err = cli(*args, input=None if stdin is None else stdin + "\n")
            with pytest.raises(UserError) as refused:
                call(d)
            assert (code, out) == (exit_code, ""), (args, err)
            assert str(refused.value) in " ".join(err.split()), (args, err, refused.value)
        assert [r["person"] for r in d.users() if r["created"]] == ["an_focal", "an_leader"]  # nothing was added
        assert d.tokens() == []


def test_user_add_list_passwd_disable_enable(cli):
    code, out, err = add(cli, "an_leader")
    assert (code, out.strip(), err) == (0, "account created: an_leader (a.leader)", ""), err

    rows = user_rows(cli)
    assert rows["an_leader"]["status"] == "enabled" and rows["an_leader"]["admin"] is True
    assert rows["hai_vai"] == {**rows["hai_vai"], "status": "no account", "roles": ["a.leader", "a.focal_point"],
                               "admin": False}
    code, out, _ = cli("user", "list")
    assert code == 0 and "1 account(s), 4 people" in out and "no account" in out

    code, out, err = add(cli, "an_leadr")
    assert code == 1 and out == ""
    assert err.strip() == ("error: 'an_leadr' is not listed in the people of any role in config.yaml; "
                           "did you mean an_leader or binh_leader?")
    code, _, err = add(cli, "binh_leader", "ngắn quá")
    assert code == 1 and err.strip() == "error: password too short: at least 12 characters (got 8)"
    code, _, err = add(cli, "an_leader")
    assert code == 1 and "an_leader already has an account" in err

    code, out, err = cli("user", "passwd", "an_leader", "--password-stdin", input=OTHER_PASSWORD + "\n")
    assert (code, out.strip()) == (0, "password changed: an_leader"), err
    code, _, err = login(cli, "an_leader")
    assert code == 1 and err.strip() == "error: unknown person or wrong password"
    code, out, err = login(cli, "an_leader", OTHER_PASSWORD)
    assert code == 0 and out.splitlines()[0] == "ok: an_leader (password-session, from 10.0.0.1)", err
    assert "administrator" in out

    assert cli("user", "disable", "an_leader")[:2] == (0, "disabled: an_leader\n")
    assert cli("user", "disable", "an_leader")[:2] == (0, "already disabled: an_leader\n")
    assert user_rows(cli)["an_leader"]["status"] == "disabled"
    code, _, err = login(cli, "an_leader", OTHER_PASSWORD)
    assert code == 1 and err.strip() == "error: the account of an_leader is disabled"
    assert cli("user", "enable", "an_leader")[:2] == (0, "enabled: an_leader\n")
    assert login(cli, "an_leader", OTHER_PASSWORD)[0] == 0

    code, _, err = cli("user", "disable", "binh_leader")
    assert code == 1 and err.strip() == "error: binh_leader has no account; create it with: coopflow user add binh_leader"
    assert "Traceback" not in err


def test_user_add_prompts_twice(cli):
    code, out, err = cli("user", "add", "binh_leader", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert code == 0, err
    assert out.count("assword") == 2 and PASSWORD not in out  # two hidden prompts, nothing echoed
    assert "account created: binh_leader (b.leader)" in out
    assert login(cli, "binh_leader")[0] == 0

    code, out, _ = cli("user", "add", "an_focal", input=f"{PASSWORD}\n{OTHER_PASSWORD}\n")
    assert code != 0 and "do not match" in out
    assert user_rows(cli)["an_focal"]["status"] == "no account"


def test_roles_and_acting_role(cli, policy):
    add(cli, "hai_vai")
    code, out, err = login(cli, "hai_vai", PASSWORD, "10.0.0.1", "--role", "focal_point")
    assert code == 0, err
    assert out.splitlines()[1:] == ["roles: a.leader, a.focal_point", "actor: a.focal_point:hai_vai"]
    code, _, err = login(cli, "hai_vai", PASSWORD, "10.0.0.1", "--role", "b.leader")
    assert code == 1 and err.strip() == "error: hai_vai is not granted b.leader (granted: a.leader, a.focal_point)"
    code, out, _ = login(cli, "hai_vai", PASSWORD, "10.0.0.1", "--json")
    assert json.loads(out) == {"person": "hai_vai", "party": "a", "roles": ["a.leader", "a.focal_point"],
                               "acting_role": None, "method": "password-session", "client": "10.0.0.1",
                               "read_only": False, "is_admin": False}

    config = load_policy(policy).config
    both = principal_for(config, "hai_vai", "password-session", "10.0.0.1")
    assert both.act_as("leader") == "a.leader:hai_vai"
    assert both.act_as("a.focal_point") == "a.focal_point:hai_vai"
    with pytest.raises(AuthError, match="holds several roles"):
        both.act_as()
    with pytest.raises(AuthError, match="not granted b.leader"):
        both.act_as("b.leader")
    assert both.with_role("leader").act_as() == "a.leader:hai_vai"
    local = local_cli_principal(config, "an_leader")
    assert local.method.startswith("local-cli:") and local.is_admin and local.act_as() == "a.leader:an_leader"
    with pytest.raises(AuthError, match="not listed"):
        local_cli_principal(config, "stranger")


# --------------------------------------------------------------------------- tokens


def test_token_issue_list_check_revoke(cli, stepped_clock):
    add(cli, "an_leader")
    code, out, err = cli("token", "issue", "an_leader", "--name", "báo cáo tự động")
    token = out.strip()
    tid = TOKEN_RE.match(token).group(1)
    assert code == 0 and f"token {tid} issued for an_leader; expires in 90d. It is shown only this once." in err

    row = token_rows(cli)[tid]
    assert row == {**row, "person": "an_leader", "name": "báo cáo tự động", "read_only": False, "revoked": None,
                   "last_used": None, "state": "active"}
    assert row["expires"].startswith("2025-08-31")  # 90 days after 2025-06-02

    stepped_clock.advance(timedelta(hours=1))
    code, out, err = check_token(cli, token, "--json")
    assert code == 0, err
    assert json.loads(out) == {"person": "an_leader", "party": "a", "roles": ["a.leader"], "acting_role": None,
                               "method": f"token:{tid}", "client": "10.0.0.9", "read_only": False, "is_admin": True}
    assert token_rows(cli, "an_leader")[tid]["last_used"].startswith("2025-06-02 03:00")  # UTC
    assert token_rows(cli, "binh_leader") == {}
    code, out, _ = cli("token", "list")
    assert code == 0 and tid in out and "báo cáo tự động" in out and "active" in out

    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert check_token(cli, forged)[2].strip() == "error: invalid token"
    assert check_token(cli, "not a token")[2].strip() == "error: invalid token"

    assert cli("token", "revoke", tid)[:2] == (0, f"revoked: {tid}\n")
    assert cli("token", "revoke", f"cft_{tid}")[:2] == (0, f"already revoked: {tid}\n")
    code, _, err = check_token(cli, token)
    assert code == 1 and err.strip() == f"error: token {tid} was revoked"
    assert token_rows(cli)[tid]["state"] == "revoked"

    code, _, err = cli("token", "revoke", "0123456789ab")
    assert code == 1 and err.strip() == "error: no token 0123456789ab"
    code, _, err = cli("token", "revoke", "xyz")
    assert code == 1 and "is not a token id" in err
    code, _, err = cli("token", "issue", "an_leader", "--expires", "soon")
    assert code == 2 and "'soon' is not a lifetime" in err
    code, _, err = cli("token", "issue", "binh_leader")
    assert code == 1 and err.strip() == "error: binh_leader has no account; create it with: coopflow user add binh_leader"
    code, _, err = cli("token", "issue", "nobody")
    assert code == 1 and "not listed in the people of any role" in err


def test_token_expired_read_only_disabled(cli, stepped_clock, policy):
    add(cli, "an_leader")
    short = issue(cli, "an_leader", "--expires", "1h")
    reader = issue(cli, "an_leader", "--read-only", "--expires", "never")
    assert check_token(cli, short)[0] == 0

    stepped_clock.advance(timedelta(minutes=61))
    code, _, err = check_token(cli, short)
    sid = TOKEN_RE.match(short).group(1)
    assert code == 1 and err.strip() == f"error: token {sid} expired"
    rows = token_rows(cli)
    assert rows[sid]["state"] == "expired"
    rid = TOKEN_RE.match(reader).group(1)
    assert rows[rid]["read_only"] is True and rows[rid]["expires"] is None

    code, out, err = check_token(cli, reader)
    assert code == 0 and "read-only" in out and "actor:" not in out, err
    config = load_policy(policy).config
    from engine.auth import authenticate_token

    store = open_store(policy)
    try:
        principal = authenticate_token(store, reader, "10.0.0.9", config=config)
        assert principal.read_only and principal.method == f"token:{rid}"
        with pytest.raises(AuthError, match="read-only"):
            principal.act_as("leader")
    finally:
        store.dispose()

    cli("user", "disable", "an_leader")
    code, _, err = check_token(cli, reader)
    assert code == 1 and err.strip() == "error: the account of an_leader is disabled"
    code, _, err = cli("token", "issue", "an_leader")
    assert code == 1 and err.strip() == "error: the account of an_leader is disabled"
    cli("user", "enable", "an_leader")
    assert check_token(cli, reader)[0] == 0


# --------------------------------------------------------------------------- throttling


def test_lockout_per_person_and_per_client(cli, stepped_clock, policy):
    add(cli, "an_leader")
    add(cli, "binh_leader")
    for _ in range(5):
        assert login(cli, "an_leader", "sai mật khẩu rồi!", "10.0.0.1")[0] == 1
    code, _, err = login(cli, "an_leader", PASSWORD, "10.0.0.2")  # right password, other address: the person is locked
    assert code == 1 and err.strip() == "error: too many failed sign-ins: locked until 2025-06-02 09:15 +07"
    rows = user_rows(cli)
    assert rows["an_leader"]["status"] == "locked" and rows["binh_leader"]["status"] == "enabled"
    assert login(cli, "binh_leader", PASSWORD, "10.0.0.2")[0] == 0  # others sign in from elsewhere

    stepped_clock.advance(timedelta(minutes=14))
    assert login(cli, "an_leader", PASSWORD, "10.0.0.2")[0] == 1  # locked attempts do not count, nor lift it
    stepped_clock.advance(timedelta(minutes=1, seconds=1))
    assert login(cli, "an_leader", PASSWORD, "10.0.0.2")[0] == 0
    assert user_rows(cli)["an_leader"]["status"] == "enabled"

    # one address guessing several people's passwords (and tokens) is locked as an address
    for person in ("an_focal", "binh_leader", "ai_do", "an_leader"):
        assert login(cli, person, "đoán bừa thôi nhé", "203.0.113.7")[0] == 1
    assert cli("token", "check", "--client", "203.0.113.7", input="cft_0123456789ab_" + "y" * 43 + "\n")[0] == 1
    code, _, err = login(cli, "binh_leader", PASSWORD, "203.0.113.7")
    assert code == 1 and "locked until" in err
    assert login(cli, "binh_leader", PASSWORD, "10.0.0.3")[0] == 0

    # the administrator lifts a person's lock
    for _ in range(5):
        login(cli, "binh_leader", "sai mật khẩu rồi!", "10.0.0.4")
    assert login(cli, "binh_leader", PASSWORD, "10.0.0.5")[0] == 1
    assert cli("user", "unlock", "binh_leader")[:2] == (0, "unlocked: binh_leader\n")
    assert login(cli, "binh_leader", PASSWORD, "10.0.0.5")[0] == 0

    store = open_store(policy)
    try:
        with store.reading() as conn:
            counts = dict(conn.execute(select(login_attempts.c.outcome, func.count())
                                       .group_by(login_attempts.c.outcome)).all())
            ai_do = conn.execute(select(login_attempts.c.client).where(login_attempts.c.person == "ai_do")).scalars().all()
    finally:
        store.dispose()
    assert counts == {"ok": 4, "failed": 5 + 4 + 1 + 5, "locked": 4, "unlocked": 1}
    assert ai_do == ["203.0.113.7"]  # unknown people's attempts are recorded too


# --------------------------------------------------------------------------- secrets


def test_secrets_absent_from_logs_and_store(cli, policy, log_records):
    wrong = "mật khẩu sai hoàn toàn 42"
    add(cli, "an_leader")
    cli("user", "passwd", "an_leader", "--password-stdin", input=OTHER_PASSWORD + "\n")
    token = issue(cli, "an_leader")
    secret = token[len("cft_0123456789ab_"):]
    login(cli, "an_leader", OTHER_PASSWORD)
    login(cli, "an_leader", wrong)
    check_token(cli, token)
    check_token(cli, token[:-1] + "Z")
    secrets_ = [PASSWORD, OTHER_PASSWORD, wrong, token, secret]

    logged = json.dumps(log_records, ensure_ascii=False, default=str)
    assert "account created" in logged and "sign-in refused" in logged and "token issued" in logged
    files = [(policy.parent / "logs" / name).read_text(encoding="utf-8") for name in ("coopflow.log", "coopflow.jsonl")]
    assert all("sign-in refused" in text for text in files)

    store = open_store(policy)
    try:
        with store.reading() as conn:
            dump = json.dumps([[list(r) for r in conn.execute(select(t))] for t in metadata.sorted_tables],
                              ensure_ascii=False, default=str)
            stored_hash = conn.execute(select(users.c.password_hash)).scalar_one()
            token_hash = conn.execute(select(tokens.c.secret_hash)).scalar_one()
    finally:
        store.dispose()
    for text in [logged, dump, *files]:
        for s in secrets_:
            assert s not in text
    assert stored_hash.startswith("$argon2id$")
    assert token_hash == hashlib.sha256(secret.encode()).hexdigest()


def test_weak_hash_is_rehashed_on_sign_in(cli, policy):
    from argon2 import PasswordHasher

    add(cli, "an_leader")
    weak = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    store = open_store(policy)
    try:
        with store.transaction() as conn:
            conn.execute(users.update().values(password_hash=weak))
        assert login(cli, "an_leader")[0] == 0
        with store.reading() as conn:
            rehashed = conn.execute(select(users.c.password_hash)).scalar_one()
    finally:
        store.dispose()
    assert rehashed != weak and not accounts.passwords.needs_rehash(rehashed)
    assert login(cli, "an_leader")[0] == 0


# --------------------------------------------------------------------------- config


def test_administrators_must_be_people(tmp_path, coopflow_cli):
    config = write_minimal_policy(tmp_path)
    config.write_text(PEOPLE_CONFIG.replace("administrators: [an_leader]", "administrators: [an_leader, ai_do]"),
                      encoding="utf-8")
    code, _, err = coopflow_cli("check", "-c", config)
    assert code == 1 and "administrators: ai_do not listed in the people of any role" in err
    shipped = load_policy(REPO_ROOT / "config.yaml").config
    assert shipped.administrators and all(principal_for(shipped, a, "t", "c").is_admin for a in shipped.administrators)


def test_commands_in_a_real_process(tmp_path):
    """The console script as an operator runs it: secrets on stdin, the token on stdout, clean errors."""
    config = write_minimal_policy(tmp_path)
    config.write_text(PEOPLE_CONFIG, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COOPFLOW_")}
    env["PYTHONIOENCODING"] = "utf-8"

    def run(*args, stdin: str = ""):
        done = subprocess.run([sys.executable, "-m", "engine", *args, "-c", str(config)], input=stdin,
                              capture_output=True, text=True, encoding="utf-8", env=env, timeout=120)
        return done.returncode, done.stdout, done.stderr

    assert run("init")[0] == 0
    assert run("user", "add", "an_leader", "--password-stdin", stdin=PASSWORD + "\n")[0] == 0
    code, out, err = run("token", "issue", "an_leader", "--read-only")
    assert code == 0 and TOKEN_RE.match(out.strip()) and "shown only this once" in err
    code, out, err = run("token", "check", stdin=out)
    assert code == 0 and out.startswith("ok: an_leader (token:") and "read-only" in out, err
    code, out, err = run("user", "add", "an_leder", "--password-stdin", stdin=PASSWORD + "\n")
    assert (code, out) == (1, "") and err.strip().endswith("did you mean an_leader or binh_leader?") and "Traceback" not in err
    code, _, err = run("user", "add", "binh_leader", "--password-stdin")
    assert code == 1 and err.strip() == "error: no password on standard input"
