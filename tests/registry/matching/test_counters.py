"""Per-image match counts deferred off the request path (registry.matching.counters), and the
match call recorder that writes them with its rows (registry.matching.usage)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from registry.matching import counters
from registry.matching.usage import match_call_recorder
from registry.models import MatchCall
from tests.conftest import PartnerPersona


@pytest.fixture(autouse=True)
def _nothing_waiting() -> Iterator[None]:
    counters._pending.clear()
    yield
    counters._pending.clear()


def _stored(image_id: int) -> int:
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = f"{counters._KEY_PREFIX}{counters._hour()}"
    return int(client.hget(key, str(image_id)) or 0)


def test_deferred_counts_reach_redis_only_when_flushed_in_one_batch() -> None:
    counters.image_matches_defer([501, 501, 502])
    counters.image_matches_defer([501])
    counters.image_matches_defer([])

    assert (_stored(501), _stored(502)) == (0, 0)
    assert counters.image_matches_flush() == 2
    assert (_stored(501), _stored(502)) == (3, 1)
    assert counters.image_matches_flush() == 0
    assert (_stored(501), _stored(502)) == (3, 1)


def test_a_read_in_the_process_sees_its_own_deferred_counts() -> None:
    counters.image_matches_record([601])
    counters.image_matches_defer([601, 602])

    assert counters.image_match_counts(image_ids=[601, 602]) == {601: 2, 602: 1}


def test_counts_that_redis_did_not_take_wait_for_the_next_flush(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counters.image_matches_defer([701, 701])
    # A closed port on this machine: refused at once.
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.25)
    monkeypatch.setattr(counters, "_redis", unreachable)

    assert counters.image_matches_flush() == 0

    monkeypatch.setattr(counters, "_redis", None)
    assert _stored(701) == 0
    assert counters.image_matches_flush() == 1
    assert _stored(701) == 2


def _record(partner: PartnerPersona, *, hashes: int, matched_images: list[int]) -> None:
    """A call of ``hashes`` hashes, one of which matched these images, as the recorder sees it."""
    match_call_recorder.record(
        partner_id=partner.partner.pk,
        key_id=partner.key.pk,
        purpose="publish",
        hashes=hashes,
        matched_hashes=1,
        matches=len(matched_images),
        matched_images=matched_images,
    )


@pytest.mark.django_db(transaction=True)
def test_the_running_recorder_writes_counts_and_rows_from_its_thread(
    partner_a: PartnerPersona,
) -> None:
    match_call_recorder.start(interval=0.05)
    try:
        _record(partner_a, hashes=2, matched_images=[801, 801])
        deadline = time.monotonic() + 10
        while _stored(801) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _stored(801) == 2
        while not MatchCall.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert MatchCall.objects.get().matches == 2
    finally:
        match_call_recorder.stop()


@pytest.mark.django_db(transaction=True)
def test_a_recorder_stopping_writes_the_counts_still_waiting(partner_a: PartnerPersona) -> None:
    match_call_recorder.start(interval=60)
    try:
        _record(partner_a, hashes=1, matched_images=[901])
        assert _stored(901) == 0  # waiting in memory: the call made no round trip
    finally:
        match_call_recorder.stop()
    assert _stored(901) == 1
    (row,) = MatchCall.objects.all()
    assert (row.partner_id, row.key_id, row.purpose) == (
        partner_a.partner.pk,
        partner_a.key.pk,
        "publish",
    )
    assert (row.hashes, row.matched_hashes, row.matches) == (1, 1, 1)
    assert abs((timezone.now() - row.created_at).total_seconds()) < 60
