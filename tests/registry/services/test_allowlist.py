"""The allow-list: submissions near a known benign hash are refused on every route, nothing kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from registry.models import AllowListedHash, AuditEvent, Case, ImageHash, RegisteredImage
from registry.pdq import DihedralHashes, distance
from registry.services import allowlist
from registry.services.review import image_submit_by_partner
from tests.conftest import PartnerPersona
from tests.factories import (
    RegisteredCase,
    case_creation_body,
    dihedral_payload,
    near_duplicate,
    random_dihedral,
    random_hash,
)

pytestmark = pytest.mark.django_db

ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}
FRENCH = {"Accept-Language": "fr-FR,fr;q=0.9"}


@pytest.fixture
def listed(superuser: User) -> bytes:
    """A common meme's hash on the allow-list."""
    value = random_hash()
    allowlist.allow_list_add(value=value, label="common meme", added_by_id=superuser.pk)
    return value


def _image_near(value: bytes, bits: int, variant: int = 5) -> DihedralHashes:
    """A photo whose ``variant``-th hash lies ``bits`` bits from ``value``."""
    image = random_dihedral()
    hashes = list(image.hashes)
    hashes[variant] = near_duplicate(value, bits)
    assert distance(hashes[variant], value) == bits
    return DihedralHashes(hashes=tuple(hashes), quality=image.quality)


def _stored() -> tuple[int, int, int]:
    return Case.objects.count(), RegisteredImage.objects.count(), ImageHash.objects.count()


def _post(url: str, body: object, headers: dict[str, str] | None = None) -> Any:
    return Client().post(
        url, data=json.dumps(body), content_type="application/json", headers=headers or ENGLISH
    )


def _registration(*images: DihedralHashes) -> dict[str, Any]:
    return {
        "scope": "intimate",
        "attestations": {
            "depicted_or_acting_for": True,
            "rights_to_register": True,
            "minor_depicted": False,
        },
        "images": [dihedral_payload(image) for image in images],
    }


def _case_api(*images: DihedralHashes) -> dict[str, Any]:
    return case_creation_body([dihedral_payload(image) for image in images])


def _credentials(person: RegisteredCase) -> dict[str, str]:
    return {"case_reference": person.case.reference, "case_secret": person.secret}


def _submit_hashes(persona: PartnerPersona, *values: bytes) -> Any:
    body = {"hashRecords": [{"signalType": "ImagePDQ", "hashValue": v.hex()} for v in values]}
    return Client().post(
        "/v1/SubmitHashes",
        data=json.dumps(body),
        content_type="application/json",
        headers={"Ocp-Apim-Subscription-Key": persona.raw_key, "x-functions-key": "x"},
    )


Route = Callable[[DihedralHashes, RegisteredCase, PartnerPersona], Any]

ROUTES: dict[str, Route] = {
    "web registration": lambda image, person, partner: _post(
        "/register/submit", _registration(random_dihedral(), image)
    ),
    "web add photos": lambda image, person, partner: _post(
        "/status/photos", {**_credentials(person), "images": [dihedral_payload(image)]}
    ),
    "api case": lambda image, person, partner: _post(
        "/api/v1/cases", _case_api(random_dihedral(), image)
    ),
    "api add images": lambda image, person, partner: _post(
        "/api/v1/cases/images", {**_credentials(person), "images": [dihedral_payload(image)]}
    ),
    "partner submission": lambda image, person, partner: _submit_hashes(
        partner, random_hash(), image.hashes[5]
    ),
}


@pytest.mark.parametrize("route", ROUTES)
def test_a_submission_within_the_match_distance_is_refused_and_nothing_is_stored(
    route: str, listed: bytes, person: RegisteredCase, partner_a: PartnerPersona
) -> None:
    before = _stored()

    response = ROUTES[route](_image_near(listed, 31), person, partner_a)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "hash_allow_listed"
    assert error["message"]
    assert _stored() == before
    assert listed.hex() not in response.content.decode()


@pytest.mark.parametrize("route", ROUTES)
def test_a_submission_just_outside_the_match_distance_is_accepted(
    route: str, listed: bytes, person: RegisteredCase, partner_a: PartnerPersona
) -> None:
    before = _stored()

    response = ROUTES[route](_image_near(listed, 32), person, partner_a)

    assert response.status_code in (200, 201)
    assert _stored() != before


def test_the_refusal_locates_the_photo_and_variant_and_speaks_french(listed: bytes) -> None:
    response = _post(
        "/register/submit", _registration(random_dihedral(), _image_near(listed, 3)), FRENCH
    )

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["details"] == {"image": 1, "index": 5}
    assert error["message"].startswith("Une photo ressemble à une image vide")


def test_the_partner_submission_refusal_names_the_offending_record(
    listed: bytes, partner_a: PartnerPersona
) -> None:
    response = _submit_hashes(partner_a, random_hash(), random_hash(), listed)

    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"index": 2}
    with pytest.raises(Exception, match="allow-list"):
        image_submit_by_partner(partner_id=partner_a.partner.pk, hashes=[listed])
    assert RegisteredImage.objects.filter(submitted_by_partner=partner_a.partner.pk).count() == 0


def test_an_entry_takes_effect_at_once_and_its_removal_too(superuser: User) -> None:
    value = random_hash()
    image = _image_near(value, 10)
    assert allowlist.allow_listed_positions(list(image.hashes)) == []  # loads an empty list

    entry = allowlist.allow_list_add(value=value, label="blank", added_by_id=superuser.pk)
    assert allowlist.allow_listed_positions(list(image.hashes)) == [5]

    allowlist.allow_list_remove(entry=entry, removed_by_id=superuser.pk)
    assert allowlist.allow_listed_positions(list(image.hashes)) == []
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", "actor"))
    assert actions == [
        ("allow_list.added", f"staff:{superuser.pk}"),
        ("allow_list.removed", f"staff:{superuser.pk}"),
    ]
    assert not any(value.hex() in json.dumps(e.details) for e in AuditEvent.objects.all())


def test_a_superuser_adds_and_removes_entries_in_the_admin(
    superuser: User, staff_client: Callable[[User], Client]
) -> None:
    client = staff_client(superuser)
    blank = "00" * 32  # a blank image's hash: accepted here, though no submission could hold it

    response = client.post(
        "/admin/registry/allowlistedhash/add/", {"hash_text": blank, "label": "blank image"}
    )

    assert response.status_code == 302
    entry = AllowListedHash.objects.get()
    assert (bytes(entry.value), entry.label, entry.added_by) == (
        bytes(32),
        "blank image",
        superuser,
    )
    listing = client.get("/admin/registry/allowlistedhash/").content.decode()
    assert "blank image" in listing
    assert blank not in listing
    refused = client.post("/admin/registry/allowlistedhash/add/", {"hash_text": "zz", "label": "x"})
    assert refused.status_code == 200
    assert AllowListedHash.objects.count() == 1

    deleted = client.post(f"/admin/registry/allowlistedhash/{entry.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert AllowListedHash.objects.count() == 0
    assert AuditEvent.objects.filter(action="allow_list.removed").count() == 1


def test_a_reviewer_reads_the_allow_list_but_cannot_change_it(
    reviewer: User, listed: bytes, staff_client: Callable[[User], Client]
) -> None:
    client = staff_client(reviewer)
    entry = AllowListedHash.objects.get()

    assert client.get("/admin/registry/allowlistedhash/").status_code == 200
    added = client.post(
        "/admin/registry/allowlistedhash/add/", {"hash_text": "11" * 32, "label": "x"}
    )
    deleted = client.post(f"/admin/registry/allowlistedhash/{entry.pk}/delete/", {"post": "yes"})

    assert added.status_code == 403
    assert deleted.status_code == 403
    assert list(AllowListedHash.objects.values_list("pk", flat=True)) == [entry.pk]
