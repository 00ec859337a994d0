"""Who may call what: every endpoint against every kind of caller, and nothing changes on denial."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.utils import timezone

from registry.matching.follower import Matcher
from registry.models import Case, MatchCall, PartnerKey
from registry.ratelimits import budgets
from registry.services.partners import partner_key_issue
from tests.conftest import PartnerPersona
from tests.factories import (
    RegisteredCase,
    case_creation_body,
    dihedral_payload,
    random_dihedral,
    random_hash,
    wait_for_a_fresh_minute,
)

pytestmark = pytest.mark.django_db

MATCH_BODY = {"hashes": [random_hash().hex()], "purpose": "publish"}


def _call(path: str, body: Any, headers: dict[str, str], query: str = "") -> Any:
    return Client().post(
        path + query, json.dumps(body), content_type="application/json", headers=headers
    )


def _persona_with(partner_a: PartnerPersona, scopes: list[str]) -> dict[str, str]:
    PartnerKey.objects.filter(pk=partner_a.key.pk).update(revoked_at=timezone.now())
    issued = partner_key_issue(partner=partner_a.partner, scopes=scopes)
    return {"Authorization": f"Bearer {issued.raw}"}


@pytest.mark.parametrize(
    ("caller", "status", "code"),
    [
        ("no key", 401, "key_required"),
        ("not bearer", 401, "key_invalid"),
        ("unknown key", 401, "key_invalid"),
        ("revoked key", 401, "key_invalid"),
        ("expired key", 401, "key_invalid"),
        ("key without match scope", 403, "scope_missing"),
        ("key in query string", 400, "key_in_url"),
        ("match key", 200, None),
    ],
)
def test_match_authorization_matrix(
    partner_a: PartnerPersona,
    revoked_partner: PartnerPersona,
    match_index: Matcher,
    caller: str,
    status: int,
    code: str | None,
) -> None:
    query = ""
    if caller == "no key":
        headers: dict[str, str] = {}
    elif caller == "not bearer":
        headers = {"Authorization": f"Basic {partner_a.raw_key}"}
    elif caller == "unknown key":
        headers = {"Authorization": "Bearer rmp_0000000000_" + "0" * 40}
    elif caller == "revoked key":
        headers = revoked_partner.auth
    elif caller == "expired key":
        headers = partner_a.auth
        PartnerKey.objects.filter(pk=partner_a.key.pk).update(
            expires_at=timezone.now() - dt.timedelta(seconds=1)
        )
    elif caller == "key without match scope":
        headers = _persona_with(partner_a, ["sync", "feedback", "submit"])
    elif caller == "key in query string":
        headers, query = partner_a.auth, f"?key={partner_a.raw_key}"
    else:
        headers = partner_a.auth
    response = _call("/api/v1/match", MATCH_BODY, headers, query)
    assert response.status_code == status
    if code is None:
        assert MatchCall.objects.count() == 1
    else:
        assert response.json()["error"]["code"] == code
        assert MatchCall.objects.count() == 0
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", ["/api/v1/cases/status", "/api/v1/cases/withdraw"])
@pytest.mark.parametrize("caller", ["anonymous", "partner key", "revoked key"])
def test_case_endpoints_need_the_case_secret_not_a_partner_key(
    partner_a: PartnerPersona,
    revoked_partner: PartnerPersona,
    person: RegisteredCase,
    path: str,
    caller: str,
) -> None:
    headers: dict[str, str] = {
        "anonymous": {},
        "partner key": partner_a.auth,
        "revoked key": revoked_partner.auth,
    }[caller]
    without_secret = _call(
        path, {"case_reference": person.case.reference, "case_secret": ""}, headers
    )
    assert without_secret.status_code == 400
    assert Case.objects.get(pk=person.case.pk).status == "active"
    with_secret = _call(
        path, {"case_reference": person.case.reference, "case_secret": person.secret}, headers
    )
    assert with_secret.status_code == 200


def test_case_creation_refuses_a_key_in_the_url(partner_a: PartnerPersona) -> None:
    body = case_creation_body([dihedral_payload(random_dihedral())])
    response = _call("/api/v1/cases", body, {}, f"?token={partner_a.raw_key}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "key_in_url"
    assert Case.objects.count() == 0


def test_partner_b_learns_nothing_of_partner_a(
    partner_a: PartnerPersona,
    partner_b: PartnerPersona,
    person: RegisteredCase,
    match_index: Matcher,
) -> None:
    query = {"hashes": [person.images[0].hashes[0].hex()], "purpose": "publish"}
    b_before = _call("/api/v1/match", query, partner_b.auth).json()
    a_answer = _call("/api/v1/match", query, partner_a.auth).json()
    b_after = _call("/api/v1/match", query, partner_b.auth).json()
    assert b_before == b_after  # A's calls change nothing B can see
    a_ids = {match["match_id"] for match in a_answer["results"][0]["matches"]}
    b_ids = {match["match_id"] for match in b_after["results"][0]["matches"]}
    assert a_ids.isdisjoint(b_ids)
    assert MatchCall.objects.filter(partner=partner_b.partner).count() == 2


def test_rate_limits_count_each_hash_and_hold_per_partner(
    partner_a: PartnerPersona, partner_b: PartnerPersona, match_index: Matcher
) -> None:
    partner_a.partner.match_hashes_per_minute = 10
    partner_a.partner.save()
    batch = {"hashes": [random_hash().hex() for _ in range(6)], "purpose": "publish"}
    wait_for_a_fresh_minute()
    assert _call("/api/v1/match", batch, partner_a.auth).status_code == 200
    limited = _call("/api/v1/match", batch, partner_a.auth)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert _call("/api/v1/match", batch, partner_b.auth).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_rate_limits_hold_under_20_concurrent_threads(
    partner_a: PartnerPersona, match_index: Matcher
) -> None:
    partner_a.partner.match_hashes_per_minute = 50
    partner_a.partner.save()
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def client_thread() -> None:
        client = Client()
        start.wait()
        for _ in range(5):
            response = client.post(
                "/api/v1/match",
                json.dumps({"hashes": [random_hash().hex()], "purpose": "publish"}),
                content_type="application/json",
                headers=partner_a.auth,
            )
            with lock:
                statuses.append(response.status_code)
        connection.close()

    # The budget is a fixed minute window: a run that crosses into the next minute (a loaded
    # machine) gets a second budget, so it is run again from empty counters.
    for _attempt in range(3):
        wait_for_a_fresh_minute()
        cache.clear()
        budgets.clear()
        MatchCall.objects.all().delete()
        statuses.clear()
        window = int(time.time()) // 60
        threads = [threading.Thread(target=client_thread) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if int(time.time()) // 60 == window:
            break
    assert len(statuses) == 100
    assert statuses.count(200) == 50
    assert statuses.count(429) == 50
    assert MatchCall.objects.count() == 50


def test_the_openapi_schema_describes_every_endpoint() -> None:
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = (
        json.loads(response.content)
        if response["Content-Type"].startswith("application/json")
        else None
    )
    if schema is None:
        import yaml

        schema = yaml.safe_load(response.content)
    assert {
        "/api/v1/match",
        "/api/v1/cases",
        "/api/v1/cases/status",
        "/api/v1/cases/withdraw",
        "/api/v1/cases/images",
    } <= set(schema["paths"])


def test_the_api_docs_page_loads_nothing_from_another_origin() -> None:
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    assert b"<redoc spec-url" in response.content
    assert b"https://" not in response.content
    assert b"http://" not in response.content


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/v2/match", "/v1/FetchHash"])
def test_unknown_api_paths_answer_the_error_body(path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
