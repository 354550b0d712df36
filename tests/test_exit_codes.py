"""Every user mistake exits 1 (refused or invalid) or 2 (usage) with one clear message, never 3 and never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import copy_shipped_policy

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("COOPFLOW_", "LOGURU_"))}


@pytest.fixture
def config(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.delenv("COOPFLOW_STORE_URL", raising=False)
    config = copy_shipped_policy(tmp_path / "policy")
    config.write_text(config.read_text(encoding="utf-8").replace(
        "store: sqlite:///coopflow.db", f"store: sqlite:///{tmp_path / 'store.db'}"), encoding="utf-8")
    return config


def clear(code: int, out: str, err: str, expected: int, *needles: str) -> None:
    assert code == expected, out + err
    assert "Traceback" not in out + err and "internal error" not in out + err
    for needle in needles:
        assert needle in err, err


USAGE = {
    "upcoming-days-huge": (("upcoming", "--days", "99999999999"), "'--days': 99999999999 is not in the range 0<=x<=3660"),
    "report-year-0": (("report", "--period", "0000H1"), "--period: '0000H1': the year must be between 1970 and 9998"),
    "simulate-from-year-1": (("simulate", "--from", "0001-01-01", "--to", "2027-01-31"),
                             "--from: 0001-01-01: the year must be between 1970 and 9998"),
    "simulate-to-year-9999": (("simulate", "--from", "2027-01-01", "--to", "9999-12-31"),
                              "--to: 9999-12-31: the year must be between 1970 and 9998"),
    "simulate-too-long": (("simulate", "--from", "2027-01-01", "--to", "2200-01-01"), "simulate at most 100 years"),
    "simulate-not-a-date": (("simulate", "--from", "soon", "--to", "2027-01-01"), "'soon' is not a date"),
}


@pytest.mark.parametrize("name", sorted(USAGE))
def test_option_values_out_of_range_are_usage_errors(coopflow_cli, config, name):
    args, message = USAGE[name]
    clear(*coopflow_cli(*args, "-c", config), 2, message)


EVENTS = {
    "impossible-date": ("- {at: 2027-02-30, as: dic.leader, start: advisory}\n",
                        ":1:8: '2027-02-30' is not a valid date or date-time"),
    "impossible-quoted-date": ('- {at: "2027-02-30", as: dic.leader, start: advisory}\n',
                               ":1:8: event 1 at: '2027-02-30' is not a date"),
    "unquoted-date-in-set": ("- at: 2027-03-02\n  as: dic.focal_point\n  start: information_exchange\n"
                             "  set: {requester: dic, recipient: police, subject: 2027-03-01}\n",
                             ':4:8: event 1 set: subject: put dates and times in quotes ("2027-03-01")'),
    "binary-tag": ("- {at: 2027-03-02, as: !!binary ZGljLmxlYWRlcg==, start: advisory}\n", ":1:24: tag '!!binary' is not allowed"),
    "alias-bomb": ("- &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"- &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(9)),
                   ":2:7: aliases to mappings or lists are not allowed"),
    "tab-indent": ("- at: 2027-03-02\n\tas: dic.leader\n", ":2:1: tab character used for indentation"),
    "not-strict-type": ("- {at: 2027-03-02, as: 42, start: advisory, withdraw: yes}\n",
                        ":1:24: event 1 as: Input should be a valid string"),
    "unknown-key": ("- {at: 2027-03-02, as: dic.leader, start: advisory, when: now}\n",
                    ":1:59: event 1 when: Extra inputs are not permitted"),
    "bad-utf8": (b"- {at: 2027-03-02, as: dic.leader, start: \xff}\n", ":1:43: file is not valid UTF-8"),
}


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_bad_events_files_are_refused_as_file_line_col(coopflow_cli, config, tmp_path, name):
    content, message = EVENTS[name]
    events = tmp_path / "events.yaml"
    events.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    started = time.monotonic()
    code, out, err = coopflow_cli("simulate", "--from", "2027-03-01", "--to", "2027-03-10", "--events", events, "-c", config)
    assert time.monotonic() - started < 5
    clear(code, out, err, 1, f"{events}{message}")


def test_a_missing_store_is_store_unavailable(coopflow_cli, config):
    """The store's errors (StoreError) print as `store unavailable: ...`, exit 1."""
    code, out, err = coopflow_cli("status", "-c", config)
    clear(code, out, err, 1)
    assert err.startswith("store unavailable: ") and len(err.strip().splitlines()) == 1, err


def test_a_real_bug_prints_no_local_variables(tmp_path):
    """An internal error (exit 3) in a real process: its traceback, if shown, never lists local variables."""
    script = ("import sys; from engine.cli import main as m\n"
              "secret_local = 'personal data 0912345678'\n"
              "def boom(): local_name = secret_local; raise RuntimeError('boom')\n"
              "m.cli.add_command(m.click.command('boom')(boom))\n"
              "sys.argv = ['coopflow', 'boom']; m.main()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, encoding="utf-8",
                          env=ENV, cwd=tmp_path, timeout=60)
    assert done.returncode == 3, done.stderr
    assert "internal error: RuntimeError: boom" in done.stderr
    assert "0912345678" not in done.stderr and "local_name" not in done.stderr and "└" not in done.stderr
