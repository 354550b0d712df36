"""A local read command imports what it reads with (issue #9: the fixed cost of a read is its
imports): `coopflow status` and `coopflow status ID` on this machine's store load no HTTP client
(httpx, which brings rich's syntax highlighting and pygments), no mail library and no server
stack; `status` loads no APScheduler triggers (only `upcoming` needs them). The overview's
tables are drawn with rich: that one it needs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import clean_env, shipped_policy_with_store

HEAVY = ("httpx", "pygments", "smtplib", "email.mime", "fastapi", "starlette", "uvicorn", "engine.server",
         "apscheduler", "engine.scheduling.triggers")

PROBE = """\
import json, sys
from engine.cli.main import main
heavy = json.loads(sys.argv[1])
sys.argv = ["coopflow", *sys.argv[2:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}))
"""


@pytest.mark.parametrize("args", [["status"], ["status", "information_exchange-nothing"]], ids=["overview", "one"])
def test_a_local_read_loads_none_of_the_heavy_modules(tmp_path: Path, args: list[str]):
    config = shipped_policy_with_store(tmp_path / "policy", tmp_path / "store.db")
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HEAVY), *args, "-c", str(config)], capture_output=True,
                          text=True, env=clean_env(), timeout=120)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] in (0, 1), proc.stdout + proc.stderr  # an unknown instance is a clear "not found", not a crash
    assert result["loaded"] == []
