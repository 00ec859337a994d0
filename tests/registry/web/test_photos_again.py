"""A photo already in a case is not added twice, and the person is told how many were."""

from __future__ import annotations

import datetime as dt
import json

from django.test import Client
from django.utils import translation

from registry.models import Change, ImageHash, Partner
from registry.services.cases import case_add_images
from registry.templatetags.registry_dates import long_datetime
from tests.factories import RegisteredCase, dihedral_payload, random_dihedral
from tests.registry.web.test_views import (
    ENGLISH,
    FRENCH,
    credentials,
    error_code,
    post_json,
    snapshot,
)


def test_the_service_adds_a_photo_already_in_the_case_once(person: RegisteredCase) -> None:
    new = random_dihedral()
    added = case_add_images(case=person.case, images=[person.images[0], new, new])
    assert len(added) == 1
    assert person.case.images.count() == 3
    assert ImageHash.objects.filter(image__case=person.case, value=new.hashes[0]).count() == 1
    assert case_add_images(case=person.case, images=[person.images[1]]) == []
    assert person.case.images.count() == 3


def test_the_page_says_how_many_were_added_and_how_many_the_case_protects(
    client: Client, person: RegisteredCase
) -> None:
    images = [person.images[0], random_dihedral(), random_dihedral()]
    body = {**credentials(person), "images": [dihedral_payload(image) for image in images]}

    response = post_json(client, "/status/photos", body, headers=ENGLISH)

    assert response.status_code == 201
    html = json.loads(response.content)["receipt_html"]
    assert "2 photos added." in html
    assert "Your case now protects 4 photos." in html
    assert "1 photo was already in your case: it is not counted twice." in html
    assert person.case.images.count() == 4
    assert Change.objects.filter(image__case=person.case, kind="added").count() == 4


def test_the_page_says_so_in_french(client: Client, person: RegisteredCase) -> None:
    body = {
        **credentials(person),
        "images": [dihedral_payload(person.images[1]), dihedral_payload(random_dihedral())],
    }
    html = json.loads(post_json(client, "/status/photos", body, headers=FRENCH).content)[
        "receipt_html"
    ]
    assert "1 photo ajoutée." in html
    assert "Votre dossier protège maintenant 3 photos." in html
    assert "1 photo figurait déjà dans votre dossier" in html


def test_only_photos_already_in_the_case_add_nothing_and_say_why(
    client: Client, person: RegisteredCase
) -> None:
    body = {**credentials(person), "images": [dihedral_payload(person.images[0])]}
    before = snapshot()

    response = post_json(client, "/status/photos", body, headers=ENGLISH)

    assert response.status_code == 409
    assert error_code(response) == "photos_already_in_case"
    assert "already protected by your case" in json.loads(response.content)["error"]["message"]
    assert snapshot() == before


def test_the_home_page_and_the_receipt_name_the_partners_that_agreed(
    client: Client, person: RegisteredCase
) -> None:
    Partner.objects.create(name="Named Social", listed_publicly=True)
    Partner.objects.create(name="edit-co", public_name="EditCo AI", listed_publicly=True)
    Partner.objects.create(name="Quiet Platform")  # did not agree to be named
    Partner.objects.create(name="Gone Social", listed_publicly=True, is_active=False)

    home = client.get("/", headers=ENGLISH).content.decode()
    body = {**credentials(person), "images": [dihedral_payload(random_dihedral())]}
    receipt = json.loads(post_json(client, "/status/photos", body, headers=ENGLISH).content)[
        "receipt_html"
    ]

    assert "<li>EditCo AI</li><li>Named Social</li>" in home
    assert "EditCo AI, Named Social." in receipt
    for page in (home, receipt):
        assert "Quiet Platform" not in page
        assert "Gone Social" not in page
        assert "edit-co" not in page


def test_dates_on_the_pages_are_written_in_full_with_the_french_first_of_the_month(
    client: Client, person: RegisteredCase
) -> None:
    first = dt.datetime(2026, 12, 1, 9, 15, tzinfo=dt.UTC)
    with translation.override("fr"):
        assert long_datetime(first) == "1er décembre 2026, 09:15"
    with translation.override("en"):
        assert long_datetime(first) == "1 December 2026, 09:15"
    html = client.post("/status", credentials(person), headers=FRENCH).content.decode()
    registered = person.case.created_at
    with translation.override("fr"):
        assert f"{long_datetime(registered)} UTC</time>" in html
