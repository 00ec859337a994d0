"""Deeply nested JSON, and a scope of the wrong type, are refused with 400, never a 500.

Every route of the URL conf that accepts a JSON POST is found from the URL conf itself and sent
a 2 KB body nested 950 levels deep: Python's parser would recurse past its limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.views import APIView

from registry.jsonsafe import MAX_DEPTH, JsonTooDeep, json_depth, json_loads_bounded
from registry.models import Case
from tests.conftest import PartnerPersona
from tests.factories import dihedral_payload, random_dihedral

pytestmark = pytest.mark.django_db

# The people's pages that take JSON (the others take forms).
PAGE_JSON_ROUTES = {"register-submit", "status-add-photos"}
NESTED = '{"a":' + "[" * 950 + "]" * 950 + "}"


def _patterns(
    patterns: list[URLPattern | URLResolver], prefix: str = ""
) -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern.url_patterns, route)
        else:
            yield route, pattern


def json_post_routes() -> list[str]:
    """The paths of every partner API view with a POST, and of the pages' JSON calls."""
    found = []
    for route, pattern in _patterns(get_resolver().url_patterns):
        view_class = getattr(pattern.callback, "cls", None)
        is_api_post = (
            isinstance(view_class, type)
            and issubclass(view_class, APIView)
            and hasattr(view_class, "post")
        )
        if is_api_post or pattern.name in PAGE_JSON_ROUTES:
            found.append("/" + route)
    return sorted(found)


def test_every_json_post_route_is_found() -> None:
    assert len(json_post_routes()) == 11


def _headers(persona: PartnerPersona) -> dict[str, str]:
    return {
        **persona.auth,
        "Ocp-Apim-Subscription-Key": persona.raw_key,
        "x-functions-key": persona.raw_key,
    }


@pytest.mark.parametrize("path", json_post_routes())
def test_a_deeply_nested_body_is_refused_with_the_error_body(
    client: Client, partner_a: PartnerPersona, path: str
) -> None:
    response = client.post(
        path, NESTED, content_type="application/json", headers=_headers(partner_a)
    )

    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]["code"] == "json_too_deep"
    assert response.json()["error"]["details"] == {"max_depth": MAX_DEPTH}
    assert set(response.json()["error"]) == {"code", "message", "details"}


@pytest.mark.parametrize("scope", [["intimate"], {"intimate": True}, 1, None])
def test_a_registration_whose_scope_is_no_text_is_refused(client: Client, scope: Any) -> None:
    body = {
        "scope": scope,
        "attestations": {
            "depicted_or_acting_for": True,
            "rights_to_register": True,
            "minor_depicted": False,
        },
        "images": [dihedral_payload(random_dihedral())],
    }

    response = client.post("/register/submit", json.dumps(body), content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "scope_invalid"
    assert Case.objects.count() == 0


def test_brackets_inside_strings_are_not_nesting() -> None:
    text = json.dumps({"note": "[" * 100 + "{" * 100, "list": [[1], {"a": "]\\"}]})

    assert json_depth(text.encode()) == 3
    assert json_loads_bounded(text)["note"].startswith("[[[")


def test_the_limit_is_exact() -> None:
    at_limit = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert json_loads_bounded(at_limit) is not None
    with pytest.raises(JsonTooDeep):
        json_loads_bounded("[" + at_limit + "]")
