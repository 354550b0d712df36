"""`coopflow check` imports what it uses (issue #10: the CLI's re-check is bound by its imports): for
a policy without report templates, notifications or explicit schedule dates, no SQLAlchemy, rich,
Jinja2, HTTP client or report module is loaded, nor the ~250 country modules of `holidays`."""

from __future__ import annotations

from pathlib import Path

from conftest import modules_loaded_by

CONFIG = """\
agreement: {id: small, title: A small agreement}
parties:
  alpha: {title: Agency Alpha, roles: {focal_point: {people: [a_focal]}}}
  beta: {title: Agency Beta, roles: {focal_point: {people: [b_focal]}}}
"""
WORKFLOW = """\
id: request
title: A request
clause: "1"
started_by: [focal_point]
initial: open
states:
  open: {title: Open, deadline: {working_days: 5, fire: expire}}
  closed: {title: Closed, final: true}
transitions:
  - {trigger: close, from: open, to: closed, by: [focal_point]}
  - {trigger: expire, from: open, to: closed, by: [system]}
"""
HEAVY = ("sqlalchemy", "rich", "jinja2", "httpx", "engine.views.report", "engine.store.database",
         "holidays.countries.vietnam")

def write_policy(root: Path, rules: str = "") -> Path:
    (root / "workflows").mkdir(parents=True)
    (root / "rules").mkdir()
    (root / "config.yaml").write_text(CONFIG, encoding="utf-8")
    (root / "workflows" / "request.yaml").write_text(WORKFLOW, encoding="utf-8")
    if rules:
        (root / "rules" / "meetings.yaml").write_text(rules, encoding="utf-8")
    return root / "config.yaml"


def loaded_by_check(config: Path, tmp_path: Path) -> list[str]:
    code, loaded, output = modules_loaded_by(["check", "-c", config], HEAVY, COOPFLOW_CHECK_CACHE=str(tmp_path / "cache"))
    assert code == 0, output
    return loaded


def test_check_of_a_plain_policy_loads_none_of_the_heavy_modules(tmp_path):
    assert loaded_by_check(write_policy(tmp_path / "policy"), tmp_path) == []


def test_explicit_dates_load_the_holiday_calendar_they_are_checked_against(tmp_path):
    """The probe sees a module when it is loaded: a schedule with dates needs VN's holidays."""
    rules = """\
schedules:
  - id: meeting
    start: request
    as: alpha.focal_point
    every: {dates: [2027-09-02]}
"""
    assert loaded_by_check(write_policy(tmp_path / "policy", rules), tmp_path) == ["holidays.countries.vietnam"]
