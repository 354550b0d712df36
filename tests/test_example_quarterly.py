"""examples/quarterly (issue #10, done-when): `coopflow check` accepts it and `coopflow simulate`
meets on the last working Thursday of each quarter, hosts police, dic, monre in turn from the
stated first host. The expected days are computed here from the `holidays` package."""

from __future__ import annotations

import calendar as stdcal
import json
import os
import shutil
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import holidays
import pytest
from conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "quarterly"
ENV = {k: v for k, v in os.environ.items() if not k.startswith("COOPFLOW_")}
PUBLIC = holidays.country_holidays("VN", years=range(2027, 2031))


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("example") / "quarterly"
    shutil.copytree(EXAMPLE, folder)
    return folder / "config.yaml"


def coopflow(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args, "-c", str(config)], capture_output=True, text=True,
                          env=ENV, cwd=config.parent, timeout=180)


def last_working_thursday(year: int, last_month: int) -> date:
    thursdays = [d for d in stdcal.Calendar().itermonthdates(year, last_month)
                 if d.month == last_month and d.weekday() == 3 and d not in PUBLIC]
    return thursdays[-1]


def test_check_accepts_the_example(config):
    done = coopflow(config, "check")
    assert done.returncode == 0 and done.stdout.startswith("ok: 2 workflows, 1 schedules"), done.stdout + done.stderr


def test_simulate_meets_on_the_last_working_thursday_with_rotating_hosts(config):
    done = coopflow(config, "simulate", "--from", "2027-01-01", "--to", "2030-12-31", "--json")
    assert done.returncode == 0, done.stderr
    meetings = [e for e in json.loads(done.stdout) if e["kind"] == "schedule"]
    assert [datetime.fromisoformat(e["at"]).date() for e in meetings] == [
        last_working_thursday(y, m) for y in range(2027, 2031) for m in (3, 6, 9, 12)]
    assert all(e["at"].endswith("T08:30:00+07:00") for e in meetings)
    assert [e["host"] for e in meetings] == ["police", "dic", "monre"] * 5 + ["police"]
    assert not (EXAMPLE / "quarterly.db").exists() and not (config.parent / "quarterly.db").exists()
