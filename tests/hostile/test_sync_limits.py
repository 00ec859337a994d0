"""The sync feeds are limited per partner: 429 with Retry-After, and never per address."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.conftest import PartnerPersona

pytestmark = pytest.mark.django_db

STOPNCII = "/v1/FetchHashes"
NATIVE = "/api/v1/hashes/changes"


def stopncii_auth(persona: PartnerPersona) -> dict[str, str]:
    return {"Ocp-Apim-Subscription-Key": persona.raw_key, "x-functions-key": persona.raw_key}


@pytest.fixture(autouse=True)
def _three_a_minute(settings: SettingsWrapper) -> None:
    settings.SYNC_REQUESTS_PER_MINUTE = 3


def test_past_the_budget_both_feeds_answer_429_with_retry_after(
    client: Client, partner_a: PartnerPersona
) -> None:
    answered = [
        client.get(NATIVE, headers=partner_a.auth).status_code,
        client.get(STOPNCII, headers=stopncii_auth(partner_a)).status_code,
        client.get(NATIVE, headers=partner_a.auth).status_code,
    ]
    native = client.get(NATIVE, headers=partner_a.auth)
    stopncii = client.get(STOPNCII, headers=stopncii_auth(partner_a))

    assert answered == [200, 200, 200]
    for refused in (native, stopncii):
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused["Retry-After"]) <= 60


def test_one_partners_sync_does_not_limit_another(
    client: Client, partner_a: PartnerPersona, partner_b: PartnerPersona
) -> None:
    for _ in range(4):
        client.get(NATIVE, headers=partner_a.auth)

    assert client.get(NATIVE, headers=partner_b.auth).status_code == 200


def test_the_limit_is_counted_per_partner_and_refused_callers_count_nothing(
    client: Client, partner_a: PartnerPersona, revoked_partner: PartnerPersona
) -> None:
    for _ in range(5):
        assert client.get(NATIVE).status_code == 401
        assert client.get(NATIVE, headers=revoked_partner.auth).status_code == 401
    client.get(NATIVE, headers=partner_a.auth, REMOTE_ADDR="198.51.100.7")

    redis = cache._cache.get_client(write=False)  # type: ignore[attr-defined]
    keys = [key.decode() for key in redis.scan_iter("*rl:sync*")]
    assert keys
    assert all(f"rl:sync:{partner_a.partner.pk}" in key for key in keys)
    assert not any("198.51.100.7" in key or "127.0.0.1" in key for key in keys)


def test_with_the_cache_unreachable_the_feeds_still_answer(
    client: Client, partner_a: PartnerPersona, settings: SettingsWrapper
) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }

    answers = [client.get(NATIVE, headers=partner_a.auth).status_code for _ in range(5)]

    assert answers == [200] * 5
