"""Tests for engine/scheduling/watcher.py: what the daemon's hot reload notices."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import write_minimal_policy

from engine.policy.loader import load_policy
from engine.scheduling.watcher import PolicyWatcher


def moved_folders(root: Path) -> Path:
    """The minimal policy with its workflows and rules in folders of other names (config `paths:`)."""
    config = write_minimal_policy(root)
    (root / "workflows").rename(root / "quy_trinh")
    (root / "rules").rename(root / "quy_tac")
    config.write_text(config.read_text(encoding="utf-8") + "paths:\n  workflows: quy_trinh\n  rules: quy_tac\n",
                      encoding="utf-8")
    return config


def test_first_snapshot_uses_the_configured_folders(tmp_path: Path):
    """With `paths:` naming other folders, nothing is 'changed' until a file is edited, and an
    edit in a configured folder is noticed at the first look."""
    config = moved_folders(tmp_path)
    policy = load_policy(config)
    watcher = PolicyWatcher(config, policy)
    assert any("quy_trinh" in name for name, _ in watcher.snapshot)
    assert not watcher.changed(policy)
    workflow = next((tmp_path / "quy_trinh").glob("*.yaml"))
    workflow.write_text(workflow.read_text(encoding="utf-8") + "\n# sửa\n", encoding="utf-8")
    assert watcher.changed(policy)
    assert not watcher.changed(policy)


def test_edit_keeping_size_and_mtime_is_noticed(tmp_path: Path):
    """An edit of the same length whose modification time is put back is still a change (content hash)."""
    config = write_minimal_policy(tmp_path)
    policy = load_policy(config)
    watcher = PolicyWatcher(config, policy)
    rules = next((tmp_path / "rules").glob("*.yaml"))
    before = os.stat(rules)
    text = rules.read_text(encoding="utf-8")
    edited = text.replace("a", "b", 1)
    assert edited != text and len(edited.encode()) == len(text.encode())
    rules.write_text(edited, encoding="utf-8")
    os.utime(rules, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(rules)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert watcher.changed(policy)


def test_removed_file_is_a_change(tmp_path: Path):
    config = write_minimal_policy(tmp_path)
    policy = load_policy(config)
    watcher = PolicyWatcher(config, policy)
    next((tmp_path / "rules").glob("*.yaml")).unlink()
    assert watcher.changed(policy)
