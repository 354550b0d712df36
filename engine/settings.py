"""Every setting coopflow reads from its environment, and the engine's fixed tunables, in one place.

The environment is read here and nowhere else in engine/ (the notification secrets, whose
variable names the policy itself declares, are read by engine/notify/channels.py). Each value
is read when asked for, not at import, so a bad value becomes a clear `SettingError` where the
command can show it, and tests may set variables at run time. docs/deploy.md section 8 lists
the same table (tests/test_settings.py keeps the two equal).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from engine.exceptions import SettingError


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, its default as written in docs/deploy.md, what it does."""

    name: str
    default: str
    meaning: str


CONFIG = "COOPFLOW_CONFIG"
STORE_URL = "COOPFLOW_STORE_URL"
CLOCK_START = "COOPFLOW_CLOCK_START"
DRILL = "COOPFLOW_DRILL"
LEASE_TTL = "COOPFLOW_LEASE_TTL"
PG_CONNECT_TIMEOUT = "COOPFLOW_PG_CONNECT_TIMEOUT"
PG_STATEMENT_TIMEOUT = "COOPFLOW_PG_STATEMENT_TIMEOUT"
PG_LOCK_TIMEOUT = "COOPFLOW_PG_LOCK_TIMEOUT"
PG_IDLE_TIMEOUT = "COOPFLOW_PG_IDLE_TIMEOUT"
PG_TCP_TIMEOUT = "COOPFLOW_PG_TCP_TIMEOUT"
CHECK_CACHE = "COOPFLOW_CHECK_CACHE"
SERVER = "COOPFLOW_SERVER"
TOKEN = "COOPFLOW_TOKEN"

SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting(CONFIG, "./config.yaml", "the config file when no -c is given"),
    Setting(STORE_URL, "the `store` key of `config.yaml`", "the store's SQLAlchemy URL (replaces `store`)"),
    Setting(CLOCK_START, "the real time", "a drill clock: VIRTUAL or VIRTUAL@REAL (ISO 8601 with offset)"),
    Setting(DRILL, "unset", "allow-real-store: a drill may open a store with real history"),
    Setting(PG_CONNECT_TIMEOUT, "10", "PostgreSQL: seconds to connect"),
    Setting(PG_STATEMENT_TIMEOUT, "30", "PostgreSQL: seconds one statement may run"),
    Setting(PG_LOCK_TIMEOUT, "30", "PostgreSQL: seconds to wait for a lock"),
    Setting(PG_IDLE_TIMEOUT, "15", "PostgreSQL: seconds a transaction may stay idle"),
    Setting(PG_TCP_TIMEOUT, "20", "PostgreSQL: seconds before a silent peer is dropped"),
    Setting(LEASE_TTL, "15", "seconds the leader lease lasts"),
    # read where they are used: the policy cache, and the CLI's client path (which imports nothing of coopflow)
    Setting(CHECK_CACHE, "$XDG_CACHE_HOME/coopflow/check", "coopflow check's cache folder, or off"),
    Setting(SERVER, "the saved login", "the server the CLI talks to"),
    Setting(TOKEN, "the saved login", "an API token for the CLI"),
)}

# Fixed tunables (not read from the environment; changed here, with a bench run, if ever).
BATCH = 100                # events applied per transaction when several are pending (group commit)
RENEW_FRACTION = 3         # the daemon renews its lease every TTL/3 (5 s for the default 15 s)
SWEEP_EVERY = 30.0         # seconds between the daemon's safety sweeps for anything due
RELOAD_EVERY = 1.0         # seconds between the daemon's checks of the policy files
PRIVATE_MODE = 0o600       # the SQLite store and its -wal/-shm files (personal data)


def text(name: str) -> str | None:
    """The variable's value with surrounding blanks removed; None when unset or blank."""
    _declared(name)
    value = os.environ.get(name, "").strip()
    return value or None


def seconds(name: str) -> float:
    """A positive number of seconds (its documented default when unset); SettingError otherwise."""
    raw = text(name)
    if raw is None:
        return float(SETTINGS[name].default)
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):  # also refuses nan
        raise SettingError(f"{name} must be a positive number of seconds, got {raw!r}")
    return value


def config_path() -> str | None:
    return text(CONFIG)


def store_url() -> str | None:
    return text(STORE_URL)


def clock_start() -> str | None:
    return text(CLOCK_START)


def drill_allows_real_store() -> bool:
    return text(DRILL) == "allow-real-store"


def lease_ttl() -> timedelta:
    return timedelta(seconds=seconds(LEASE_TTL))


# The locale's variables, in POSIX order (the first one set decides): the language of the CLI's messages.
MESSAGE_LOCALE = ("LC_ALL", "LC_MESSAGES", "LANG")


def message_locale() -> str:
    """The locale messages are to follow ("vi_VN.UTF-8", "C.UTF-8"; "" when none of MESSAGE_LOCALE is set)."""
    return next((value for value in (os.environ.get(name, "").strip() for name in MESSAGE_LOCALE) if value), "")


def _declared(name: str) -> None:
    if name not in SETTINGS:
        raise KeyError(f"{name} is not a coopflow setting (declare it in engine/settings.py and docs/deploy.md)")
