"""The committed OpenAPI document exercised by schemathesis against the ASGI app, in this process.

Every operation gets generated requests (valid and invalid), as a person with a token and with
some instances to find: no answer may be a server error (5xx), and every answer must match what
the document says of it — its status code documented, its content type and its body schema.
`DELETE /api/v1/me/token` is left out: it revokes the very token the run uses (tests/test_cli_client
covers it through `coopflow logout`). `/readyz` may answer 503 (documented): no daemon runs here.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import schemathesis
from conftest import REPO_ROOT, shipped_policy_with_store
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

PASSWORD = "mật khẩu đủ dài 2027"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    from engine.auth import accounts, tokens
    from engine.service import Deployment

    root = tmp_path_factory.mktemp("schemathesis")
    config = shipped_policy_with_store(root, root / "api.db")
    with Deployment.open(config, log_to_files=False) as d:
        store, conf = d.runtime.store, d.policy.config
        for person in ("nguyen_van_a", "dinh_quang_khai"):
            accounts.add_user(store, conf, person, PASSWORD)
        values = {"requester": "dic", "recipient": "police", "subject": "Xin thông tin"}
        ident = d.start("information_exchange", "dic.focal_point:nguyen_van_a", values).instance
        d.fire(ident, "send", "dic.focal_point:nguyen_van_a", {"dispatch_no": "1/STTTT"})
        yield SimpleNamespace(deployment=d, instance=ident,
                              token=tokens.issue(store, conf, "nguyen_van_a", None, False, "schemathesis")[1],
                              admin_token=tokens.issue(store, conf, "dinh_quang_khai", None, False, "schemathesis")[1])


@pytest.fixture(scope="module")
def app(deployed):
    from engine.server.app import create_app

    return create_app(deployed.deployment)


# The committed document (tests/test_api_openapi.py keeps it equal to what the app serves).
schema = schemathesis.openapi.from_dict(json.loads((REPO_ROOT / "docs" / "openapi.json").read_text(encoding="utf-8")))
# Password sign-ins are fuzzed last: their failures lock the (one) client address out, token or not.
SIGN_IN = {"path_regex": r"^/api/v1/(login|session)$", "method": "POST"}
signed_in = schema.exclude(path="/api/v1/me/token", method="DELETE").exclude(**SIGN_IN)
sign_in = schema.include(**SIGN_IN)


def check(case, deployed, app) -> None:
    case.operation.schema.app = app  # requests go to the ASGI app in this process
    token = deployed.admin_token if case.path == "/api/v1/audit" else deployed.token
    if "instance" in (case.path_parameters or {}) and case.path_parameters["instance"].startswith("i"):
        case.path_parameters["instance"] = deployed.instance  # some requests about an instance that exists
    # /readyz answers 503 by design here: no daemon holds the leader lease in this process.
    checks = [c for c in CHECKS if c is not not_a_server_error] if case.path == "/readyz" else CHECKS
    case.call_and_validate(app=app, headers={"Authorization": f"Bearer {token}"}, checks=checks)


@signed_in.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_answer_is_documented_and_none_is_a_server_error(case, deployed, app):
    check(case, deployed, app)


def test_the_token_was_accepted_throughout(deployed, app):
    """The run above acted as a person (no lockout turned it into a run of 401s)."""
    me = signed_in["/api/v1/me"]["GET"]
    me.schema.app = app
    answer = me.Case().call(app=app, headers={"Authorization": f"Bearer {deployed.token}"})
    assert answer.status_code == 200 and answer.json()["person"] == "nguyen_van_a"


@sign_in.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_sign_in_answers_are_documented_too(case, deployed, app):
    check(case, deployed, app)
