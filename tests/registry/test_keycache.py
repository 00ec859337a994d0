"""The partner key cache (registry.keycache): kept while PostgreSQL notifies every change.

These tests commit (``transaction=True``): a notice is delivered only when the change commits.
Waits poll with a deadline; the deadline bounds the wait, no timing is measured.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from django.db import connection, transaction
from django.utils import timezone

from registry.keycache import KeyCache, key_cache
from registry.models import Partner, PartnerKey
from registry.selectors.partners import _key_read, partner_key_authenticate
from registry.services.partners import partner_create, partner_key_issue, partner_key_revoke
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cache() -> Iterator[KeyCache]:
    fresh = KeyCache()
    fresh.get("nothing", lambda _: None)  # starts the listener
    wait_until(lambda: fresh.live, what="the key listener never connected")
    yield fresh
    fresh.stop()


def _issued(scopes: list[str] | None = None) -> tuple[PartnerKey, str]:
    partner = partner_create(name="Platform K")
    issued = partner_key_issue(partner=partner, scopes=scopes or ["match"])
    return issued.key, issued.raw


def _reads(cache: KeyCache, lookup_id: str) -> list[str]:
    """Read ``lookup_id`` through ``cache``; the database reads it made."""
    made: list[str] = []

    def read(wanted: str) -> PartnerKey | None:
        made.append(wanted)
        return _key_read(wanted)

    cache.get(lookup_id, read)
    return made


def test_a_key_is_read_once_then_served_from_the_cache(cache: KeyCache) -> None:
    key, _ = _issued()

    assert _reads(cache, key.lookup_id) == [key.lookup_id]
    assert _reads(cache, key.lookup_id) == []
    assert len(cache) == 1


@pytest.mark.parametrize(
    "change",
    ["revoked", "expiry set", "scopes changed", "slowed down", "partner deactivated", "deleted"],
)
def test_every_change_to_a_key_or_its_partner_empties_it_from_the_cache(
    cache: KeyCache, change: str
) -> None:
    key, _ = _issued()
    _reads(cache, key.lookup_id)
    assert len(cache) == 1

    if change == "revoked":
        partner_key_revoke(key=key)
    elif change == "expiry set":
        PartnerKey.objects.filter(pk=key.pk).update(
            expires_at=timezone.now() + dt.timedelta(days=1)
        )
    elif change == "scopes changed":
        PartnerKey.objects.filter(pk=key.pk).update(scopes=["sync"])
    elif change == "slowed down":
        PartnerKey.objects.filter(pk=key.pk).update(slowed_since=timezone.now())
    elif change == "partner deactivated":
        Partner.objects.filter(pk=key.partner_id).update(is_active=False)
    elif change == "deleted":
        PartnerKey.objects.filter(pk=key.pk).delete()

    wait_until(lambda: len(cache) == 0, what=f"the cache kept the key after it was {change}")
    assert _reads(cache, key.lookup_id) == [key.lookup_id]


def test_inside_a_transaction_the_cache_is_neither_read_nor_filled(cache: KeyCache) -> None:
    key, _ = _issued()
    with transaction.atomic():
        # The transaction's own changes could roll back without any notice.
        assert _reads(cache, key.lookup_id) == [key.lookup_id]
        assert _reads(cache, key.lookup_id) == [key.lookup_id]
    assert len(cache) == 0
    assert _reads(cache, key.lookup_id) == [key.lookup_id]
    assert _reads(cache, key.lookup_id) == []


def test_a_notice_during_a_read_keeps_that_read_out_of_the_cache(cache: KeyCache) -> None:
    key, _ = _issued()

    def read_while_revoked(wanted: str) -> PartnerKey | None:
        stale = _key_read(wanted)  # read before the revocation commits
        partner_key_revoke(key=key)
        wait_until(lambda: cache._generation > generation, what="no notice arrived")
        return stale

    generation = cache._generation
    cache.get(key.lookup_id, read_while_revoked)

    assert len(cache) == 0
    found = cache.get(key.lookup_id, _key_read)
    assert found is not None
    assert found.revoked_at is not None


def test_a_lost_listener_turns_the_cache_off_and_it_comes_back(cache: KeyCache) -> None:
    key, _ = _issued()
    _reads(cache, key.lookup_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'rempart-key-listener' AND datname = current_database()"
        )

    wait_until(lambda: not cache.live or len(cache) == 0, what="the lost listener went unseen")
    wait_until(lambda: cache.live, what="the listener never reconnected")
    assert len(cache) == 0
    assert _reads(cache, key.lookup_id) == [key.lookup_id]


def _cached_by_authentication(raw: str, lookup_id: str) -> None:
    """Authenticate ``raw`` until this process's cache holds its key."""
    wait_until(
        lambda: partner_key_authenticate(raw) is not None and lookup_id in key_cache._keys,
        what="the key never reached this process's cache",
    )


def test_authentication_refuses_a_revoked_key_served_from_the_cache() -> None:
    key, raw = _issued()
    _cached_by_authentication(raw, key.lookup_id)

    partner_key_revoke(key=key)

    wait_until(
        lambda: partner_key_authenticate(raw) is None, what="a revoked key was still accepted"
    )


def test_a_wrong_secret_is_refused_even_for_a_cached_key() -> None:
    key, raw = _issued()
    _cached_by_authentication(raw, key.lookup_id)
    wrong = raw[:-1] + ("0" if raw[-1] != "0" else "1")

    assert partner_key_authenticate(wrong) is None
    assert partner_key_authenticate(raw) is not None
