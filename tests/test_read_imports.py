"""A local read command imports what it reads with (issue #9: the fixed cost of a read is its
imports): `coopflow status` and `coopflow status ID` on this machine's store load no HTTP client
(httpx, which brings rich's syntax highlighting and pygments), no mail library and no server
stack; `status` loads no APScheduler triggers (only `upcoming` needs them). The overview's
tables are drawn with rich: that one it needs."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import modules_loaded_by, shipped_policy_with_store

HEAVY = ("httpx", "pygments", "smtplib", "email.mime", "fastapi", "starlette", "uvicorn", "engine.server",
         "apscheduler", "engine.scheduling.triggers")

@pytest.mark.parametrize("args", [["status"], ["status", "information_exchange-nothing"]], ids=["overview", "one"])
def test_a_local_read_loads_none_of_the_heavy_modules(tmp_path: Path, args: list[str]):
    config = shipped_policy_with_store(tmp_path / "policy", tmp_path / "store.db")
    code, loaded, output = modules_loaded_by([*args, "-c", config], HEAVY)
    assert code in (0, 1), output  # an unknown instance is a clear "not found", not a crash
    assert loaded == []
