"""docs/openapi.json is the API's contract: it must match what the app serves (regenerate with
`python -m engine.server.openapi > docs/openapi.json`)."""

import json
from pathlib import Path

from engine.server.openapi import document

DOC = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


def test_committed_openapi_is_current():
    assert json.loads(DOC.read_text(encoding="utf-8")) == json.loads(document()), \
        "docs/openapi.json is stale: python -m engine.server.openapi > docs/openapi.json"
