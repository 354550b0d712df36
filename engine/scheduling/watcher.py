"""Notices edits to the policy files (config.yaml and the folders its `paths:` names) for hot reload.

A snapshot is each file's name and the sha256 of its content: an edit is seen even when it keeps
the file's size and modification time (an editor that restores the mtime, a copy with `cp -p`, two
saves within the file system's timestamp granularity). The files are small, so hashing them once
a second (settings.RELOAD_EVERY) costs nothing worth measuring beside loading the policy itself.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from engine.policy.loader import Policy


class PolicyWatcher:
    """The policy's files as last seen; `changed(policy)` says whether any was edited, added or removed."""

    def __init__(self, config_path: Path, policy: Policy):
        self.config_path = config_path
        self.snapshot = self._take(policy)  # the folders the running policy names, not the default names

    def _take(self, policy: Policy) -> tuple[tuple[str, str | None], ...]:
        files = [self.config_path]
        for folder in (policy.config.paths.workflows, policy.config.paths.rules):
            path = self.config_path.parent / folder
            if path.is_dir():
                files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        out: list[tuple[str, str | None]] = []  # None: the file could not be read
        for f in files:
            try:
                out.append((str(f), hashlib.sha256(f.read_bytes()).hexdigest()))
            except OSError:
                out.append((str(f), None))
        return tuple(out)

    def changed(self, policy: Policy) -> bool:
        current = self._take(policy)
        if current != self.snapshot:
            self.snapshot = current
            return True
        return False
