"""Policy language 2 (issue #10): defaults are values of their type, and `check` reports every mistake in one run."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import copy_shipped_policy, write_minimal_policy

TYPED_FIELDS = """\
  t_str: {type: str, default: 2025-01-01}
  t_int: {type: int, default: '7'}
  t_float: {type: float, default: 3}
  t_bool: {type: bool, default: 'no'}
  t_date: {type: date, default: 2025-05-02}
  t_datetime: {type: datetime, default: 2025-05-02T09:30:00}
  t_party: {type: party, default: b}
  t_actor: {type: actor, default: a.leader}
  t_list: {type: list, default: [2025-05-02, x]}
"""


def _policy(tmp_path: Path, fields: str) -> Path:
    config = write_minimal_policy(tmp_path / "policy")
    wf = config.parent / "workflows" / "request.yaml"
    wf.write_text(wf.read_text(encoding="utf-8").replace("fields:\n", "fields:\n" + fields, 1), encoding="utf-8")
    return config


def _run(coopflow_cli, config: Path, *args: str) -> tuple[int, str, str]:
    code, out, err = coopflow_cli(*args, "-c", str(config))
    assert "Traceback" not in out + err
    return code, out, err


def test_defaults_are_stored_as_values_of_their_type(coopflow_cli, tmp_path, monkeypatch):
    monkeypatch.delenv("COOPFLOW_STORE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    config = _policy(tmp_path, TYPED_FIELDS)
    assert _run(coopflow_cli, config, "check")[0] == 0
    assert _run(coopflow_cli, config, "init")[0] == 0
    code, out, err = _run(coopflow_cli, config, "start", "request", "--as", "a.focal_point", "--set", "recipient=b")
    assert code == 0, err
    instance = out.split()[0]
    code, out, err = _run(coopflow_cli, config, "status", instance, "--json")
    assert code == 0, err
    fields = json.loads(out)["fields"]
    assert {k: v for k, v in fields.items() if k.startswith("t_")} == {
        "t_str": "2025-01-01",
        "t_int": 7,
        "t_float": 3.0,
        "t_bool": False,  # 'no' is false, not the (true) text "no"
        "t_date": "2025-05-02",
        "t_datetime": "2025-05-02T09:30:00+07:00",  # the config's time zone
        "t_party": "b",
        "t_actor": "a.leader",
        "t_list": ["2025-05-02", "x"],
    }
    assert fields["kind"] == "simple"  # enum default
    assert type(fields["t_float"]) is float


def test_a_default_that_does_not_convert_is_a_located_check_error(coopflow_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _policy(tmp_path, "  t_date: {type: date, default: soon}\n  t_bool: {type: bool, default: maybe}\n"
                               "  t_expr: {type: str, default: '=fields.subject'}\n")
    code, out, err = _run(coopflow_cli, config, "check")
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[-1] == "3 problem(s) found"
    wf = str(Path("policy/workflows/request.yaml"))
    assert lines[0] == f"{wf}:6:33: field 't_date' expects a date as YYYY-MM-DD, got 'soon': Invalid isoformat string: 'soon'"
    assert lines[1] == f"{wf}:7:33: field 't_bool' expects true or false, got 'maybe'"
    assert lines[2].startswith(f"{wf}:8:32: field 't_expr': a default is a value, not an expression")


def test_check_reports_structural_and_cross_file_mistakes_in_one_run(coopflow_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write_minimal_policy(tmp_path / "policy")
    wf = config.parent / "workflows" / "request.yaml"
    wf.write_text(wf.read_text(encoding="utf-8").replace("title: Request\n", "title: Request\ncolour: red\n"), encoding="utf-8")
    rules = config.parent / "rules" / "rules.yaml"
    rules.write_text(rules.read_text(encoding="utf-8") + "  - id: on_nothing\n    on: never.emitted\n"
                     "    fire: {workflow: request, trigger: expire, instance: '=event.instance'}\n", encoding="utf-8")
    code, out, err = _run(coopflow_cli, config, "check")
    assert code == 1
    assert err.strip().splitlines() == [
        f"{Path('policy/rules/rules.yaml')}:18:9: no workflow emits 'never.emitted'; emitted events: none",
        f"{Path('policy/workflows/request.yaml')}:3:1: unknown key 'colour'; allowed here: clause, description, "
        "fields, id, initial, meeting, report, started_by, states, subject, title, transitions",
        "2 problem(s) found",
    ]


def test_subject_and_meeting_name_fields_and_states_of_their_workflow(coopflow_cli, tmp_path):
    root = tmp_path / "policy"
    copy_shipped_policy(root)
    path = root / "workflows" / "emergency_review.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("subject: issue ", "subject: isue ").replace("  state: convened ", "  state: convend ")
    text = text.replace("  at: meeting_at ", "  at: venue ")
    path.write_text(text, encoding="utf-8")
    code, out, err = _run(coopflow_cli, root / "config.yaml", "check")
    assert code == 1
    assert "emergency_review.yaml" in err
    assert "'subject' must name a field of this workflow, not 'isue'" in err
    assert "unknown state 'convend'" in err
    assert "'at' must name a datetime field of this workflow, not 'venue'" in err
