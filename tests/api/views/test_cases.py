"""The public case endpoints that the web form and helplines use."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from registry.models import AuditEvent, Case, Change, ImageHash, RegisteredImage
from tests.factories import RegisteredCase, case_creation_body, dihedral_payload, random_dihedral

pytestmark = pytest.mark.django_db


def _post(path: str, body: Any, client_address: str = "127.0.0.1") -> Any:
    data = body if isinstance(body, str) else json.dumps(body)
    return Client(REMOTE_ADDR=client_address).post(path, data, content_type="application/json")


def _creation(**changes: Any) -> dict[str, Any]:
    body = case_creation_body(
        [dihedral_payload(random_dihedral()), dihedral_payload(random_dihedral())], language="fr"
    )
    body.update(changes)
    return body


def _counts() -> tuple[int, int, int, int, int]:
    return (
        Case.objects.count(),
        RegisteredImage.objects.count(),
        ImageHash.objects.count(),
        Change.objects.count(),
        AuditEvent.objects.count(),
    )


def test_create_answers_201_with_the_reference_and_secret_once() -> None:
    response = _post("/api/v1/cases", _creation())
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"case_reference", "case_secret"}
    case = Case.objects.get(reference=body["case_reference"])
    assert case.images.count() == 2
    assert ImageHash.objects.filter(image__case=case).count() == 16
    assert body["case_secret"] not in case.secret_digest


def test_create_accepts_uppercase_hashes() -> None:
    image = dihedral_payload(random_dihedral())
    image["hashes"] = [value.hex().upper() for value in random_dihedral().hashes]
    assert _post("/api/v1/cases", _creation(images=[image])).status_code == 201


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"scope": "everything"}, 400, "invalid_request"),
        ({"language": "de"}, 400, "invalid_request"),
        ({"images": []}, 400, "invalid_request"),
        ({"attestations": {"depicted_or_acting_for": True}}, 400, "invalid_request"),
        (
            {
                "attestations": {
                    "depicted_or_acting_for": False,
                    "rights_to_register": True,
                    "minor_depicted": False,
                }
            },
            400,
            "attestation_required",
        ),
        ({"images": [{"hashes": ["ab" * 32] * 7, "quality": 90}]}, 422, "hash_variant_count"),
        ({"images": [{"hashes": ["0" * 64] * 8, "quality": 90}]}, 422, "hash_all_zero"),
        ({"images": [{"hashes": ["ab" * 32] * 8, "quality": 101}]}, 400, "invalid_request"),
        ({"images": [dihedral_payload(random_dihedral(quality=49))]}, 422, "quality_too_low"),
        ({"images": [dihedral_payload(random_dihedral())] * 51}, 413, "too_many_images"),
    ],
)
def test_create_refuses_bad_input_with_a_stable_code_and_stores_nothing(
    changes: dict[str, Any], status: int, code: str
) -> None:
    before = _counts()
    response = _post("/api/v1/cases", _creation(**changes))
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert _counts() == before


def test_an_invalid_hash_is_located_by_image_and_position() -> None:
    bad = dihedral_payload(random_dihedral())
    bad["hashes"][3] = "xyz"  # type: ignore[index]
    response = _post("/api/v1/cases", _creation(images=[dihedral_payload(random_dihedral()), bad]))
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"index": 3, "image": 1}


def test_status_reports_the_case_without_its_hashes(person: RegisteredCase) -> None:
    response = _post(
        "/api/v1/cases/status",
        {"case_reference": person.case.reference, "case_secret": person.secret},
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["case_reference"], body["status"], body["images"], body["active_images"]) == (
        person.case.reference,
        "active",
        2,
        2,
    )
    assert person.images[0].hashes[0].hex() not in response.content.decode()


@pytest.mark.parametrize("path", ["status", "withdraw", "images"])
def test_unknown_reference_and_wrong_secret_get_the_same_answer(
    person: RegisteredCase, path: str
) -> None:
    images = [dihedral_payload(random_dihedral())]
    wrong_secret = _post(
        f"/api/v1/cases/{path}",
        {
            "case_reference": person.case.reference,
            "case_secret": "AAAA-BBBB-CCCC-DDDD",
            "images": images,
        },
    )
    unknown = _post(
        f"/api/v1/cases/{path}",
        {"case_reference": "RMP-00000-00000", "case_secret": person.secret, "images": images},
    )
    assert wrong_secret.status_code == unknown.status_code == 403
    assert wrong_secret.json() == unknown.json()
    assert wrong_secret.json()["error"]["code"] == "case_access_denied"
    assert Case.objects.get(pk=person.case.pk).status == "active"
    assert person.case.images.count() == 2


def test_withdraw_stops_the_case_and_is_idempotent(person: RegisteredCase) -> None:
    credentials = {"case_reference": person.case.reference, "case_secret": person.secret}
    first = _post("/api/v1/cases/withdraw", credentials)
    assert first.status_code == 200
    assert (first.json()["status"], first.json()["active_images"]) == ("withdrawn", 0)
    second = _post("/api/v1/cases/withdraw", credentials)
    assert second.status_code == 200
    assert second.json()["withdrawn_at"] == first.json()["withdrawn_at"]
    assert AuditEvent.objects.filter(action="case.withdrawn").count() == 1


def test_images_adds_photos_to_an_active_case(person: RegisteredCase) -> None:
    response = _post(
        "/api/v1/cases/images",
        {
            "case_reference": person.case.reference,
            "case_secret": person.secret,
            "images": [dihedral_payload(random_dihedral())],
        },
    )
    assert response.status_code == 201
    assert response.json()["images"] == 3


def test_images_are_refused_for_a_withdrawn_case(person: RegisteredCase) -> None:
    credentials = {"case_reference": person.case.reference, "case_secret": person.secret}
    _post("/api/v1/cases/withdraw", credentials)
    response = _post(
        "/api/v1/cases/images", {**credentials, "images": [dihedral_payload(random_dihedral())]}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "case_withdrawn"
    assert person.case.images.count() == 2


def test_credentials_in_the_url_are_never_needed(person: RegisteredCase) -> None:
    response = Client().get(
        "/api/v1/cases/status",
        {"case_reference": person.case.reference, "case_secret": person.secret},
    )
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_public_endpoints_are_rate_limited_per_client(settings: Any) -> None:
    # A day's window, so the fixed window cannot end between the requests.
    settings.PUBLIC_CASE_RATE = "3/d"
    credentials = {"case_reference": "RMP-00000-00000", "case_secret": "AAAA-BBBB-CCCC-DDDD"}
    statuses = [
        _post("/api/v1/cases/status", credentials, client_address="198.51.100.9").status_code
        for _ in range(4)
    ]
    assert statuses == [403, 403, 403, 429]
    limited = _post("/api/v1/cases/status", credentials, client_address="198.51.100.9")
    assert int(limited["Retry-After"]) >= 1
    other_client = _post("/api/v1/cases/status", credentials, client_address="198.51.100.10")
    assert other_client.status_code == 403


def test_an_oversize_body_gets_413_and_stores_nothing(settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    before = _counts()
    response = _post("/api/v1/cases", _creation())
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "body_too_large",
        "message": "The request body is too large.",
        "details": {"max_bytes": 1024},
    }
    assert _counts() == before
