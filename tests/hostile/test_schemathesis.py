"""schemathesis against the partner API's generated OpenAPI schema, every operation.

Each operation is called with generated valid and invalid input by four callers: a key with
every scope, a key with no scope, no key, and a revoked key. Every answer must be documented in
the schema (status code, headers, body) and none may be a 5xx. The calls go through the WSGI
application in this process, inside the test's database transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.serializers.json import DjangoJSONEncoder
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pytest_django.fixtures import Settings as SettingsWrapper
from schemathesis import checks

from registry.match_ids import match_id_encode
from registry.models import Partner, PartnerKey
from registry.services.distribution import disclosure_record
from registry.services.partners import KeyIssued, partner_key_issue, partner_key_revoke
from tests.conftest import ALL_SCOPES
from tests.factories import (
    RegisteredCase,
    case_creation_body,
    dihedral_payload,
    random_dihedral,
    register_case,
)

# What the schema promises: no server error, and every answer documented (status, headers, body).
# Also that auth is never ignored, required headers are enforced and invalid input is refused.
# (Schema-valid data may still be refused: a hash's bit count or quality is beyond JSON Schema,
# and the API answers it with a documented 422.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
    checks.missing_required_header,
    checks.ignored_auth,
]
CALLERS = ["every_scope", "no_scope", "no_key", "revoked_key"]


def _generated_schema() -> dict[str, Any]:
    """The document /api/schema/ serves, generated the same way (as JSON types)."""
    document = SchemaGenerator().get_schema(request=None, public=True)  # type: ignore[no-untyped-call]
    generated: dict[str, Any] = json.loads(json.dumps(document, cls=DjangoJSONEncoder))
    return generated


schema = schemathesis.openapi.from_dict(_generated_schema())
schema.app = WSGIHandler()
# The callers' keys are sent by the test (below), not generated. Query parameters the API does
# not know are ignored, as StopNCII's client expects, so none are invented.
schema.config.generation.update(with_security_parameters=False, allow_extra_parameters=False)


@pytest.fixture(autouse=True)
def _fuzzing_environment(db: None, settings: SettingsWrapper) -> Iterator[None]:
    settings.ALLOWED_HOSTS = ["localhost", "testserver"]
    settings.PUBLIC_CASE_RATE = "100000/m"
    settings.SYNC_REQUESTS_PER_MINUTE = 100_000
    settings.CASE_CHECK_FAILURES_PER_CLIENT = 100_000
    settings.CASE_CHECK_FAILURES_PER_REFERENCE = 100_000
    # The WSGI handler closes the connection at the end of each request; the test's transaction
    # must outlive the requests, as Django's test client arranges.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _partner_key(name: str, scopes: list[str]) -> KeyIssued:
    partner = Partner.objects.create(name=name, match_hashes_per_minute=10_000_000)
    return partner_key_issue(partner=partner, scopes=scopes)


@pytest.fixture
def fuzz_keys(db: None) -> dict[str, str]:
    """The callers' keys, with a registered case so that matches and feeds have content."""
    register_case(images=2)
    every = _partner_key("Platform with every scope", ALL_SCOPES)
    none = _partner_key("Platform with no scope", ALL_SCOPES)
    PartnerKey.objects.filter(pk=none.key.pk).update(scopes=[])
    revoked = _partner_key("Platform with a revoked key", ALL_SCOPES)
    partner_key_revoke(key=revoked.key)
    return {"every_scope": every.raw, "no_scope": none.raw, "revoked_key": revoked.raw}


def _headers(key: str | None) -> dict[str, str]:
    if key is None:
        return {}
    return {
        "Authorization": f"Bearer {key}",
        "Ocp-Apim-Subscription-Key": key,
        "x-functions-key": key,
    }


@schema.parametrize()
@schema.given(caller=st.sampled_from(CALLERS))
@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_documented_and_none_is_a_server_error(
    case: schemathesis.Case[Any], caller: str, fuzz_keys: dict[str, str]
) -> None:
    case.call_and_validate(headers=_headers(fuzz_keys.get(caller)), checks=CHECKS)


def _image() -> dict[str, Any]:
    return dihedral_payload(random_dihedral())


def _valid_requests(person: RegisteredCase) -> dict[str, dict[str, Any]]:
    """A request each operation accepts, from a key with every scope where one is needed."""
    partner_id = Partner.objects.get(name="Platform with every scope").pk
    image_id = person.case.images.values_list("pk", flat=True)[0]
    match_id = match_id_encode(image_id=image_id, partner_id=partner_id)
    hashes = [value.hex() for value in person.images[0].hashes]
    credentials = {"case_reference": person.case.reference, "case_secret": person.secret}
    return {
        "POST /api/v1/match": {"body": {"hashes": hashes[:2], "purpose": "publish"}},
        "POST /api/v1/cases": {"body": case_creation_body([_image()], language="fr")},
        "POST /api/v1/cases/status": {"body": credentials},
        "POST /api/v1/cases/images": {"body": {**credentials, "images": [_image()]}},
        "POST /api/v1/cases/withdraw": {"body": credentials},
        "POST /api/v1/withdrawals/ack": {"body": {"ids": [match_id]}},
        "GET /api/v1/hashes/changes": {"query": {"limit": 10}},
        "POST /api/v1/feedback": {"body": {"match_id": match_id, "verdict": "blocked"}},
        "GET /v1/FetchHashes": {"query": {"pageSize": 10}},
        "POST /v1/SubmitFeedback": {
            "body": {"hashFeedbacks": [{"hashValue": hashes[0], "feedbackValue": "Blocked"}]}
        },
        "POST /v1/SubmitHashes": {
            "body": {
                "hashRecords": [{"signalType": "ImagePDQ", "hashValue": _image()["hashes"][0]}]
            }
        },
    }


OPERATIONS = [
    f"{method.upper()} {path}"
    for path, methods in _generated_schema()["paths"].items()
    for method in methods
]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_valid_request_is_accepted_and_its_answer_documented(
    operation: str, fuzz_keys: dict[str, str]
) -> None:
    person = register_case(images=1)
    # The partner has received the person's hashes, so feedback and acknowledgements apply.
    disclosure_record(
        partner_id=Partner.objects.get(name="Platform with every scope").pk,
        image_ids=list(person.case.images.values_list("pk", flat=True)),
    )
    method, path = operation.split(" ", 1)
    request = _valid_requests(person)[operation]
    case = schema[path][method].Case(headers=_headers(fuzz_keys["every_scope"]), **request)

    response = case.call_and_validate(checks=[*CHECKS, checks.positive_data_acceptance])

    assert 200 <= response.status_code < 300, response.text


def test_the_served_schema_is_the_one_tested(client: Client) -> None:
    served = client.get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"})

    assert served.status_code == 200
    assert json.loads(served.content) == _generated_schema()
