"""The people's pages (registry/web/), through Django's test client, in English and French.

Every refusal is checked to change nothing; the case secret must never appear in a URL or a
receipt, and every failure a page can cause is a 4xx with a message for the person.
"""

from __future__ import annotations

import gettext
import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.conf import settings
from django.test import Client
from django.test.utils import override_settings

from registry import receipts
from registry.codes import TERMS_VERSION
from registry.models import AuditEvent, Case, ConsentRecord, ImageHash, RegisteredImage
from registry.pdq import fingerprint
from registry.receipts import VerificationStatus
from registry.web.help import help_resources
from tests.factories import RegisteredCase, dihedral_payload, random_dihedral, random_hash

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]
PAGES = ["/", "/register", "/status", "/receipt/verify"]
FRENCH = {"Accept-Language": "fr-FR,fr;q=0.9"}
ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}


def registration(count: int = 2, **changes: Any) -> dict[str, Any]:
    """A register page's JSON body, as register.js sends it."""
    body: dict[str, Any] = {
        "scope": "intimate",
        "attestations": {
            "depicted_or_acting_for": True,
            "rights_to_register": True,
            "minor_depicted": False,
        },
        "images": [dihedral_payload(random_dihedral()) for _ in range(count)],
    }
    body.update(changes)
    return body


def post_json(
    client: Client, url: str, body: object, headers: dict[str, str] | None = None
) -> Response:
    return client.post(url, data=json.dumps(body), content_type="application/json", headers=headers)


def error_code(response: Response) -> str:
    code: str = json.loads(response.content)["error"]["code"]
    return code


def credentials(person: RegisteredCase) -> dict[str, str]:
    return {"case_reference": person.case.reference, "case_secret": person.secret}


def snapshot() -> tuple[int, int, int, int]:
    return (
        Case.objects.count(),
        RegisteredImage.objects.count(),
        ImageHash.objects.count(),
        AuditEvent.objects.count(),
    )


# --- Every page -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", PAGES)
def test_every_page_is_served_with_a_strict_policy_and_no_inline_code(
    client: Client, url: str
) -> None:
    response = client.get(url, headers=ENGLISH)
    html = response.content.decode()

    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert response["Referrer-Policy"] == "same-origin"
    # No inline script, no inline style, no event handler attribute, nothing loaded from
    # elsewhere (links to help services are navigation, not loads).
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)
    assert not re.search(r"\ssrc=\"(?:https?:)?//", html)
    assert not re.search(r"<link[^>]*\shref=\"(?:https?:)?//", html)


@pytest.mark.parametrize(
    ("url", "english", "french"),
    [
        ("/", "Stop your photos from being published", "Empêchez la publication"),
        ("/register", "Protect my photos", "Protéger mes photos"),
        ("/status", "Lost your secret?", "Code secret perdu\u202f?"),
        ("/receipt/verify", "Check a receipt", "Vérifier un reçu"),
    ],
)
def test_pages_speak_the_browsers_language(
    client: Client, url: str, english: str, french: str
) -> None:
    in_english = client.get(url, headers=ENGLISH).content.decode()
    in_french = client.get(url, headers=FRENCH).content.decode()

    assert english in in_english
    assert '<html lang="en">' in in_english
    assert french in in_french
    assert '<html lang="fr">' in in_french
    assert english not in in_french


def test_the_language_switcher_remembers_the_choice(client: Client) -> None:
    page = client.get("/register", headers=ENGLISH).content.decode()
    assert 'action="/i18n/setlang/"' in page

    response = client.post(
        "/i18n/setlang/", {"language": "fr", "next": "/register"}, headers=ENGLISH
    )

    assert response.status_code == 302
    assert response["Location"] == "/register"
    assert "Protéger mes photos" in client.get("/register", headers=ENGLISH).content.decode()


def test_the_french_catalogue_is_complete_and_compiled() -> None:
    """Every message of the .po file is translated, and the committed .mo holds it."""
    folder = ROOT / "registry" / "locale" / "fr" / "LC_MESSAGES"
    po = (folder / "django.po").read_text(encoding="utf-8")
    with (folder / "django.mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    singular = re.findall(r'^msgid "(.+)"\nmsgstr "(.*)"$', po, flags=re.MULTILINE)
    plural = re.findall(r'^msgid "(.+)"\nmsgid_plural "(.+)"\nmsgstr\[0\] "(.*)"', po, re.MULTILINE)

    assert "#, fuzzy" not in po
    assert not re.search(r'^msgstr(\[\d\])? ""\n\n', po, flags=re.MULTILINE)
    assert len(singular) + len(plural) > 150
    for msgid, msgstr in singular:
        if msgstr:  # A long msgstr continues on the next lines; the .mo holds it whole.
            unquoted = msgid.replace('\\"', '"')
            assert compiled.gettext(unquoted) == msgstr.replace('\\"', '"'), msgid
    for msgid, msgid_plural, _form in plural:
        assert compiled.ngettext(msgid, msgid_plural, 2) != msgid_plural, msgid


# --- Home -----------------------------------------------------------------------------------


def test_home_says_what_the_registry_cannot_do_and_where_to_find_help(client: Client) -> None:
    html = client.get("/", headers=ENGLISH).content.decode()

    for limit in [
        "cropped by more than about a third",
        "turned by more than about 6 degrees",
        "changes the face",
        "does not remove a photo",
    ]:
        assert limit in html
    for resource in ["3018", "internet-signalement.gouv.fr", "stopncii.org", "takeitdown"]:
        assert resource in html
    assert 'href="tel:3018"' in html
    assert "Partner platforms (social networks" in html  # No partner named: a general sentence.


def test_home_lists_partners_and_resources_from_the_operators_file(
    client: Client, tmp_path: Path
) -> None:
    data = {
        "partners": ["Exemple Social", "PhotoEdit AI"],
        "regions": [
            {
                "title": {"en": "In Belgium", "fr": "En Belgique"},
                "resources": [
                    {
                        "name": "Child Focus",
                        "description": {"en": "A helpline.", "fr": "Une ligne d'écoute."},
                        "phone": "116 000",
                        "url": "https://childfocus.be/",
                    }
                ],
            }
        ],
    }
    path = tmp_path / "help.json"
    path.write_text(json.dumps(data), encoding="utf-8")

    with override_settings(HELP_RESOURCES_FILE=path):
        english = client.get("/", headers=ENGLISH).content.decode()
        french = client.get("/", headers=FRENCH).content.decode()

    assert "Exemple Social" in english
    assert "PhotoEdit AI" in english
    assert "In Belgium" in english
    assert 'href="tel:116000"' in english
    assert "childfocus.be" in english
    assert "En Belgique" in french
    assert "Une ligne d&#x27;écoute." in french


@pytest.mark.parametrize(
    "content",
    ["{not json", '{"regions": [{"title": "x", "resources": [{"name": "x", "url": "http://x"}]}]}'],
    ids=["not-json", "plain-http-link"],
)
def test_a_broken_help_file_falls_back_to_the_bundled_one_and_is_logged(
    client: Client, tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    path = tmp_path / "help.json"
    path.write_text(content, encoding="utf-8")

    with override_settings(HELP_RESOURCES_FILE=path), caplog.at_level(logging.ERROR):
        response = client.get("/", headers=ENGLISH)

    assert response.status_code == 200
    assert "internet-signalement.gouv.fr" in response.content.decode()
    assert any("HELP_RESOURCES_FILE" in record.getMessage() for record in caplog.records)


def test_help_resources_fall_back_to_english_for_a_missing_language(tmp_path: Path) -> None:
    path = tmp_path / "help.json"
    path.write_text(
        json.dumps({"regions": [{"title": {"en": "Elsewhere"}, "resources": []}]}),
        encoding="utf-8",
    )
    assert help_resources("fr", path).regions[0].title == "Elsewhere"


# --- Register ---------------------------------------------------------------------------------


def test_the_register_page_hands_the_worker_and_limits_to_its_script(client: Client) -> None:
    response = client.get("/register", headers=ENGLISH)
    html = response.content.decode()

    assert response.cookies["csrftoken"].value
    assert 'data-worker-url="/static/registry/hash-worker.js"' in html
    assert f'data-max-images="{settings.REGISTRY_MAX_IMAGES_PER_REQUEST}"' in html
    assert 'data-min-quality="50"' in html
    assert 'data-submit-url="/register/submit"' in html


def test_a_registration_opens_a_case_and_answers_a_signed_receipt(client: Client) -> None:
    body = registration(2, scope="no_sexual_edit")
    body["attestations"]["minor_depicted"] = True

    response = post_json(client, "/register/submit", body, headers=FRENCH)

    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    answer = json.loads(response.content)
    case = Case.objects.get(reference=answer["case_reference"])
    assert case.is_active
    assert case.images.count() == 2
    assert case.consent.scope == ConsentRecord.Scope.NO_SEXUAL_EDIT
    assert case.consent.minor_depicted is True
    assert case.consent.language == "fr"
    assert case.consent.terms_version == TERMS_VERSION
    # The secret opens the case; it is in the answer, never in the receipt.
    secret = answer["case_secret"]
    assert Client().post("/status", credentials_of(case, secret)).status_code == 200
    verification = receipts.receipt_verify(answer["receipt"])
    assert verification.status is VerificationStatus.VALID
    assert verification.receipt is not None
    assert verification.receipt.reference == case.reference
    assert verification.receipt.fingerprints == tuple(
        fingerprint(bytes.fromhex(image["hashes"][0])) for image in body["images"]
    )
    assert secret not in answer["receipt"]
    # The page shows the reference and the secret once, marked for the page's script and tests.
    html = answer["receipt_html"]
    assert f'data-case-reference="{case.reference}"' in html
    assert f'data-case-secret="{secret}"' in html
    assert "Vos photos sont enregistrées" in html


def test_the_receipt_comes_in_every_language_for_the_language_switch(client: Client) -> None:
    answer = json.loads(post_json(client, "/register/submit", registration(1)).content)

    by_language = answer["receipt_html_by_language"]
    assert set(by_language) == {"en", "fr"}
    assert "Your photos are registered" in by_language["en"]
    assert "Vos photos sont enregistrées" in by_language["fr"]
    # The protection's label too (a lazy translation, rendered in each language).
    assert "Image intime" in by_language["fr"]
    assert "Intimate image" in by_language["en"]
    for html in by_language.values():
        assert f'data-case-secret="{answer["case_secret"]}"' in html
        assert "data-secret-saved" in html


def credentials_of(case: Case, secret: str) -> dict[str, str]:
    return {"case_reference": case.reference, "case_secret": secret}


def test_registration_refuses_a_request_without_the_csrf_token() -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.get("/register")
    before = snapshot()

    refused = post_json(browser, "/register/submit", registration(), headers=ENGLISH)

    assert refused.status_code == 403
    assert error_code(refused) == "csrf_failed"
    assert "Reload the page" in json.loads(refused.content)["error"]["message"]
    assert snapshot() == before

    token = browser.cookies["csrftoken"].value
    accepted = post_json(
        browser, "/register/submit", registration(), headers={"X-CSRFToken": token}
    )
    assert accepted.status_code == 201


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ([1, 2], 400, "invalid_request"),
        (registration(scope="everything"), 400, "scope_invalid"),
        (registration(scope=None), 400, "scope_invalid"),
        (registration(attestations=None), 400, "attestation_required"),
        (
            registration(
                attestations={
                    "depicted_or_acting_for": True,
                    "rights_to_register": False,
                    "minor_depicted": False,
                }
            ),
            400,
            "attestation_required",
        ),
        (
            registration(
                attestations={
                    "depicted_or_acting_for": "yes",
                    "rights_to_register": True,
                    "minor_depicted": False,
                }
            ),
            400,
            "attestation_required",
        ),
        (
            registration(attestations={"depicted_or_acting_for": True, "rights_to_register": True}),
            400,
            "minor_required",
        ),
        (registration(0), 400, "images_required"),
        (registration(images="many"), 400, "images_required"),
        (registration(images=[["not", "an", "object"]]), 400, "invalid_request"),
        (registration(images=[{"hashes": ["00" * 32] * 8, "quality": 90}]), 422, "hash_all_zero"),
        (registration(images=[{"hashes": ["ab"] * 8, "quality": 90}]), 422, "hash_malformed"),
        (
            registration(images=[{"hashes": [random_hash().hex()] * 7, "quality": 90}]),
            422,
            "hash_variant_count",
        ),
        (
            registration(images=[{"hashes": [random_hash().hex()] * 8, "quality": 49}]),
            422,
            "quality_too_low",
        ),
        (
            registration(images=[{"hashes": [random_hash().hex()] * 8, "quality": "90"}]),
            422,
            "quality_invalid",
        ),
    ],
    ids=[
        "not-an-object",
        "unknown-scope",
        "no-scope",
        "no-attestations",
        "rights-not-attested",
        "attestation-not-a-boolean",
        "minor-not-answered",
        "no-images",
        "images-not-a-list",
        "image-not-an-object",
        "all-zero-hash",
        "malformed-hash",
        "seven-variants",
        "low-quality",
        "quality-as-text",
    ],
)
def test_registration_refuses_bad_input_with_a_4xx_and_changes_nothing(
    client: Client, body: object, status: int, code: str
) -> None:
    before = snapshot()

    response = post_json(client, "/register/submit", body, headers=ENGLISH)

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert error_code(response) == code
    assert json.loads(response.content)["error"]["message"]
    assert snapshot() == before


def test_a_refusal_locates_the_bad_hash_and_speaks_french(client: Client) -> None:
    images = [dihedral_payload(random_dihedral()) for _ in range(2)]
    hashes = images[1]["hashes"]
    assert isinstance(hashes, list)
    hashes[3] = "zz" * 32

    response = post_json(client, "/register/submit", registration(images=images), headers=FRENCH)

    assert response.status_code == 422
    error = json.loads(response.content)["error"]
    assert error["details"] == {"image": 1, "index": 3}
    assert error["message"].startswith("L\u2019empreinte d\u2019une photo")


@pytest.mark.parametrize(
    ("content_type", "data", "status", "code"),
    [
        ("text/plain", "{}", 415, "unsupported_media_type"),
        ("application/json", "{not json", 400, "malformed_json"),
        ("application/json", b"\xff\xfe", 400, "malformed_json"),
    ],
)
def test_registration_refuses_a_body_that_is_not_json(
    client: Client, content_type: str, data: str | bytes, status: int, code: str
) -> None:
    response = client.post("/register/submit", data=data, content_type=content_type)

    assert response.status_code == status
    assert error_code(response) == code


@override_settings(REGISTRY_MAX_IMAGES_PER_REQUEST=3)
def test_registration_refuses_too_many_photos_at_once(client: Client) -> None:
    response = post_json(client, "/register/submit", registration(4), headers=ENGLISH)

    assert response.status_code == 413
    assert error_code(response) == "too_many_images"
    assert "at most 3 photos" in json.loads(response.content)["error"]["message"]
    assert Case.objects.count() == 0


@pytest.mark.parametrize("url", ["/register/submit", "/status/photos", "/status/withdraw"])
def test_the_actions_refuse_get(client: Client, url: str) -> None:
    assert client.get(url).status_code == 405


# A day's window, so the fixed window cannot end between the requests.
@override_settings(PUBLIC_CASE_RATE="2/d")
def test_registrations_are_limited_per_client(client: Client) -> None:
    for _ in range(2):
        assert post_json(client, "/register/submit", registration(1)).status_code == 201

    limited = post_json(client, "/register/submit", registration(1), headers=ENGLISH)

    assert limited.status_code == 429
    assert error_code(limited) == "rate_limited"
    assert Case.objects.count() == 2
