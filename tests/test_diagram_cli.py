"""`coopflow diagram`: state diagrams of the shipped workflows through the command line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO_ROOT, copy_shipped_policy

from engine.policy.loader import load_policy

SHIPPED = load_policy(REPO_ROOT / "config.yaml")
WORKFLOWS = sorted(SHIPPED.workflows)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A private copy of the shipped policy."""
    return copy_shipped_policy(tmp_path / "policy")


def _assert_complete(text: str, workflow: str, fmt: str) -> None:
    spec = SHIPPED.workflows[workflow]
    for sid in spec.states:
        if fmt == "dot":
            assert f'"{sid}" [label=' in text, f"state {sid} missing"
        else:
            assert re.search(rf"\bas \w*{re.escape(sid)}\w*$", text, re.M), f"state {sid} missing"
    for t in spec.transitions:
        # The edge label starts with the trigger, then its guard or the next line (by: ...).
        start = r'\[label="' if fmt == "dot" else r" : "
        after = r"\\n" if fmt == "dot" else r"<br/>"
        assert re.search(rf"{start}{re.escape(t.trigger)}( \[|{after})", text), f"trigger {t.trigger} missing"


@pytest.mark.parametrize("fmt", ["mermaid", "dot"], ids=["mermaid", "dot"])
@pytest.mark.parametrize("workflow", WORKFLOWS, ids=WORKFLOWS)
def test_every_state_and_trigger_is_drawn(coopflow_cli, config, workflow, fmt):
    """Each shipped workflow's diagram, printed to stdout, names every state and every trigger."""
    code, out, err = coopflow_cli("diagram", workflow, "--format", fmt, "-c", config)
    assert code == 0, err
    assert out.startswith("---\ntitle:" if fmt == "mermaid" else "digraph ")
    _assert_complete(out, workflow, fmt)


def test_mermaid_is_the_default_and_out_writes_utf8(coopflow_cli, config, tmp_path):
    """Without --format the diagram is Mermaid; --out writes it as UTF-8 with Vietnamese intact."""
    target = tmp_path / "ie.mmd"
    code, out, err = coopflow_cli("diagram", "information_exchange", "--out", target, "-c", config)
    assert code == 0, err
    assert str(target) in out
    text = target.read_text(encoding="utf-8")
    assert text.startswith("---\ntitle:") and "stateDiagram-v2" in text
    assert "Đã gửi công văn" in text
    _assert_complete(text, "information_exchange", "mermaid")


@pytest.mark.parametrize("fmt,ext", [("mermaid", "mmd"), ("dot", "dot")], ids=["mermaid", "dot"])
def test_all_writes_one_file_per_workflow(coopflow_cli, config, tmp_path, fmt, ext):
    """--all --out DIR writes <id>.mmd or <id>.dot for every workflow, each complete."""
    folder = tmp_path / "diagrams"
    code, out, err = coopflow_cli("diagram", "--all", "--format", fmt, "--out", folder, "-c", config)
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{w}.{ext}" for w in WORKFLOWS)
    for workflow in WORKFLOWS:
        _assert_complete((folder / f"{workflow}.{ext}").read_text(encoding="utf-8"), workflow, fmt)


def test_unknown_workflow_is_a_clear_error(coopflow_cli, config):
    """An unknown workflow exits 1 with a message naming it and the known workflows, no traceback."""
    code, out, err = coopflow_cli("diagram", "nonesuch", "-c", config)
    assert code == 1
    assert "unknown workflow 'nonesuch'" in err and "information_exchange" in err
    assert "Traceback" not in err + out


@pytest.mark.parametrize("args", [["--all"], [], ["information_exchange", "--all", "--out", "x"]],
                         ids=["all-without-out", "nothing", "both"])
def test_usage_mistakes_exit_2(coopflow_cli, config, args):
    """--all without --out, neither a workflow nor --all, or both, are usage errors (exit 2)."""
    code, out, err = coopflow_cli("diagram", *args, "-c", config)
    assert code == 2
    assert "Traceback" not in err
