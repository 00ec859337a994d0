"""POST /api/v1/match: what a platform calls before publishing or running an AI edit."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from registry.match_ids import match_id_decode
from registry.matching.follower import Matcher
from registry.models import MatchCall, RegisteredImage
from registry.services.cases import case_withdraw
from tests.conftest import PartnerPersona
from tests.factories import RegisteredCase, near_duplicate, random_hash, register_case

pytestmark = pytest.mark.django_db


def _match(persona: PartnerPersona, hashes: list[str], **extra: Any) -> Any:
    body = {"hashes": hashes, "purpose": "publish", **extra}
    return Client().post(
        "/api/v1/match", json.dumps(body), content_type="application/json", headers=persona.auth
    )


def test_match_finds_a_registered_photo_and_its_near_duplicates(
    partner_a: PartnerPersona, person: RegisteredCase, match_index: Matcher
) -> None:
    original = person.images[0].hashes[0]
    queries = [original, near_duplicate(original, 31), near_duplicate(original, 32), random_hash()]
    response = _match(partner_a, [value.hex() for value in queries])
    assert response.status_code == 200
    results = response.json()["results"]
    assert [len(result["matches"]) for result in results] == [1, 1, 0, 0]
    match = results[0]["matches"][0]
    assert set(match) == {"match_id", "scope", "minor_depicted", "status", "kind"}
    assert match["kind"] == "whole"
    assert (match["scope"], match["minor_depicted"], match["status"]) == (
        "intimate",
        False,
        "active",
    )
    image = person.case.images.order_by("pk").first()
    assert image is not None
    assert match_id_decode(match["match_id"], partner_id=partner_a.partner.pk) == image.pk


def test_match_catches_a_rotated_copy_through_the_dihedral_hashes(
    partner_a: PartnerPersona, person: RegisteredCase, match_index: Matcher
) -> None:
    rotated = person.images[1].hashes[1]  # what a platform computes on the rotated upload
    results = _match(partner_a, [rotated.hex()]).json()["results"]
    assert len(results[0]["matches"]) == 1


def test_match_reports_each_image_once_across_its_variants(
    partner_a: PartnerPersona, person: RegisteredCase, match_index: Matcher
) -> None:
    hashes = [value.hex() for value in person.images[0].hashes]
    results = _match(partner_a, hashes).json()["results"]
    assert [len(result["matches"]) for result in results] == [1] * 8
    assert len({result["matches"][0]["match_id"] for result in results}) == 1


def test_match_ids_are_stable_for_a_partner_and_differ_between_partners(
    partner_a: PartnerPersona,
    partner_b: PartnerPersona,
    person: RegisteredCase,
    match_index: Matcher,
) -> None:
    query = [person.images[0].hashes[0].hex()]
    first = _match(partner_a, query).json()["results"][0]["matches"][0]["match_id"]
    again = _match(partner_a, query).json()["results"][0]["matches"][0]["match_id"]
    other = _match(partner_b, query).json()["results"][0]["matches"][0]["match_id"]
    assert first == again
    assert other != first
    assert match_id_decode(first, partner_id=partner_b.partner.pk) is None


def test_match_reports_the_scope_and_a_minor_depicted(
    partner_a: PartnerPersona, match_index: Matcher
) -> None:
    registered = register_case(images=1, scope="no_sexual_edit", minor_depicted=True)
    match_index.catch_up()
    response = _match(partner_a, [registered.images[0].hashes[0].hex()], purpose="ai_edit")
    match = response.json()["results"][0]["matches"][0]
    assert (match["scope"], match["minor_depicted"]) == ("no_sexual_edit", True)


def test_a_withdrawn_case_stops_matching_before_the_index_catches_up(
    partner_a: PartnerPersona, person: RegisteredCase, match_index: Matcher
) -> None:
    query = [person.images[0].hashes[0].hex()]
    assert len(_match(partner_a, query).json()["results"][0]["matches"]) == 1
    case_withdraw(case=person.case)  # no catch_up(): the index still holds the hashes
    assert _match(partner_a, query).json()["results"][0]["matches"] == []
    match_index.catch_up()
    assert _match(partner_a, query).json()["results"][0]["matches"] == []


def test_a_new_case_matches_once_the_index_has_caught_up(
    partner_a: PartnerPersona, match_index: Matcher
) -> None:
    registered = register_case(images=1)
    query = [registered.images[0].hashes[0].hex()]
    assert _match(partner_a, query).json()["results"][0]["matches"] == []
    assert match_index.catch_up() == 1
    assert len(_match(partner_a, query).json()["results"][0]["matches"]) == 1


def test_max_distance_may_be_lowered(
    partner_a: PartnerPersona, person: RegisteredCase, match_index: Matcher
) -> None:
    near = near_duplicate(person.images[0].hashes[0], 10).hex()
    assert len(_match(partner_a, [near], max_distance=10).json()["results"][0]["matches"]) == 1
    assert _match(partner_a, [near], max_distance=9).json()["results"][0]["matches"] == []


def test_max_distance_may_not_be_raised(partner_a: PartnerPersona, match_index: Matcher) -> None:
    response = _match(partner_a, [random_hash().hex()], max_distance=32)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert "max_distance" in response.json()["error"]["details"]["fields"]


def test_each_match_call_is_recorded_without_its_hashes(
    partner_a: PartnerPersona, person: RegisteredCase, match_index: Matcher
) -> None:
    queries = [person.images[0].hashes[0].hex(), random_hash().hex()]
    _match(partner_a, queries, purpose="ai_edit")
    call = MatchCall.objects.get()
    assert (call.partner_id, call.purpose, call.hashes, call.matched_hashes, call.matches) == (
        partner_a.partner.pk,
        "ai_edit",
        2,
        1,
        1,
    )
    stored = json.dumps(list(MatchCall.objects.values()), default=str)
    assert queries[0] not in stored


@pytest.mark.parametrize(
    ("hashes", "status", "code", "index"),
    [
        (["zz" * 32], 422, "hash_malformed", 0),
        ([random_hash().hex(), "0" * 64 + "0"], 422, "hash_malformed", 1),
        (["0" * 64, "not a hash"], 422, "hash_malformed", 1),
    ],
)
def test_invalid_hashes_get_422_naming_the_hash(
    partner_a: PartnerPersona,
    match_index: Matcher,
    hashes: list[str],
    status: int,
    code: str,
    index: int,
) -> None:
    response = _match(partner_a, hashes)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["details"] == {"index": index}
    assert MatchCall.objects.count() == 0


def test_more_than_1000_hashes_get_413(partner_a: PartnerPersona, match_index: Matcher) -> None:
    response = _match(partner_a, [random_hash().hex()] * 1001)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_many_hashes"


def test_1000_hashes_are_accepted(partner_a: PartnerPersona, match_index: Matcher) -> None:
    response = _match(partner_a, [random_hash().hex() for _ in range(1000)])
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1000


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{not json", "malformed_json"),
        ("[]", "invalid_request"),
        ('{"hashes": [], "purpose": "publish"}', "invalid_request"),
        ('{"hashes": "abc", "purpose": "publish"}', "invalid_request"),
        ('{"hashes": ["a"], "purpose": "print"}', "invalid_request"),
        ('{"purpose": "publish"}', "invalid_request"),
    ],
)
def test_malformed_bodies_get_400_with_the_error_body(
    partner_a: PartnerPersona, match_index: Matcher, body: str, code: str
) -> None:
    response = Client().post(
        "/api/v1/match", body, content_type="application/json", headers=partner_a.auth
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"code", "message", "details"}


def test_a_disputed_image_keeps_matching_flagged_as_disputed(
    partner_a: PartnerPersona, person: RegisteredCase, match_index: Matcher
) -> None:
    image = person.case.images.order_by("pk").first()
    assert image is not None
    RegisteredImage.objects.filter(pk=image.pk).update(status="disputed")
    matches = _match(partner_a, [person.images[0].hashes[0].hex()]).json()["results"][0]
    assert [match["status"] for match in matches["matches"]] == ["disputed"]


def test_a_suspended_image_no_longer_matches(
    partner_a: PartnerPersona, person: RegisteredCase, match_index: Matcher
) -> None:
    image = person.case.images.order_by("pk").first()
    assert image is not None
    RegisteredImage.objects.filter(pk=image.pk).update(status="suspended")
    assert _match(partner_a, [person.images[0].hashes[0].hex()]).json()["results"][0] == {
        "matches": []
    }


def _few_bits_hash() -> str:
    """64 well-formed hex digits with 40 bits set: what no photo of usable quality hashes to."""
    return ("ff" * 5).ljust(64, "0")


def test_a_blank_image_in_a_batch_is_answered_on_its_own_and_the_others_are_matched(
    partner_a: PartnerPersona, person: RegisteredCase, match_index: Matcher
) -> None:
    registered = person.images[0].hashes[0].hex()
    queries = ["0" * 64, registered, _few_bits_hash(), random_hash().hex(), "F" * 64]
    response = _match(partner_a, queries)
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 5
    assert [result.get("error", {}).get("code") for result in results] == [
        "hash_all_zero",
        None,
        "hash_too_few_bits",
        None,
        "hash_too_many_bits",
    ]
    assert [len(result["matches"]) for result in results] == [0, 1, 0, 0, 0]
    for result in (results[0], results[2], results[4]):
        assert set(result) == {"matches", "error"}
        assert set(result["error"]) == {"code", "message"}
        assert result["error"]["message"]
    assert set(results[1]) == set(results[3]) == {"matches"}
    # Only the matchable hashes are matched and counted.
    call = MatchCall.objects.get()
    assert (call.hashes, call.matched_hashes) == (2, 1)


def test_a_batch_of_only_blank_images_gets_an_answer_for_each(
    partner_a: PartnerPersona, match_index: Matcher
) -> None:
    response = _match(partner_a, ["0" * 64, _few_bits_hash()])
    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {
                "matches": [],
                "error": {
                    "code": "hash_all_zero",
                    "message": "The all-zero hash comes from a blank or unreadable image.",
                },
            },
            {
                "matches": [],
                "error": {
                    "code": "hash_too_few_bits",
                    "message": "A PDQ hash of a real photo has at least 96 bits set.",
                },
            },
        ]
    }


def test_a_malformed_hash_still_refuses_the_whole_batch(
    partner_a: PartnerPersona, person: RegisteredCase, match_index: Matcher
) -> None:
    response = _match(partner_a, ["0" * 64, person.images[0].hashes[0].hex(), "xyz"])
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "hash_malformed"
    assert response.json()["error"]["details"] == {"index": 2}
    assert MatchCall.objects.count() == 0


def test_the_schema_documents_the_per_hash_error(partner_a: PartnerPersona) -> None:
    schema = Client().get("/api/schema/", headers={"Accept": "application/json"})
    assert schema.status_code == 200
    components = json.loads(schema.content)["components"]["schemas"]
    result = next(
        value
        for name, value in components.items()
        if name.endswith("Result") and "matches" in value.get("properties", {})
    )
    assert "error" in result["properties"]
    assert "error" not in result.get("required", [])
