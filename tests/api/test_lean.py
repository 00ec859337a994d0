"""The lean routes (api/lean.py) answer as Django does, header by header and byte by byte.

Each request is sent twice through WSGI, as gunicorn sends it: once to the registry's
application (the lean routes in front of Django, registry/wsgi.py) and once to Django's own
handler. The answers must be the same: status, body and every header. Whether the lean route
answered (rather than passing the request on) is seen from Django's ``request_started`` signal,
which only Django's handler sends.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections
from pytest_django.fixtures import Settings as SettingsWrapper

from api.lean import LeanRoutes
from registry.keycache import key_cache
from registry.matching.follower import Matcher
from registry.models import MatchCall, Partner
from registry.services.partners import partner_key_issue
from tests.conftest import PartnerPersona
from tests.factories import random_hash, register_case, wait_for_a_fresh_minute
from tests.processes import wait_until

pytestmark = pytest.mark.django_db

# Retry-After counts the seconds left in the minute: the two answers may be a second apart.
_VARIES = {"retry-after"}


@dataclass
class Sent:
    status: str
    headers: dict[str, str]
    body: bytes
    through_django: bool


@pytest.fixture
def routes() -> Iterator[tuple[LeanRoutes, WSGIHandler]]:
    # As Django's test client does: the test's transaction must outlive each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    django = WSGIHandler()
    try:
        yield LeanRoutes(django), django
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _send(
    app: Any,
    body: bytes | None,
    *,
    method: str = "POST",
    path: str = "/api/v1/match",
    headers: dict[str, str] | None = None,
    query: str = "",
) -> Sent:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body or b""),
        "wsgi.errors": sys.stderr,
        "CONTENT_TYPE": "application/json",
    }
    if body is not None:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    answered: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], _: Any = None) -> None:
        answered["status"] = status
        answered["headers"] = response_headers

    seen: list[bool] = []

    def started(**_: Any) -> None:
        seen.append(True)

    request_started.connect(started, dispatch_uid="lean-test")
    try:
        content = b"".join(app(environ, start_response))
    finally:
        request_started.disconnect(dispatch_uid="lean-test")
    names = [name.lower() for name, _ in answered["headers"]]
    assert len(names) == len(set(names)), names  # no header twice
    return Sent(
        answered["status"],
        {name.lower(): value for name, value in answered["headers"]},
        content,
        bool(seen),
    )


def _same(lean: Sent, django: Sent) -> None:
    assert lean.status == django.status
    assert lean.body == django.body
    assert set(lean.headers) == set(django.headers)
    for name, value in lean.headers.items():
        if name not in _VARIES:
            assert (name, value) == (name, django.headers[name])


def _body(hashes: list[str], **extra: Any) -> bytes:
    return json.dumps({"hashes": hashes, "purpose": "publish", **extra}).encode()


def _auth(persona: PartnerPersona) -> dict[str, str]:
    return {"Authorization": persona.auth["Authorization"]}


def test_a_plain_call_with_a_match_is_answered_by_the_lean_route_as_django_answers_it(
    routes: tuple[LeanRoutes, WSGIHandler], partner_a: PartnerPersona, match_index: Matcher
) -> None:
    registered = register_case(images=1)
    match_index.catch_up()
    lean, django = routes
    body = _body([registered.images[0].hashes[0].hex(), random_hash().hex()])

    by_lean = _send(lean, body, headers=_auth(partner_a))
    by_django = _send(django, body, headers=_auth(partner_a))

    assert not by_lean.through_django
    assert by_django.through_django
    _same(by_lean, by_django)
    results = json.loads(by_lean.body)["results"]
    assert [len(result["matches"]) for result in results] == [1, 0]
    assert results[0]["matches"][0]["kind"] == "whole"
    assert MatchCall.objects.count() == 2  # both recorded, the lean one too


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Forwarded-Proto": "https"},  # behind nginx: HSTS
        {"Accept-Language": "fr-FR,fr;q=0.9"},
        {"Accept": "application/json"},
        {"Content-Type": "application/json; charset=utf-8"},
    ],
    ids=["plain", "https", "french", "accept-json", "charset"],
)
def test_the_lean_route_gives_every_header_django_gives(
    routes: tuple[LeanRoutes, WSGIHandler],
    partner_a: PartnerPersona,
    match_index: Matcher,
    headers: dict[str, str],
) -> None:
    lean, django = routes
    body = _body([random_hash().hex()], max_distance=31)
    sent = {**_auth(partner_a), **headers}

    by_lean = _send(lean, body, headers=sent)
    by_django = _send(django, body, headers=sent)

    assert not by_lean.through_django
    _same(by_lean, by_django)
    if "X-Forwarded-Proto" in headers:
        assert "strict-transport-security" in by_lean.headers


def _other_key(persona: PartnerPersona, scopes: list[str]) -> dict[str, str]:
    raw = partner_key_issue(partner=persona.partner, scopes=scopes).raw
    return {"Authorization": f"Bearer {raw}"}


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("no key", "401"),
        ("unknown key", "401"),
        ("revoked key", "401"),
        ("sync scope only", "403"),
        ("lower distance without sync", "403"),
        ("malformed hash", "422"),
        ("a flat image's hash", "200"),
        ("views", "200"),
        ("unknown field", "200"),
        ("key in the query", "400"),
        ("too many hashes", "413"),
        ("not JSON", "400"),
        ("text body", "415"),
        ("html wanted", "406"),
        ("unknown host", "400"),
        ("purpose missing", "400"),
    ],
)
def test_what_is_not_a_plain_call_is_answered_by_django_unchanged(
    routes: tuple[LeanRoutes, WSGIHandler],
    partner_a: PartnerPersona,
    revoked_partner: PartnerPersona,
    match_index: Matcher,
    case: str,
    status: str,
) -> None:
    lean, django = routes
    one = random_hash().hex()
    body: bytes = _body([one])
    headers = _auth(partner_a)
    query = ""
    if case == "no key":
        headers = {}
    elif case == "unknown key":
        headers = {"Authorization": "Bearer rmp_0000000000_" + "0" * 40}
    elif case == "revoked key":
        headers = _auth(revoked_partner)
    elif case == "sync scope only":
        headers = _other_key(partner_a, ["sync"])
    elif case == "lower distance without sync":
        headers = _other_key(partner_a, ["match"])
        body = _body([one], max_distance=20)
    elif case == "malformed hash":
        body = _body([one, "zz" * 32])
    elif case == "a flat image's hash":
        body = _body([one, "00" * 32])
    elif case == "views":
        body = _body([one], views=[{"mirror": random_hash().hex()}])
    elif case == "unknown field":
        body = _body([one], note="anything")
    elif case == "key in the query":
        query = "api_key=rmp_x"
    elif case == "too many hashes":
        body = _body([one] * 1001)
    elif case == "not JSON":
        body = b'{"hashes": ['
    elif case == "text body":
        headers = {**headers, "Content-Type": "text/plain"}
    elif case == "html wanted":
        headers = {**headers, "Accept": "text/html"}
    elif case == "unknown host":
        headers = {**headers, "Host": "elsewhere.example"}
    elif case == "purpose missing":
        body = json.dumps({"hashes": [one]}).encode()

    by_lean = _send(lean, body, headers=headers, query=query)
    by_django = _send(django, body, headers=headers, query=query)

    assert by_lean.through_django
    assert by_lean.status.split()[0] == status
    _same(by_lean, by_django)


def test_a_call_over_budget_is_refused_by_the_lean_route_as_by_django(
    routes: tuple[LeanRoutes, WSGIHandler], partner_a: PartnerPersona, match_index: Matcher
) -> None:
    Partner.objects.filter(pk=partner_a.partner.pk).update(match_hashes_per_minute=2)
    lean, django = routes
    body = _body([random_hash().hex()])
    wait_for_a_fresh_minute()
    statuses = [_send(lean, body, headers=_auth(partner_a)).status for _ in range(2)]

    by_lean = _send(lean, body, headers=_auth(partner_a))
    by_django = _send(django, body, headers=_auth(partner_a))

    assert statuses == ["200 OK", "200 OK"]
    assert not by_lean.through_django
    assert by_lean.status.startswith("429")
    assert 1 <= int(by_lean.headers["retry-after"]) <= 60
    _same(by_lean, by_django)
    assert json.loads(by_lean.body)["error"]["code"] == "rate_limited"


def test_liveness_is_answered_by_the_lean_route_as_django_answers_it(
    routes: tuple[LeanRoutes, WSGIHandler],
) -> None:
    lean, django = routes

    by_lean = _send(lean, None, method="GET", path="/health")
    by_django = _send(django, None, method="GET", path="/health")

    assert not by_lean.through_django
    assert json.loads(by_lean.body) == {"status": "ok"}
    _same(by_lean, by_django)


def test_with_the_lean_route_off_every_call_goes_through_django(
    routes: tuple[LeanRoutes, WSGIHandler],
    partner_a: PartnerPersona,
    match_index: Matcher,
    settings: SettingsWrapper,
) -> None:
    settings.MATCH_LEAN_ROUTE = False
    lean, _ = routes

    answer = _send(lean, _body([random_hash().hex()]), headers=_auth(partner_a))

    assert answer.through_django
    assert answer.status == "200 OK"


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_dropped_is_replaced_by_the_read_that_meets_it(
    partner_a: PartnerPersona, match_index: Matcher
) -> None:
    """The lean route does not check its connection before each call (Django's ``SELECT 1``):
    a connection PostgreSQL dropped in between is replaced when a read fails on it (the key's,
    if a change notice emptied the cache meanwhile, or the confirmation's), and the call is
    answered all the same, by the lean route, with its match."""
    registered = register_case(images=1)
    match_index.catch_up()
    lean = LeanRoutes(WSGIHandler())
    body = _body([registered.images[0].hashes[0].hex()])
    key_cache.get("nothing", lambda _: None)  # starts the listener: the key is then cached
    wait_until(lambda: key_cache.live, what="the key listener never connected")
    connection = connections[DEFAULT_DB_ALIAS]

    first = _send(lean, body, headers=_auth(partner_a))
    assert first.status == "200 OK"
    assert not first.through_django
    assert connection.health_check_done  # type: ignore[attr-defined]  # none before the next
    assert connection.connection is not None
    dropped = connection.connection.info.backend_pid
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [dropped])
        wait_until(
            lambda: (
                not admin.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s", [dropped]
                ).fetchone()
            ),
            what="the connection was never dropped",
        )
    second = _send(lean, body, headers=_auth(partner_a))

    assert second.status == "200 OK"
    assert not second.through_django
    assert [len(result["matches"]) for result in json.loads(second.body)["results"]] == [1]
    assert connection.connection is not None
    assert connection.connection.info.backend_pid != dropped
