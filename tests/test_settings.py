"""Tests for engine/settings.py: the one place the environment is read, and docs/deploy.md's table of it."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from engine import settings
from engine.exceptions import SettingError, UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
ENGINE = REPO_ROOT / "engine"
NAME = re.compile(r"COOPFLOW_[A-Z0-9_]*[A-Z0-9]")
# The notification secrets are variables the policy names (config.yaml `env:`), not coopflow's own.
# channels: secret names come from the policy; the CLI's client path and the check cache run before (or
# without) the rest of coopflow and read their own variables, declared in engine/settings.py all the same.
READS_ENVIRONMENT = {"engine/settings.py", "engine/notify/channels.py", "engine/policy/cache.py", "engine/cli/client.py",
                     "engine/cli/session.py", "engine/cli/tables.py"}


def engine_sources() -> dict[str, str]:
    return {path.relative_to(REPO_ROOT).as_posix(): path.read_text(encoding="utf-8") for path in ENGINE.rglob("*.py")}


def documented_table() -> dict[str, str]:
    """variable -> default, from the table of docs/deploy.md section 8."""
    text = (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = text[text.index("## 8. Environment variables"):]
    section = section[:section.index("\n## ", 1)]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`COOPFLOW_"):
            default = cells[1]
            if default.startswith("`") and default.endswith("`") and default.count("`") == 2:
                default = default[1:-1]
            rows[cells[0].strip("`")] = default
    return rows


def test_every_name_used_in_engine_is_declared_and_documented():
    """A COOPFLOW_ name anywhere in engine/ is a declared setting, and docs/deploy.md lists every one."""
    used = {name for source in engine_sources().values() for name in NAME.findall(source)}
    assert used, "the scan found no COOPFLOW_ name at all"
    assert used - set(settings.SETTINGS) == set()
    assert set(documented_table()) == set(settings.SETTINGS)


def test_documented_defaults_are_the_code_defaults():
    """The default column of docs/deploy.md is the default engine/settings.py applies."""
    table = documented_table()
    assert {name: table[name] for name in settings.SETTINGS} == {name: s.default for name, s in settings.SETTINGS.items()}
    for name in (settings.PG_CONNECT_TIMEOUT, settings.PG_TCP_TIMEOUT, settings.LEASE_TTL):
        assert settings.seconds(name) == float(table[name])


def test_only_the_settings_module_reads_the_environment():
    """os.environ / os.getenv appear in engine/ only where READS_ENVIRONMENT says."""
    readers = {path for path, source in engine_sources().items() if re.search(r"os\.environ|os\.getenv|getenv\(", source)}
    assert readers <= READS_ENVIRONMENT
    assert "engine/settings.py" in readers


@pytest.mark.parametrize("raw", ["0", "-3", "abc", "nan", "inf"])
def test_bad_seconds_are_a_user_error_naming_the_variable(monkeypatch, raw: str):
    monkeypatch.setenv(settings.PG_LOCK_TIMEOUT, raw)
    with pytest.raises(SettingError, match=f"COOPFLOW_PG_LOCK_TIMEOUT must be a positive number of seconds, got '{raw}'"):
        settings.seconds(settings.PG_LOCK_TIMEOUT)
    assert issubclass(SettingError, UserError)


def test_values_are_read_when_asked(monkeypatch):
    """Set at run time, blank means unset, surrounding blanks are dropped."""
    monkeypatch.setenv(settings.LEASE_TTL, " 2.5 ")
    assert settings.lease_ttl() == timedelta(seconds=2.5)
    monkeypatch.setenv(settings.LEASE_TTL, "   ")
    assert settings.lease_ttl() == timedelta(seconds=15)
    monkeypatch.setenv(settings.DRILL, "allow-real-store")
    assert settings.drill_allows_real_store()
    monkeypatch.setenv(settings.DRILL, "yes")
    assert not settings.drill_allows_real_store()


def test_an_undeclared_name_is_a_programming_error():
    with pytest.raises(KeyError, match="not a coopflow setting"):
        settings.text("COOPFLOW_NO_SUCH_THING")
