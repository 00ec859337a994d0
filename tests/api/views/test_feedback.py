"""POST /api/v1/feedback, and the partner counts a person sees on their case."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from registry.match_ids import match_id_encode
from registry.models import Feedback, RegisteredImage
from registry.selectors.cases import case_partner_counts
from registry.services.distribution import disclosure_record, feedback_record
from registry.services.partners import partner_key_issue
from tests.conftest import PartnerPersona
from tests.factories import RegisteredCase

pytestmark = pytest.mark.django_db

ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}
FRENCH = {"Accept-Language": "fr-FR,fr;q=0.9"}


def _post(body: Any, headers: dict[str, str]) -> Any:
    return Client().post(
        "/api/v1/feedback", json.dumps(body), content_type="application/json", headers=headers
    )


def _image(person: RegisteredCase) -> RegisteredImage:
    return RegisteredImage.objects.filter(case=person.case).order_by("pk")[0]


def test_a_verdict_on_a_match_id_is_recorded(
    partner_a: PartnerPersona, person: RegisteredCase
) -> None:
    image = _image(person)
    match_id = match_id_encode(image_id=image.pk, partner_id=partner_a.partner.pk)

    response = _post({"match_id": match_id, "verdict": "blocked", "tags": ["ncii"]}, partner_a.auth)

    assert response.status_code == 201
    assert response.json()["verdict"] == "blocked"
    (feedback,) = Feedback.objects.all()
    assert (feedback.partner_id, feedback.image_id) == (partner_a.partner.pk, image.pk)
    assert feedback.tags == ["ncii"]


def test_a_match_id_issued_to_another_partner_is_not_found(
    partner_a: PartnerPersona, partner_b: PartnerPersona, person: RegisteredCase
) -> None:
    a_id = match_id_encode(image_id=_image(person).pk, partner_id=partner_a.partner.pk)

    response = _post({"match_id": a_id, "verdict": "not_blocked"}, partner_b.auth)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "match_not_found"
    assert Feedback.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"match_id": "m_" + "a" * 26, "verdict": "blocked"}, 404, "match_not_found"),
        ({"match_id": "nonsense", "verdict": "blocked"}, 404, "match_not_found"),
        ({"match_id": "MATCH", "verdict": "deleted"}, 400, "invalid_request"),
        ({"verdict": "blocked"}, 400, "invalid_request"),
        ({"match_id": "MATCH", "verdict": "blocked", "tags": "ncii"}, 400, "invalid_request"),
    ],
)
def test_malformed_feedback_is_refused(
    partner_a: PartnerPersona, person: RegisteredCase, body: dict[str, Any], status: int, code: str
) -> None:
    if body.get("match_id") == "MATCH":
        body = {
            **body,
            "match_id": match_id_encode(
                image_id=_image(person).pk, partner_id=partner_a.partner.pk
            ),
        }

    response = _post(body, partner_a.auth)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert Feedback.objects.count() == 0


@pytest.mark.parametrize(
    ("caller", "status", "code"),
    [("no key", 401, "key_required"), ("revoked", 401, "key_invalid"), ("no scope", 403, None)],
)
def test_feedback_authorization_matrix(
    partner_a: PartnerPersona,
    revoked_partner: PartnerPersona,
    person: RegisteredCase,
    caller: str,
    status: int,
    code: str | None,
) -> None:
    headers: dict[str, str] = {}
    if caller == "revoked":
        headers = revoked_partner.auth
    elif caller == "no scope":
        issued = partner_key_issue(partner=partner_a.partner, scopes=["match", "sync"])
        headers = {"Authorization": f"Bearer {issued.raw}"}
    match_id = match_id_encode(image_id=_image(person).pk, partner_id=partner_a.partner.pk)

    response = _post({"match_id": match_id, "verdict": "blocked"}, headers)

    assert response.status_code == status
    assert response.json()["error"]["code"] == (code or "scope_missing")
    assert Feedback.objects.count() == 0


def test_the_case_counts_distinct_partners_that_received_and_blocked(
    partner_a: PartnerPersona, partner_b: PartnerPersona, person: RegisteredCase
) -> None:
    images = list(RegisteredImage.objects.filter(case=person.case).values_list("pk", flat=True))
    disclosure_record(partner_id=partner_a.partner.pk, image_ids=images)
    disclosure_record(partner_id=partner_b.partner.pk, image_ids=images[:1])
    feedback_record(partner_id=partner_a.partner.pk, image_ids=images, verdict="blocked")
    feedback_record(partner_id=partner_b.partner.pk, image_ids=images, verdict="not_blocked")

    counts = case_partner_counts(case=person.case)
    status = Client().post(
        "/api/v1/cases/status",
        json.dumps({"case_reference": person.case.reference, "case_secret": person.secret}),
        content_type="application/json",
    )
    page = Client().post(
        "/status",
        {"case_reference": person.case.reference, "case_secret": person.secret},
        headers=ENGLISH,
    )
    french = Client().post(
        "/status",
        {"case_reference": person.case.reference, "case_secret": person.secret},
        headers=FRENCH,
    )

    assert (counts.received, counts.blocked) == (2, 1)
    assert status.json()["partners_received"] == 2
    assert status.json()["partners_blocked"] == 1
    html = page.content.decode()
    assert 'data-partners-received="2" data-partners-blocked="1"' in html
    assert "2 platforms have received your photos' hashes" in html
    assert "1 has confirmed blocking a copy" in html
    assert "2 plateformes ont reçu les empreintes de vos photos" in french.content.decode()
