"""`coopflow check` warnings (issue #10): an explicit `dates:` entry of a calendar rule that falls on
a day the agreement's calendar does not work is reported at its file:line:col, as a warning (the
policy is valid and loads; the schedule still fires on that day)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import copy_shipped_policy

from engine.policy.loader import load_policy

# Appended to the shipped rules/reviews.yaml. Line by line, counted from the first line appended:
# 2027-09-02 is National Day (a Thursday), 2027-05-22 a Saturday, 2025-05-02 a Friday off in the
# shipped config's calendar.overrides; 2025-04-26 is a Saturday worked (overrides work) and
# 2027-05-20 a Thursday: those two are working days. Written out of order on purpose: the model
# sorts `dates`, the warning must still point at each date where it is written.
EXTRA = """\
  - id: extra_meetings
    start: periodic_review
    every:
      dates:
        - 2027-09-02
        - 2027-05-20
        - 2027-05-22
        - 2025-05-02
        - 2025-04-26
      at: "14:00"
    host: {rotate: [dic, police], field: host}
    with:
      period: "=occurrence.period"
"""


@pytest.fixture
def policy_dir(tmp_path: Path, monkeypatch) -> tuple[Path, int]:
    """A copy of the shipped policy with EXTRA appended; its config path and EXTRA's first line."""
    monkeypatch.setenv("COOPFLOW_CHECK_CACHE", str(tmp_path / "cache"))
    config = copy_shipped_policy(tmp_path / "policy")
    rules = config.parent / "rules" / "reviews.yaml"
    text = rules.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text += "\n"
    first = text.count("\n") + 1
    rules.write_text(text + EXTRA, encoding="utf-8")
    return config, first


def test_dates_on_days_off_are_warnings_at_their_lines(policy_dir):
    config, first = policy_dir
    policy = load_policy(config)  # no PolicyError: warnings are not errors
    assert "extra_meetings" in policy.schedules
    found = {(Path(w.file).name, w.line, w.col): w.message for w in policy.warnings}
    assert set(found) == {("reviews.yaml", first + n, 11) for n in (4, 6, 7)}
    national_day, saturday, day_off = (found["reviews.yaml", first + n, 11] for n in (4, 6, 7))
    assert national_day.startswith("2027-09-02 is not a working day (") and "National Day" in national_day
    assert saturday.startswith("2027-05-22 is not a working day (a Saturday, weekend)")
    assert day_off.startswith("2025-05-02 is not a working day (")
    assert all("schedule 'extra_meetings' still falls on it" in m for m in found.values())


def test_shipped_policy_has_no_warnings(tmp_path):
    assert load_policy(copy_shipped_policy(tmp_path / "policy")).warnings == ()


def test_check_prints_warnings_and_exits_0(policy_dir, coopflow_cli, monkeypatch):
    config, first = policy_dir
    monkeypatch.chdir(config.parent)
    for _ in range(2):  # the second run has the workflows from the check cache; rules are checked every time
        code, out, err = coopflow_cli("check", "-c", "config.yaml")
        assert code == 0, err
        assert out.startswith("ok: 8 workflows, 2 schedules")
        warnings = [line for line in err.splitlines() if ": warning: " in line]
        assert [w.split(": warning: ")[0] for w in warnings] == [
            f"rules/reviews.yaml:{first + n}:11" for n in (4, 6, 7)]
        assert "2027-05-20" not in err and "2025-04-26" not in err


def test_a_weekend_date_worked_by_override_is_not_warned(policy_dir):
    """Listing the Saturday under calendar.overrides work (a swapped working day) silences its warning."""
    config, first = policy_dir
    text = config.read_text(encoding="utf-8")
    assert "work: [2025-04-26]" in text
    config.write_text(text.replace("    2025:\n", "    2027:\n      work: [2027-05-22]\n    2025:\n", 1), encoding="utf-8")
    lines = {w.line for w in load_policy(config).warnings}
    assert lines == {first + 4, first + 7}
