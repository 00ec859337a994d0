"""The partner API reads JSON types as the schema declares them: no silent conversions.

A quality sent as text, a boolean sent as 1, a tag sent as a number or an empty query value is
refused with 400 ``invalid_request``, not turned into something the client did not send.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from registry.models import Case, Feedback
from tests.conftest import PartnerPersona
from tests.factories import case_creation_body, dihedral_payload, random_dihedral

pytestmark = pytest.mark.django_db


def _case(**changes: Any) -> dict[str, Any]:
    body = case_creation_body([dihedral_payload(random_dihedral())])
    body.update(changes)
    return body


def _with_quality(quality: object) -> dict[str, Any]:
    image = dihedral_payload(random_dihedral())
    image["quality"] = quality
    return _case(images=[image])


@pytest.mark.parametrize(
    "body",
    [
        _with_quality("90"),
        _with_quality(True),
        _case(terms_version=2026),
        _case(
            attestations={
                "depicted_or_acting_for": 1,
                "rights_to_register": "true",
                "minor_depicted": False,
            }
        ),
    ],
    ids=["quality as text", "quality as boolean", "terms as number", "attestations as 1"],
)
def test_a_case_with_converted_types_is_refused_and_not_opened(
    client: Client, body: dict[str, Any]
) -> None:
    refused = client.post("/api/v1/cases", json.dumps(body), content_type="application/json")

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_request"
    assert Case.objects.count() == 0


def test_the_valid_case_of_these_is_opened(client: Client) -> None:
    opened = client.post("/api/v1/cases", json.dumps(_case()), content_type="application/json")

    assert opened.status_code == 201


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/match", {"hashes": ["0" * 64], "purpose": "publish", "max_distance": "5"}),
        ("/api/v1/feedback", {"match_id": 12345, "verdict": "blocked"}),
        ("/api/v1/feedback", {"match_id": "m_x", "verdict": "blocked", "tags": [1]}),
        ("/v1/SubmitFeedback", {"hashFeedbacks": [{"hashValue": 5, "feedbackValue": "Blocked"}]}),
        ("/v1/SubmitHashes", {"hashRecords": [{"signalType": 1, "hashValue": "0" * 64}]}),
        ("/v1/SubmitHashes", {"count": "1", "hashRecords": [{"signalType": "ImagePDQ"}]}),
    ],
)
def test_partner_calls_with_converted_types_are_refused(
    client: Client, partner_a: PartnerPersona, path: str, body: dict[str, Any]
) -> None:
    headers = {
        **partner_a.auth,
        "Ocp-Apim-Subscription-Key": partner_a.raw_key,
        "x-functions-key": partner_a.raw_key,
    }

    refused = client.post(path, json.dumps(body), content_type="application/json", headers=headers)

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_request"
    assert Feedback.objects.count() == 0


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/hashes/changes?limit=",
        "/v1/FetchHashes?pageSize=",
        "/v1/FetchHashes?startTimestamp=",
    ],
)
def test_an_empty_query_value_is_refused_not_read_as_the_default(
    client: Client, partner_a: PartnerPersona, url: str
) -> None:
    headers = {
        **partner_a.auth,
        "Ocp-Apim-Subscription-Key": partner_a.raw_key,
        "x-functions-key": partner_a.raw_key,
    }

    refused = client.get(url, headers=headers)

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_request"
