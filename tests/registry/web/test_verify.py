"""The receipt check (/verify) and the next steps offered for images of a minor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from django.test import Client

from registry import receipts
from registry.web.help import help_resources
from tests.registry.web.test_views import ENGLISH, FRENCH, post_json, registration

pytestmark = pytest.mark.django_db

# --- Verify ---------------------------------------------------------------------------------


def _signed_text(client: Client) -> str:
    answer = json.loads(post_json(client, "/register/submit", registration()).content)
    text: str = answer["receipt"]
    return text


def test_the_verify_page_publishes_the_public_key(client: Client) -> None:
    html = client.get("/receipt/verify", headers=ENGLISH).content.decode()

    assert receipts.public_key_base64() in html
    assert receipts.key_id(receipts.public_key()) in html
    assert 'href="/receipt/public-key.pem"' in html


def test_the_public_key_is_served_in_pem(client: Client) -> None:
    response = client.get("/receipt/public-key.pem")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    key = serialization.load_pem_public_key(response.content)
    assert key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    ) == receipts.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def test_a_genuine_receipt_is_confirmed(client: Client) -> None:
    text = _signed_text(client)

    response = client.post("/receipt/verify", {"receipt": text}, headers=FRENCH)
    html = response.content.decode()

    assert response.status_code == 200
    assert 'data-verdict="valid"' in html
    assert "Ce reçu est authentique" in html
    assert "Image intime" in html


def test_a_changed_receipt_is_shown_as_tampered(client: Client) -> None:
    text = _signed_text(client).replace("Photos: 2", "Photos: 3")

    html = client.post("/receipt/verify", {"receipt": text}, headers=ENGLISH).content.decode()

    assert 'data-verdict="tampered"' in html
    assert "This receipt has been changed" in html


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Dear officer, please find my receipt.", "This is not a complete receipt"),
        (
            "Rempart receipt\nKey: 0000000000000000\nSignature: " + "A" * 86 + "==",
            "This receipt was not signed by this registry",
        ),
    ],
)
def test_text_that_is_not_our_receipt_is_invalid(client: Client, text: str, message: str) -> None:
    html = client.post("/receipt/verify", {"receipt": text}, headers=ENGLISH).content.decode()

    assert 'data-verdict="invalid"' in html
    assert message in html


def test_an_empty_verification_is_a_400_with_a_field_error(client: Client) -> None:
    response = client.post("/receipt/verify", {"receipt": "   "}, headers=ENGLISH)

    assert response.status_code == 400
    assert "Paste the text of a receipt first." in response.content.decode()
    assert 'aria-invalid="true"' in response.content.decode()


def test_verification_refuses_a_post_without_the_csrf_token() -> None:
    response = Client(enforce_csrf_checks=True).post("/receipt/verify", {"receipt": "x"})

    assert response.status_code == 403


# --- Minors ---------------------------------------------------------------------------------


def test_the_register_page_holds_the_next_steps_for_minors(client: Client) -> None:
    html = client.get("/register", headers=FRENCH).content.decode()
    panel = html.split("data-minor-help", 1)[1].split("</section>", 1)[0]

    assert "Si la personne avait moins de 18" in panel
    for address in [
        "tel:3018",
        "tel:119",
        "https://www.pointdecontact.net/",
        "https://www.internet-signalement.gouv.fr/",
        "https://takeitdown.ncmec.org/",
    ]:
        assert f'href="{address}"' in panel, address
    assert "tel:17" not in panel  # Help for every case, not for minors in particular.


@pytest.mark.parametrize("minor", [True, False])
def test_the_receipt_of_a_minors_photos_offers_the_next_steps(client: Client, minor: bool) -> None:
    body = registration(1)
    body["attestations"]["minor_depicted"] = minor

    answer = json.loads(post_json(client, "/register/submit", body, headers=ENGLISH).content)

    assert ("data-minor-help" in answer["receipt_html"]) is minor
    assert ("Point de Contact" in answer["receipt_html"]) is minor
    assert ("Si la personne avait moins de 18" in answer["receipt_html_by_language"]["fr"]) is minor


def test_a_help_file_that_marks_minors_wrongly_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "help.json"
    path.write_text(
        json.dumps(
            {
                "regions": [
                    {
                        "title": "X",
                        "resources": [{"name": "A", "description": "B", "minors": "yes"}],
                    }
                ]
            }
        )
    )

    # The bundled file is used instead, with its resources for minors.
    assert len(help_resources("en", path).for_minors()) == 5
