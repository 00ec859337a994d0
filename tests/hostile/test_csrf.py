"""CSRF on every form: each form the site renders carries a token, and each URL that handles a
form or a page's JSON call refuses, with 403 and no change, a POST that lacks it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

import pytest
from django.conf import settings
from django.test import Client

from registry.models import AuditEvent, Case, ImageHash, RegisteredImage
from tests.factories import RegisteredCase, dihedral_payload, random_dihedral, register_case

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

pytestmark = pytest.mark.django_db

ADMIN = "/" + settings.ADMIN_PATH
TOKEN = "csrfmiddlewaretoken"


@dataclass
class Form:
    method: str
    action: str
    fields: dict[str, str]


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._open: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._open = Form(values.get("method", "get").lower(), values.get("action", ""), {})
            self.forms.append(self._open)
        elif tag in {"input", "button", "select", "textarea"} and self._open and "name" in values:
            self._open.fields.setdefault(values["name"], values.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def forms_of(response: Response, page: str) -> list[Form]:
    parser = _Forms()
    parser.feed(response.content.decode())
    for form in parser.forms:
        form.action = form.action or page
    return parser.forms


def credentials(person: RegisteredCase) -> dict[str, str]:
    return {"case_reference": person.case.reference, "case_secret": person.secret}


def pages(client: Client, person: RegisteredCase) -> dict[str, Response]:
    """Every page that shows a form, as a person's browser reaches it."""
    return {
        "/": client.get("/"),
        "/register": client.get("/register"),
        "/status": client.get("/status"),
        "/status (wrong secret)": client.post(
            "/status", {**credentials(person), "case_secret": "AAAA-AAAA-AAAA-AAAA"}
        ),
        "/status (a case)": client.post("/status", credentials(person)),
        "/status/withdraw (confirm)": client.post("/status/withdraw", credentials(person)),
        "/receipt/verify": client.get("/receipt/verify"),
        "/receipt/verify (checked)": client.post("/receipt/verify", {"receipt": "nothing"}),
        "/transparency": client.get("/transparency"),
        f"{ADMIN}login/": client.get(f"{ADMIN}login/"),
    }


# Every URL a form or a page's script posts to, with a body that would otherwise be accepted.
def handlers(person: RegisteredCase) -> dict[str, dict[str, Any]]:
    image = dihedral_payload(random_dihedral())
    return {
        "/i18n/setlang/": {"data": {"language": "fr", "next": "/"}},
        "/status": {"data": credentials(person)},
        "/status/withdraw": {"data": {**credentials(person), "confirm": "yes"}},
        "/receipt/verify": {"data": {"receipt": "nothing"}},
        "/register/submit": {
            "data": json.dumps(
                {
                    "scope": "intimate",
                    "attestations": {
                        "depicted_or_acting_for": True,
                        "rights_to_register": True,
                        "minor_depicted": False,
                    },
                    "images": [image],
                }
            ),
            "content_type": "application/json",
        },
        "/status/photos": {
            "data": json.dumps({**credentials(person), "images": [image]}),
            "content_type": "application/json",
        },
        f"{ADMIN}login/": {"data": {"username": "admin", "password": "a long admin password"}},
    }


def snapshot() -> tuple[int, int, int, int, bool]:
    return (
        Case.objects.count(),
        RegisteredImage.objects.count(),
        ImageHash.objects.count(),
        AuditEvent.objects.count(),
        Case.objects.filter(withdrawn_at__isnull=True).exists(),
    )


@pytest.fixture
def person() -> RegisteredCase:
    return register_case(images=1)


def test_every_post_form_carries_a_csrf_token_and_posts_to_a_checked_url(
    client: Client, person: RegisteredCase
) -> None:
    seen: set[str] = set()
    for page, response in pages(client, person).items():
        assert response.status_code < 500, page
        for form in forms_of(response, page.split(" ")[0]):
            if form.method != "post":
                continue
            assert form.fields.get(TOKEN), f"a form on {page} posting to {form.action}"
            seen.add(form.action)

    # The forms seen post only to URLs whose refusal is tested below, and each of those URLs
    # that a form posts to was seen with its token.
    assert seen <= handlers(person).keys()
    assert seen >= {"/i18n/setlang/", "/status", "/status/withdraw", "/receipt/verify"}


@pytest.mark.parametrize(
    "url",
    [
        "/i18n/setlang/",
        "/status",
        "/status/withdraw",
        "/receipt/verify",
        "/register/submit",
        "/status/photos",
        f"{ADMIN}login/",
    ],
)
def test_a_post_without_the_token_is_refused_and_changes_nothing(
    url: str, person: RegisteredCase, superuser: Any
) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.get("/register")  # The browser holds the CSRF cookie, but the post lacks the token.
    assert browser.cookies.get(settings.CSRF_COOKIE_NAME)
    before = snapshot()

    refused = browser.post(url, **handlers(person)[url])

    assert refused.status_code == 403
    assert snapshot() == before
    assert "django_language" not in refused.cookies


@pytest.mark.parametrize("url", ["/status", "/status/withdraw", "/register/submit"])
def test_the_same_post_with_the_token_is_not_refused(url: str, person: RegisteredCase) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.get("/register")
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value

    answered = browser.post(url, **handlers(person)[url], headers={"X-CSRFToken": token})

    assert answered.status_code in {200, 201}
