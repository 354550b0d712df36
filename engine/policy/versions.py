"""Workflow versions: the canonical JSON of a spec and the short hash that names its meaning.

How the store keeps a pinned version, and reads older formats of it, is
`WorkflowSpec.to_stored` / `from_stored` (engine.policy.spec.workflows)."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel

from engine.policy.spec import WorkflowSpec


def workflow_version(spec: WorkflowSpec) -> str:
    """A short hash of a workflow's meaning: changes exactly when its definition changes."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:16]


def canonical_json(model: BaseModel) -> str:
    return json.dumps(model.model_dump(mode="json", by_alias=True), sort_keys=True, ensure_ascii=False)
