"""The OpenAPI document of /api/v1 (`python -m engine.server.openapi > docs/openapi.json`)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from engine.policy.spec import HttpSpec


def document() -> str:
    """The document as committed: built without a store (the routes do not depend on one)."""
    from engine.server.app import create_app

    stand_in = SimpleNamespace(policy=SimpleNamespace(config=SimpleNamespace(http=HttpSpec())))
    return json.dumps(create_app(stand_in).openapi(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(document(), end="")
