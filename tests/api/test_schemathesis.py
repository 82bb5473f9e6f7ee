"""schemathesis against the gateway's own OpenAPI document: the records endpoints and the
OAuth2 token endpoint, fed valid and invalid data (positive and negative generation)
with a records client's token, an administrator's token, or client credentials.

Checks: no 5xx, responses conform to the documented schemas, every 4xx body is the API's
error shape ({"error", "detail"}; the OAuth endpoint adds RFC 6749's
"error_description"), and afterwards nothing invalid is stored and the audit chain holds.
Bounded (a few dozen examples per operation and mode) and deterministic (derandomize).
"""

from __future__ import annotations

import base64
import re
import threading
import time

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from emergency.records import EpisodeType, RecordKind, ReportKind, ThreatLevel
from gateway.app import create_app
from gateway.config import load_config
from gateway.runtime import Gateway
from tests.api.test_records_api import SECRET, write_site
from tests.conftest import free_port

MAX_EXAMPLES = 40
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


@pytest.fixture
def served(tmp_path):
    """The gateway on its own thread and loop, so schemathesis' blocking client can call it."""
    gateway = Gateway(load_config(write_site(tmp_path)))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(gateway), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "gateway did not start"
        time.sleep(0.02)
    yield gateway, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)


def error_shape(ctx, response, case) -> None:
    """Every client error is {"error", "detail"} (plus error_description at /oauth/token)."""
    if not 400 <= response.status_code < 500:
        return
    body = response.json()
    allowed = [{"error", "detail"}]
    if case.path == "/oauth/token":
        allowed.append({"error", "detail", "error_description"})
    assert isinstance(body, dict) and set(body) in allowed, f"not the error shape: {body!r}"
    assert isinstance(body["error"], str) and isinstance(body["detail"], str) and body["detail"]


def test_records_api_against_its_openapi_document(served) -> None:
    gateway, base = served
    token = httpx.post(
        f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=("records", SECRET)
    ).json()["access_token"]
    admin = gateway.tokens.issue("admin", ttl=600)[0]
    basic = "Basic " + base64.b64encode(f"records:{SECRET}".encode()).decode()

    schema = schemathesis.openapi.from_url(f"{base}/openapi.json").include(
        path_regex=r"^/(api/v1/records/|oauth/token)"
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == {
        "POST /api/v1/records/threats",
        "POST /api/v1/records/restraints",
        "POST /api/v1/records/reports",
        "GET /api/v1/records/reports",
        "POST /oauth/token",
    }

    for operation in operations:
        if operation.path == "/oauth/token":
            auth = basic
        elif operation.method.upper() == "GET":
            auth = f"Bearer {admin}"
        else:
            auth = f"Bearer {token}"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=MAX_EXAMPLES,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case) -> None:
                case.call_and_validate(
                    base_url=base,
                    headers={"Authorization": auth},
                    checks=[not_a_server_error, response_schema_conformance, error_shape],
                )

            run()

    # nothing invalid was stored
    site = gateway.config.site
    links = gateway.records.links()
    assert {link.kind for link in links} == set(RecordKind), "positive cases should have stored every kind"
    for link in links:
        assert link.building in site.buildings, link
        assert _ID.match(link.source) and _ID.match(link.external_id) and len(link.external_id) <= 128, link
        if link.kind is RecordKind.THREAT:
            assert ThreatLevel(link.fields["classification"]) and set(link.fields) == {
                "classification",
                "status",
                "opened_at",
            }
        elif link.kind is RecordKind.RESTRAINT:
            assert EpisodeType(link.fields["type"])
            assert set(link.fields) == {"type", "location", "start", "end", "open"}
            assert (
                gateway.records.covering(link.building, link.fields["location"])
                or link.fields["location"] in site.buildings[link.building].zones
            )
        else:
            assert ReportKind(link.fields["kind"]) and set(link.fields) == {"kind", "occurred_at"}
    assert gateway.audit.verify().ok


WHOLE_API_EXAMPLES = 15


def test_whole_api_with_an_administrators_token_has_no_server_errors(served) -> None:
    """Every operation of the OpenAPI document, called with an administrator's token on
    valid and invalid data, answers something other than 5xx (a few examples each, so the
    run stays short; derandomized, so a failure reproduces)."""
    gateway, base = served
    admin = gateway.tokens.issue("admin", ttl=3600)[0]
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    documented = {f"{op.method.upper()} {op.path}" for op in operations}
    assert {"GET /api/v1/audit/events", "POST /api/v1/emergencies", "POST /oauth/token"} <= documented
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=WHOLE_API_EXAMPLES,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case) -> None:
                case.call_and_validate(
                    base_url=base,
                    headers={"Authorization": f"Bearer {admin}"},
                    checks=[not_a_server_error],
                    timeout=20,
                )

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid (no parameters, or free-text path ids)
                assert mode is GenerationMode.NEGATIVE, operation.path
            except Exception as exc:  # collect every operation's finding, then fail once
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}"[:2000])
    assert not failures, "\n\n".join(failures)
    assert gateway.audit.verify().ok
