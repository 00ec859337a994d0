"""The status page: checking a case, withdrawing it and adding photos to it."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.test.utils import override_settings

from registry import receipts
from registry.models import AuditEvent, Case, ImageHash, RegisteredImage
from registry.receipts import VerificationStatus
from tests.factories import RegisteredCase, dihedral_payload, random_dihedral
from tests.registry.web.test_views import (
    ENGLISH,
    FRENCH,
    credentials,
    error_code,
    post_json,
    snapshot,
)

pytestmark = pytest.mark.django_db

# --- Status ---------------------------------------------------------------------------------


def test_the_status_form_asks_for_the_secret_in_a_post_form(client: Client) -> None:
    html = client.get("/status", headers=ENGLISH).content.decode()

    assert re.search(r'<form class="narrow-form" method="post" action="/status">', html)
    assert 'name="case_secret"' in html
    assert 'type="password"' in html


def test_the_status_shows_an_active_case_with_its_dates_and_photos(
    client: Client, person: RegisteredCase
) -> None:
    response = client.post("/status", credentials(person), headers=ENGLISH)
    html = response.content.decode()

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert 'data-case-status="active"' in html
    assert person.case.reference in html
    assert 'data-case-photos="2"' in html
    assert "Intimate image: never publish it" in html
    assert "Registered on" in html
    # The next steps carry the credentials in POST bodies only.
    assert 'action="/status/withdraw"' in html
    assert 'action="/status/photos"' in html
    assert not re.search(r'href="[^"]*' + re.escape(person.secret), html)


def test_the_status_accepts_a_secret_typed_loosely(client: Client, person: RegisteredCase) -> None:
    typed = person.secret.lower().replace("-", " ")

    response = client.post(
        "/status", {"case_reference": person.case.reference.lower(), "case_secret": typed}
    )

    assert response.status_code == 200
    assert 'data-case-status="active"' in response.content.decode()


@pytest.mark.parametrize(
    "wrong",
    [
        {"case_secret": "AAAA-AAAA-AAAA-AAAA"},
        {"case_reference": "RMP-00000-00000"},
        {"case_reference": "nonsense"},
        {"case_secret": ""},
    ],
    ids=["wrong-secret", "unknown-reference", "malformed-reference", "empty-secret"],
)
def test_the_status_refuses_wrong_credentials_alike(
    client: Client, person: RegisteredCase, wrong: dict[str, str]
) -> None:
    response = client.post("/status", {**credentials(person), **wrong}, headers=FRENCH)
    html = response.content.decode()

    assert response.status_code == 403
    assert "Aucun dossier ne correspond" in html
    assert "data-case-status" not in html


def test_the_status_refuses_a_post_without_the_csrf_token(person: RegisteredCase) -> None:
    browser = Client(enforce_csrf_checks=True)

    response = browser.post("/status", credentials(person), headers=ENGLISH)

    assert response.status_code == 403
    assert "Your session has expired" in response.content.decode()


# A day's window: django-ratelimit's windows are fixed, and a minute's could end between the
# requests (the count would start again and the last request pass).
@override_settings(PUBLIC_CASE_RATE="2/d")
def test_status_checks_are_limited_per_client(client: Client, person: RegisteredCase) -> None:
    for _ in range(2):
        client.post("/status", {**credentials(person), "case_secret": "AAAA-AAAA-AAAA-AAAA"})

    response = client.post("/status", credentials(person), headers=ENGLISH)

    assert response.status_code == 429
    assert "Too many attempts" in response.content.decode()


# --- Withdraw -------------------------------------------------------------------------------


def test_withdrawal_asks_for_confirmation_first(client: Client, person: RegisteredCase) -> None:
    response = client.post("/status/withdraw", credentials(person), headers=ENGLISH)
    html = response.content.decode()

    assert response.status_code == 200
    assert "Withdraw your case?" in html
    assert 'name="confirm" value="yes"' in html
    person.case.refresh_from_db()
    assert person.case.is_active


def test_a_confirmed_withdrawal_stops_matching_and_says_so(
    client: Client, person: RegisteredCase
) -> None:
    response = client.post(
        "/status/withdraw", {**credentials(person), "confirm": "yes"}, headers=FRENCH
    )
    html = response.content.decode()

    assert response.status_code == 200
    assert "La recherche de vos photos est arrêtée" in html
    assert 'data-case-status="withdrawn"' in html
    person.case.refresh_from_db()
    assert person.case.status == Case.Status.WITHDRAWN
    assert not RegisteredImage.objects.matchable().filter(case=person.case).exists()

    again = client.post("/status/withdraw", {**credentials(person), "confirm": "yes"})
    assert again.status_code == 200
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CASE_WITHDRAWN).count() == 1


def test_a_withdrawal_answers_a_signed_receipt_that_says_when_the_hashes_go(
    client: Client, person: RegisteredCase
) -> None:
    response = client.post(
        "/status/withdraw", {**credentials(person), "confirm": "yes"}, headers=ENGLISH
    )
    html = response.content.decode()

    person.case.refresh_from_db()
    withdrawn_at = person.case.withdrawn_at
    assert withdrawn_at is not None
    text = re.search(r"<pre[^>]*data-receipt-text>(.*?)</pre>", html, flags=re.DOTALL)
    assert text is not None
    verification = receipts.receipt_verify(text.group(1))
    assert verification.status is VerificationStatus.VALID
    receipt = verification.receipt
    assert receipt is not None
    assert receipt.event == "withdrawn"
    assert receipt.reference == person.case.reference
    assert receipt.issued_at == withdrawn_at.replace(microsecond=0)
    assert receipt.photos == person.case.images.count()
    expected = withdrawn_at + dt.timedelta(days=settings.TOMBSTONE_RETENTION_DAYS)
    assert receipt.hashes_deleted_after == expected.replace(microsecond=0)
    assert person.secret not in html.split("data-withdrawal-receipt", 1)[1].split("</section>")[0]
    assert "told of the withdrawal at the same moment" in html

    # Checked on the verify page, it reads as a withdrawal.
    verified = client.post("/receipt/verify", {"receipt": text.group(1)}, headers=FRENCH)
    assert 'data-receipt-event="withdrawn"' in verified.content.decode()
    assert "Retrait" in verified.content.decode()


def test_no_withdrawal_receipt_once_the_hashes_are_deleted(
    client: Client, person: RegisteredCase
) -> None:
    client.post("/status/withdraw", {**credentials(person), "confirm": "yes"})
    ImageHash.objects.filter(image__case=person.case).delete()

    again = client.post("/status/withdraw", {**credentials(person), "confirm": "yes"})

    assert again.status_code == 200
    assert "data-withdrawal-receipt" not in again.content.decode()


def test_a_withdrawn_case_shows_as_withdrawn_without_actions(
    client: Client, person: RegisteredCase
) -> None:
    client.post("/status/withdraw", {**credentials(person), "confirm": "yes"})

    html = client.post("/status", credentials(person), headers=ENGLISH).content.decode()

    assert 'data-case-status="withdrawn"' in html
    assert "Withdrawn on" in html
    assert 'action="/status/withdraw"' not in html
    assert 'action="/status/photos"' not in html


def test_withdrawal_refuses_a_wrong_secret_and_changes_nothing(
    client: Client, person: RegisteredCase
) -> None:
    before = snapshot()

    response = client.post(
        "/status/withdraw",
        {**credentials(person), "case_secret": "AAAA-AAAA-AAAA-AAAA", "confirm": "yes"},
    )

    assert response.status_code == 403
    person.case.refresh_from_db()
    assert person.case.is_active
    assert snapshot() == before


def test_withdrawal_refuses_a_post_without_the_csrf_token(person: RegisteredCase) -> None:
    browser = Client(enforce_csrf_checks=True)

    response = browser.post("/status/withdraw", {**credentials(person), "confirm": "yes"})

    assert response.status_code == 403
    person.case.refresh_from_db()
    assert person.case.is_active


# --- Add photos -----------------------------------------------------------------------------


def test_photos_are_added_to_an_active_case_with_a_receipt(
    client: Client, person: RegisteredCase
) -> None:
    images = [dihedral_payload(random_dihedral()) for _ in range(3)]

    response = post_json(
        client, "/status/photos", {**credentials(person), "images": images}, headers=ENGLISH
    )

    assert response.status_code == 201
    answer = json.loads(response.content)
    assert person.case.images.count() == 5
    assert "case_secret" not in answer
    assert person.secret not in answer["receipt_html"]
    verification = receipts.receipt_verify(answer["receipt"])
    assert verification.receipt is not None
    assert verification.receipt.event == "photos-added"
    assert verification.receipt.photos == 3
    assert "Your photos were added to your case" in answer["receipt_html"]


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"case_secret": "AAAA-AAAA-AAAA-AAAA"}, 403, "case_access_denied"),
        ({"case_reference": 12}, 403, "case_access_denied"),
        ({"images": []}, 400, "images_required"),
    ],
)
def test_adding_photos_refuses_bad_requests_and_changes_nothing(
    client: Client, person: RegisteredCase, change: dict[str, Any], status: int, code: str
) -> None:
    body = {**credentials(person), "images": [dihedral_payload(random_dihedral())], **change}
    before = snapshot()

    response = post_json(client, "/status/photos", body)

    assert response.status_code == status
    assert error_code(response) == code
    assert snapshot() == before


def test_photos_cannot_be_added_to_a_withdrawn_case(client: Client, person: RegisteredCase) -> None:
    client.post("/status/withdraw", {**credentials(person), "confirm": "yes"})
    before = snapshot()

    response = post_json(
        client,
        "/status/photos",
        {**credentials(person), "images": [dihedral_payload(random_dihedral())]},
        headers=FRENCH,
    )

    assert response.status_code == 409
    assert error_code(response) == "case_withdrawn"
    assert "nouveau dossier" in json.loads(response.content)["error"]["message"]
    assert snapshot() == before


@override_settings(REGISTRY_MAX_IMAGES_PER_CASE=3)
def test_a_case_cannot_grow_past_its_limit(client: Client, person: RegisteredCase) -> None:
    images = [dihedral_payload(random_dihedral()) for _ in range(2)]

    response = post_json(client, "/status/photos", {**credentials(person), "images": images})

    assert response.status_code == 413
    assert "A case holds at most 3 photos" in json.loads(response.content)["error"]["message"]
    assert person.case.images.count() == 2


def test_adding_photos_refuses_a_request_without_the_csrf_token(person: RegisteredCase) -> None:
    browser = Client(enforce_csrf_checks=True)
    body = {**credentials(person), "images": [dihedral_payload(random_dihedral())]}

    response = post_json(browser, "/status/photos", body)

    assert response.status_code == 403
    assert error_code(response) == "csrf_failed"
    assert person.case.images.count() == 2
