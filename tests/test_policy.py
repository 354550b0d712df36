"""Tests for engine.policy.loader: the broken-policy corpus, the `check` command's contract, the content hash, the shipped policy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import MINIMAL_WORKFLOW, write_minimal_policy

from engine.cli.main import main
from engine.exceptions import PolicyError
from engine.policy.loader import load_policy

REPO = Path(__file__).resolve().parents[1]
BROKEN = Path(__file__).resolve().parent / "broken"
CORPUS = sorted(BROKEN.glob("*.yaml"))
CASE_KEYS = {"mistake", "edit", "write", "write_bytes", "repeat", "cli", "expect"}


def read_case(path: Path) -> dict:
    """The corpus case stored in `path` (see tests/broken/README.md)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


CLI_CORPUS = [p for p in CORPUS if read_case(p).get("cli")]


def build_case(root: Path, case: dict) -> Path:
    """Write the minimal policy under `root`, apply the case to it, and return the config path."""
    config = write_minimal_policy(root)
    for rel, replacements in (case.get("edit") or {}).items():
        path = root / rel
        text = path.read_text(encoding="utf-8")
        for item in replacements:
            assert text.count(item["find"]) == 1, f"{rel}: {item['find']!r} must occur exactly once"
            text = text.replace(item["find"], item["replace"])
        path.write_text(text, encoding="utf-8")
    for rel, text in (case.get("write") or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    for rel, text in (case.get("write_bytes") or {}).items():
        (root / rel).write_bytes(text.encode("latin-1"))
    for rel, (text, times) in (case.get("repeat") or {}).items():
        (root / rel).write_text(text * times, encoding="utf-8")
    return config


def run_check(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `python -m engine check ARGS` as a subprocess in `cwd`."""
    env = {k: v for k, v in os.environ.items() if k != "COOPFLOW_CONFIG"}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "engine", "check", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )


# --------------------------------------------------------------------------- the corpus


def test_corpus_is_large_and_well_formed():
    """The corpus holds at least 30 cases, each with a mistake, known keys and expected lines."""
    assert len(CORPUS) >= 30
    assert len(CLI_CORPUS) >= 3
    for path in CORPUS:
        case = read_case(path)
        assert set(case) <= CASE_KEYS, f"{path.name}: unknown keys {set(case) - CASE_KEYS}"
        assert case.get("mistake"), f"{path.name}: say what the mistake is"
        assert case.get("expect"), f"{path.name}: list the expected problems"
        assert re.fullmatch(r"[a-z][a-z0-9_]*", path.stem), f"{path.name}: name cases in snake_case"


def test_minimal_policy_is_valid(minimal_policy, monkeypatch):
    """The minimal policy every corpus case starts from loads without problems."""
    monkeypatch.chdir(minimal_policy.parent)
    policy = load_policy("config.yaml")
    assert set(policy.workflows) == {"request"}
    assert set(policy.schedules) == {"half_yearly"}
    assert [r.id for r in policy.event_rules] == ["close_on_answer"]


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_broken_policy_problems(path, tmp_path, monkeypatch):
    """load_policy reports exactly the case's expected `file:line:col: message` lines, in order."""
    case = read_case(path)
    build_case(tmp_path, case)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PolicyError) as info:
        load_policy("config.yaml")
    assert [str(p) for p in info.value.problems] == case["expect"]


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_check_command_output(path, tmp_path, monkeypatch, capsys):
    """The `coopflow check` entry point prints the expected lines and a count to stderr, exits 1, and never a traceback."""
    case = read_case(path)
    build_case(tmp_path, case)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COOPFLOW_CONFIG", raising=False)
    monkeypatch.setattr(sys, "argv", ["coopflow", "check", "-c", "config.yaml"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    assert exit_info.value.code == 1
    assert "Traceback" not in err
    assert out == ""
    assert err.splitlines() == [*case["expect"], f"{len(case['expect'])} problem(s) found"]


@pytest.mark.parametrize("path", CLI_CORPUS, ids=[p.stem for p in CLI_CORPUS])
def test_check_subprocess(path, tmp_path):
    """A few corpus cases through a real `python -m engine check` process: same lines, exit 1, no traceback."""
    case = read_case(path)
    build_case(tmp_path, case)
    result = run_check(tmp_path, "-c", "config.yaml")
    assert "Traceback" not in result.stderr
    assert result.returncode == 1
    assert result.stderr.splitlines() == [*case["expect"], f"{len(case['expect'])} problem(s) found"]


# --------------------------------------------------------------------------- check: the command's contract


def test_check_reports_every_problem_sorted(tmp_path):
    """Three mistakes in two files give three lines, sorted by file then line, then the count."""
    build_case(tmp_path, {"edit": {
        "workflows/request.yaml": [
            {"find": "by: [$recipient.focal_point]", "replace": "by: [boss]"},
            {"find": "    by: [system]\n", "replace": "    by: [system]\n  - trigger: park\n    from: open\n    to: parked\n    by: [leader]\n"},
        ],
        "rules/rules.yaml": [{"find": "months: [6, 12]", "replace": "months: [6, 13]"}],
    }})
    result = run_check(tmp_path, "-c", "config.yaml")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "rules/rules.yaml:5:19: item 2 of 'months' must be at most 12, found 13",
        "workflows/request.yaml:25:10: unknown role 'boss'; known: focal_point, leader",
        "workflows/request.yaml:36:9: unknown state 'parked'; states: open, answered, expired",
        "3 problem(s) found",
    ]


def test_check_exit_0_on_a_valid_policy(minimal_policy):
    """A valid policy prints a one-line summary with the policy hash on stdout and exits 0."""
    result = run_check(minimal_policy.parent, "-c", "config.yaml")
    assert (result.returncode, result.stderr) == (0, "")
    assert re.fullmatch(r"ok: 1 workflows, 1 schedules, 1 event rules; policy [0-9a-f]{12}\n", result.stdout)


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--no-such-option"], 2, "No such option '--no-such-option'"),
        (["-c"], 2, "Option '-c' requires an argument"),
        (["-c", "missing.yaml"], 1, "missing.yaml:1:1: config file not found"),
    ],
    ids=["unknown_option", "option_without_value", "config_not_found"],
)
def test_check_exit_codes(tmp_path, args, code, needle):
    """A usage mistake exits 2 and a missing config file exits 1, each with a clear message and no traceback."""
    result = run_check(tmp_path, *args)
    assert result.returncode == code
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_check_prints_paths_relative_to_working_directory(tmp_path):
    """Run from the policy's parent folder, every printed path starts with the folder's name, never an absolute path."""
    build_case(tmp_path / "pol", {"edit": {
        "config.yaml": [{"find": "holidays: VN", "replace": "holidays: XX"}],
        "workflows/request.yaml": [{"find": "initial: open", "replace": "initial: start"}],
    }})
    result = run_check(tmp_path, "-c", "pol/config.yaml")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "pol/config.yaml:17:13: unknown holiday country 'XX' (use a two-letter ISO 3166 code such as VN, or null for none)",
        "pol/workflows/request.yaml:10:10: initial state 'start' is not declared; states: open, answered, expired",
        "2 problem(s) found",
    ]


# --------------------------------------------------------------------------- content hash


def test_digest_is_stable(minimal_policy, monkeypatch):
    """Two loads of unchanged files give the same digest and workflow versions, whatever the working directory."""
    first = load_policy(minimal_policy)
    monkeypatch.chdir(minimal_policy.parent)
    second = load_policy("config.yaml")
    assert first.digest == second.digest
    assert first.workflow_version("request") == second.workflow_version("request")
    assert re.fullmatch(r"[0-9a-f]{64}", first.digest)


@pytest.mark.parametrize(
    "rel", ["config.yaml", "workflows/request.yaml", "rules/rules.yaml"], ids=["config", "workflow", "rules"]
)
def test_digest_changes_with_any_file(minimal_policy, rel):
    """Editing any one policy file, even only a comment, changes the digest."""
    before = load_policy(minimal_policy).digest
    path = minimal_policy.parent / rel
    path.write_text(path.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    assert load_policy(minimal_policy).digest != before


def test_digest_changes_when_a_file_is_added(minimal_policy):
    """A new workflow file changes the digest."""
    before = load_policy(minimal_policy).digest
    other = MINIMAL_WORKFLOW.replace("id: request", "id: other").replace("started_by: [focal_point, system]", "started_by: [focal_point]")
    (minimal_policy.parent / "workflows" / "other.yaml").write_text(other, encoding="utf-8")
    assert load_policy(minimal_policy).digest != before


def test_workflow_version_changes_only_for_the_edited_workflow(minimal_policy):
    """Editing one workflow changes its version and nobody else's; a comment-only edit changes no version."""
    folder = minimal_policy.parent / "workflows"
    other = MINIMAL_WORKFLOW.replace("id: request", "id: other").replace("started_by: [focal_point, system]", "started_by: [focal_point]")
    (folder / "other.yaml").write_text(other, encoding="utf-8")
    before = load_policy(minimal_policy)
    request = folder / "request.yaml"
    request.write_text(request.read_text(encoding="utf-8") + "# a comment\n", encoding="utf-8")
    commented = load_policy(minimal_policy)
    assert commented.digest != before.digest
    assert commented.workflow_version("request") == before.workflow_version("request")
    request.write_text(request.read_text(encoding="utf-8").replace("title: Request", "title: Request for information"), encoding="utf-8")
    edited = load_policy(minimal_policy)
    assert edited.workflow_version("request") != before.workflow_version("request")
    assert edited.workflow_version("other") == before.workflow_version("other")


# --------------------------------------------------------------------------- the shipped policy


def test_shipped_policy_is_valid(monkeypatch):
    """The policy shipped in the repository (config.yaml, workflows/, rules/) loads without a problem."""
    monkeypatch.chdir(REPO)
    policy = load_policy(REPO / "config.yaml")
    assert policy.workflows
    assert all(path.stem in policy.workflows for path in (REPO / "workflows").glob("*.yaml"))
