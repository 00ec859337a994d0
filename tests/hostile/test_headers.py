"""Security headers and a strict Content-Security-Policy on every answer the site gives.

Every URL pattern the site resolves has a request below (the people's pages in both languages,
the partner API, its schema and docs, the admin, the error pages), and each answer must carry
the headers. A URL pattern added without a request here fails test_every_url_pattern_is_checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.factories import RegisteredCase, register_case

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

pytestmark = pytest.mark.django_db

ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}
FRENCH = {"Accept-Language": "fr-FR,fr;q=0.9"}


@dataclass(frozen=True)
class Visit:
    """One request: what a browser or a partner would send to this URL pattern."""

    method: str
    path: str
    data: dict[str, Any] | str | None = None
    content_type: str | None = None
    needs_case: bool = False
    # The people's pages are asked for in both languages.
    languages: tuple[dict[str, str], ...] = (ENGLISH,)
    extra: dict[str, str] = field(default_factory=dict)


BOTH = (ENGLISH, FRENCH)
ADMIN = "/" + settings.ADMIN_PATH


def _json(body: object) -> dict[str, Any]:
    return {"data": json.dumps(body), "content_type": "application/json"}


# Every URL pattern of registry/urls.py and api/urls.py, by its route text. The admin site counts
# as one pattern: its own pages are the admin's to test, its login page is checked here.
VISITS: dict[str, list[Visit]] = {
    "health": [Visit("GET", "/health")],
    "ready": [Visit("GET", "/ready")],
    settings.ADMIN_PATH: [Visit("GET", f"{ADMIN}login/", languages=BOTH), Visit("GET", ADMIN)],
    "i18n/setlang/": [Visit("POST", "/i18n/setlang/", data={"language": "fr", "next": "/"})],
    "api/v1/match": [Visit("POST", "/api/v1/match", **_json({}))],
    "api/v1/cases": [Visit("POST", "/api/v1/cases", **_json({}))],
    "api/v1/cases/status": [Visit("POST", "/api/v1/cases/status", **_json({}))],
    "api/v1/cases/withdraw": [Visit("POST", "/api/v1/cases/withdraw", **_json({}))],
    "api/v1/cases/images": [Visit("POST", "/api/v1/cases/images", **_json({}))],
    "api/v1/withdrawals/ack": [Visit("POST", "/api/v1/withdrawals/ack", **_json({}))],
    "api/v1/hashes/changes": [Visit("GET", "/api/v1/hashes/changes")],
    "api/v1/feedback": [Visit("POST", "/api/v1/feedback", **_json({}))],
    "v1/FetchHashes": [Visit("GET", "/v1/FetchHashes")],
    "v1/SubmitFeedback": [Visit("POST", "/v1/SubmitFeedback", **_json({}))],
    "v1/SubmitHashes": [Visit("POST", "/v1/SubmitHashes", **_json({}))],
    "api/schema/": [Visit("GET", "/api/schema/")],
    "api/docs/": [Visit("GET", "/api/docs/")],
    "^(?:api|v1)/": [Visit("GET", "/api/v1/no-such-thing"), Visit("GET", "/v1/NoSuchThing")],
    "": [Visit("GET", "/", languages=BOTH)],
    "register": [Visit("GET", "/register", languages=BOTH)],
    "register/submit": [Visit("POST", "/register/submit", languages=BOTH, **_json({}))],
    "status": [
        Visit("GET", "/status", languages=BOTH),
        Visit("POST", "/status", needs_case=True, languages=BOTH),
    ],
    "status/photos": [Visit("POST", "/status/photos", languages=BOTH, **_json({}))],
    "status/withdraw": [Visit("POST", "/status/withdraw", needs_case=True, languages=BOTH)],
    "receipt/verify": [
        Visit("GET", "/receipt/verify", languages=BOTH),
        Visit("POST", "/receipt/verify", data={"receipt": "not a receipt"}, languages=BOTH),
    ],
    "receipt/public-key.pem": [Visit("GET", "/receipt/public-key.pem")],
    "transparency": [Visit("GET", "/transparency", languages=BOTH)],
    "transparency.csv": [Visit("GET", "/transparency.csv")],
    "legal": [Visit("GET", "/legal", languages=BOTH)],
    "privacy": [Visit("GET", "/privacy", languages=BOTH)],
    "leave": [Visit("GET", "/leave")],
}


def url_patterns() -> Iterator[str]:
    """The route text of every URL pattern the site resolves (the admin site as one)."""

    def walk(patterns: list[URLPattern | URLResolver], prefix: str) -> Iterator[str]:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                if pattern.namespace == "admin":
                    yield route
                else:
                    yield from walk(pattern.url_patterns, route)
            else:
                yield route

    yield from walk(get_resolver().url_patterns, "")


def test_every_url_pattern_is_checked() -> None:
    resolved = set(url_patterns())

    assert resolved - VISITS.keys() == set(), "URL patterns with no visit in VISITS"
    assert VISITS.keys() - resolved == set(), "visits of URL patterns that no longer exist"


def _send(
    client: Client, visit: Visit, language: dict[str, str], case: RegisteredCase | None
) -> Response:
    data: Any = visit.data
    if visit.needs_case:
        assert case is not None
        data = {"case_reference": case.case.reference, "case_secret": case.secret}
    headers = {**language, **visit.extra}
    if visit.method == "GET":
        return client.get(visit.path, headers=headers, secure=True)
    if visit.content_type is not None:
        return client.post(
            visit.path, data=data, content_type=visit.content_type, headers=headers, secure=True
        )
    return client.post(visit.path, data=data or {}, headers=headers, secure=True)


def _answers() -> Iterator[tuple[str, Callable[[Client, RegisteredCase], Response]]]:
    for visits in VISITS.values():
        for visit in visits:
            for language in visit.languages:
                label = f"{visit.method} {visit.path} [{language['Accept-Language'][:2]}]"

                def answer(
                    client: Client,
                    case: RegisteredCase,
                    visit: Visit = visit,
                    language: dict[str, str] = language,
                ) -> Response:
                    return _send(client, visit, language, case)

                yield label, answer


def _error_pages() -> Iterator[tuple[str, Callable[[Client, RegisteredCase], Response]]]:
    yield "404 page", lambda client, case: client.get("/no-such-page", secure=True)
    yield (
        "404 page [fr]",
        lambda client, case: client.get("/pas-de-page", headers=FRENCH, secure=True),
    )
    yield (
        "400 page (unknown host)",
        lambda client, case: client.get("/", headers={"Host": "evil.example"}, secure=True),
    )
    yield (
        "403 page (no CSRF token)",
        lambda client, case: Client(enforce_csrf_checks=True).post(
            "/status", {"case_reference": "x", "case_secret": "y"}, secure=True
        ),
    )
    yield (
        "403 JSON (no CSRF token)",
        lambda client, case: Client(enforce_csrf_checks=True).post(
            "/register/submit", "{}", content_type="application/json", secure=True
        ),
    )


ANSWERS = dict([*_answers(), *_error_pages()])


def _directives(policy: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


@pytest.fixture
def case() -> RegisteredCase:
    return register_case(images=1)


@pytest.mark.parametrize("label", list(ANSWERS))
def test_every_answer_carries_the_security_headers(
    label: str, client: Client, case: RegisteredCase
) -> None:
    response = ANSWERS[label](client, case)

    # /ready answers 503 until this process's index is loaded; nothing else may fail.
    assert response.status_code < 500 or label.startswith("GET /ready"), response.content[:300]
    policy = _directives(response["Content-Security-Policy"])
    scripts = policy.get("script-src", policy.get("default-src"))
    assert scripts is not None
    assert "'unsafe-inline'" not in scripts
    assert "'unsafe-eval'" not in scripts
    assert "*" not in scripts
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "includeSubDomains" in response["Strict-Transport-Security"]


# Powerful browser features the pages never use: denied to the site and to anything it embeds.
DENIED_FEATURES = ["camera", "microphone", "geolocation", "payment", "usb", "display-capture"]


@pytest.mark.parametrize("label", ["GET / [en]", "GET /register [fr]", "GET /api/schema/ [en]"])
def test_every_answer_denies_powerful_browser_features(
    label: str, client: Client, case: RegisteredCase
) -> None:
    response = ANSWERS[label](client, case)

    features = {
        name.strip(): value.strip()
        for name, _, value in (
            part.partition("=") for part in response["Permissions-Policy"].split(",")
        )
    }
    for feature in DENIED_FEATURES:
        assert features[feature] == "()"
