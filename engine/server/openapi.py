"""The OpenAPI document of /api/v1 (`python -m engine.server.openapi > docs/openapi.json`), and
`document_problems(app)`: every error answer in it documented as the problem+json it is."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, cast

from engine.policy.spec import HttpSpec

# Every error is an RFC 9457 problem (engine.server.app.problem); the document says so for each operation.
PROBLEM_SCHEMA = {
    "title": "Problem", "type": "object", "required": ["type", "title", "status"], "additionalProperties": True,
    "properties": {"type": {"type": "string", "description": "stable URI of the kind of problem"},
                   "title": {"type": "string"}, "status": {"type": "integer"},
                   "detail": {"type": "string", "description": "what went wrong, for a person to read"}},
}
EVERY_OPERATION = {"401": "no valid token or session (`WWW-Authenticate: Bearer`)", "413": "request body too large",
                   "422": "invalid request", "503": "store unavailable"}


def document_problems(app) -> None:
    """Make `app.openapi()` document every 4xx/5xx answer as application/problem+json with the
    Problem schema, and the answers every /api/v1 operation may give (EVERY_OPERATION)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        doc = generate()
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's own 422 body, never sent
            schemas.pop(name, None)
        for path, operations in doc["paths"].items():
            for operation in operations.values():
                responses = operation["responses"]
                if path.startswith("/api/v1"):
                    for code, text in EVERY_OPERATION.items():
                        responses.setdefault(code, {"description": text})
                if "requestBody" in operation:
                    responses.setdefault("400", {"description": "the body is not JSON"})
                for code, answer in responses.items():
                    if code[0] in "45":
                        answer["content"] = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        return doc

    app.openapi = openapi


def document() -> str:
    """The document as committed: built without a store (the routes do not depend on one)."""
    from engine.server.app import create_app
    from engine.service import Deployment

    # Building the app reads only `policy.config.http`; the routes, which need the store, never run.
    stand_in = cast(Deployment, SimpleNamespace(policy=SimpleNamespace(config=SimpleNamespace(http=HttpSpec()))))
    return json.dumps(create_app(stand_in).openapi(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(document(), end="")
