"""The README's promises: its diagrams are the ones `coopflow diagram` draws from the shipped YAML."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.policy.loader import load_policy
from engine.views.diagram import mermaid

REPO = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"<!-- diagram:(\w+) -->\n```mermaid\n(.*?)```\n<!-- /diagram -->", re.S)


def test_readme_shows_both_review_diagrams() -> None:
    """The README embeds the periodic and the emergency review diagrams."""
    found = {m.group(1) for m in BLOCK.finditer((REPO / "README.md").read_text(encoding="utf-8"))}
    assert found == {"periodic_review", "emergency_review"}


@pytest.mark.parametrize("workflow", ["periodic_review", "emergency_review"], ids=["periodic", "emergency"])
def test_readme_diagram_is_current(workflow: str) -> None:
    """Each embedded diagram equals what `coopflow diagram` draws now (regenerate it after editing the YAML)."""
    policy = load_policy(REPO / "config.yaml")
    blocks = {m.group(1): m.group(2) for m in BLOCK.finditer((REPO / "README.md").read_text(encoding="utf-8"))}
    assert blocks[workflow] == mermaid(policy.workflows[workflow]), (
        f"README diagram of {workflow} is stale: paste the output of `coopflow diagram {workflow}`")
