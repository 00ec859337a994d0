"""Probing detection: clustered queries and abnormal hit rates raise an alert and slow the key."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import redis
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from registry.exceptions import InvalidInput
from registry.matching import probing
from registry.matching.follower import Matcher
from registry.models import AuditEvent, PartnerKey, ProbingAlert
from tests.conftest import PartnerPersona
from tests.factories import RegisteredCase, near_duplicate, random_hash, wait_for_a_fresh_minute

pytestmark = pytest.mark.django_db

ALERTS = "/admin/registry/probingalert/"


@pytest.fixture(autouse=True)
def _probing(settings: SettingsWrapper) -> Iterator[None]:
    """Small thresholds, and each test starts with nothing remembered in this process."""
    settings.PROBING_CLOSE_PAIRS = 20
    settings.PROBING_MIN_QUERIES = 20
    settings.PROBING_HIT_RATE_PERCENT = 50
    settings.MATCH_HASHES_PER_MINUTE = 200
    settings.PROBING_SLOWDOWN_FACTOR = 10
    probing.forget_all()
    yield
    probing.forget_all()


def _match(persona: PartnerPersona, values: list[bytes]) -> Any:
    return Client().post(
        "/api/v1/match",
        json.dumps({"hashes": [value.hex() for value in values], "purpose": "publish"}),
        content_type="application/json",
        headers=persona.auth,
    )


def _probe(persona: PartnerPersona) -> list[bytes]:
    """Ten small edits of one hash, as someone searching around it would send: the call opens
    the alert, so it is answered 429 without results."""
    base = random_hash()
    values = [near_duplicate(base, 1 + index % 4) for index in range(10)]
    refused = _match(persona, values)
    assert refused.status_code == 429
    assert refused.json()["error"]["details"] == {"reason": "probing_alert"}
    assert "results" not in refused.json()
    return values


def _key(persona: PartnerPersona) -> PartnerKey:
    return PartnerKey.objects.get(pk=persona.key.pk)


def test_queries_clustered_within_a_few_bits_raise_an_alert_and_slow_the_key(
    partner_a: PartnerPersona, match_index: Matcher
) -> None:
    values = _probe(partner_a)

    alert = ProbingAlert.objects.get()
    assert (alert.key_id, alert.partner_id) == (partner_a.key.pk, partner_a.partner.pk)
    assert alert.reason == ProbingAlert.Reason.CLUSTERED_QUERIES
    assert (alert.queries, alert.matched_queries) == (10, 0)
    assert alert.close_pairs >= 20
    assert alert.is_open
    assert _key(partner_a).slowed_since == alert.opened_at
    event = AuditEvent.objects.get(action="probing.alert_opened")
    assert event.subject == f"key:{partner_a.key.lookup_id}"
    recorded = json.dumps(event.details) + json.dumps(
        ProbingAlert.objects.values().get(), default=str
    )
    assert not any(value.hex() in recorded for value in values)


def test_unrelated_queries_raise_nothing(partner_a: PartnerPersona, match_index: Matcher) -> None:
    for _ in range(12):
        assert _match(partner_a, [random_hash() for _ in range(10)]).status_code == 200

    assert ProbingAlert.objects.count() == 0
    assert _key(partner_a).slowed_since is None


def test_a_key_whose_queries_match_abnormally_often_raises_an_alert(
    partner_a: PartnerPersona, person: RegisteredCase, match_index: Matcher
) -> None:
    registered = person.images[0].hashes[0]
    for call in range(10):  # half of the queries match: a platform's uploads seldom do
        # The call that opens the alert is not answered.
        status = _match(partner_a, [registered, random_hash()]).status_code
        assert status == (429 if call == 9 else 200)
        assert ProbingAlert.objects.count() == (1 if call == 9 else 0)

    alert = ProbingAlert.objects.get()
    assert alert.reason == ProbingAlert.Reason.HIGH_HIT_RATE
    assert (alert.queries, alert.matched_queries, alert.close_pairs) == (20, 10, 0)


def test_a_slowed_key_gets_a_fraction_of_the_budget_and_other_partners_are_untouched(
    partner_a: PartnerPersona, partner_b: PartnerPersona, match_index: Matcher
) -> None:
    wait_for_a_fresh_minute()
    _probe(partner_a)

    # 200 hashes a minute divided by 10: this key may match 20 now.
    assert _match(partner_a, [random_hash() for _ in range(15)]).status_code == 200
    refused = _match(partner_a, [random_hash() for _ in range(10)])
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["error"]["details"]["hashes_per_minute"] == 20
    assert _match(partner_b, [random_hash() for _ in range(100)]).status_code == 200
    assert ProbingAlert.objects.count() == 1  # a slowed key is not alerted again


def test_a_reviewer_clears_the_alert_in_the_admin_and_the_slowdown_ends(
    partner_a: PartnerPersona,
    reviewer: User,
    staff_client: Callable[[User], Client],
    match_index: Matcher,
) -> None:
    _probe(partner_a)
    alert = ProbingAlert.objects.get()
    client = staff_client(reviewer)
    listing = client.get(ALERTS, {"state": "open"}).content.decode()
    assert partner_a.partner.name in listing

    response = client.post(ALERTS, {"action": "clear_alerts", "_selected_action": [alert.pk]})

    assert response.status_code == 302
    alert.refresh_from_db()
    assert (alert.cleared_by, alert.is_open) == (reviewer, False)
    assert _key(partner_a).slowed_since is None
    assert _match(partner_a, [random_hash() for _ in range(100)]).status_code == 200
    assert ProbingAlert.objects.count() == 1  # watched afresh: unrelated queries raise nothing
    event = AuditEvent.objects.get(action="probing.alert_cleared")
    assert event.actor == f"staff:{reviewer.pk}"


def test_a_staff_member_who_is_not_a_reviewer_cannot_see_or_clear_alerts(
    partner_a: PartnerPersona, staff_client: Callable[[User], Client], match_index: Matcher
) -> None:
    _probe(partner_a)
    alert = ProbingAlert.objects.get()
    staff = User.objects.create_user("staff", password="a long staff password", is_staff=True)
    client = staff_client(staff)

    listing = client.get(ALERTS)
    client.post(ALERTS, {"action": "clear_alerts", "_selected_action": [alert.pk]})

    assert listing.status_code != 200
    alert.refresh_from_db()
    assert alert.is_open
    assert _key(partner_a).slowed_since is not None
    with pytest.raises(InvalidInput):
        probing.probing_alert_clear(alert=alert, user=staff)


def test_alerts_are_read_only_in_the_admin(
    partner_a: PartnerPersona,
    superuser: User,
    staff_client: Callable[[User], Client],
    match_index: Matcher,
) -> None:
    _probe(partner_a)
    alert = ProbingAlert.objects.get()
    client = staff_client(superuser)

    detail = client.get(f"{ALERTS}{alert.pk}/change/")
    deleted = client.post(f"{ALERTS}{alert.pk}/delete/", {"post": "yes"})

    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()
    assert deleted.status_code == 403
    assert ProbingAlert.objects.count() == 1


def test_query_hashes_are_kept_in_process_memory_only(
    partner_a: PartnerPersona, match_index: Matcher
) -> None:
    values = _probe(partner_a)

    client = redis.Redis.from_url(django_settings.REDIS_URL)
    stored = " ".join(f"{key!r} {client.dump(key)!r}" for key in client.scan_iter("*"))
    assert not any(value.hex() in stored for value in values)
    assert not re.search(r"[0-9a-f]{64}", stored)


def _match_views(persona: PartnerPersona, uploads: list[tuple[bytes, dict[str, bytes]]]) -> Any:
    body = {
        "hashes": [own.hex() for own, _ in uploads],
        "views": [{name: value.hex() for name, value in views.items()} for _, views in uploads],
        "purpose": "publish",
    }
    return Client().post(
        "/api/v1/match", json.dumps(body), content_type="application/json", headers=persona.auth
    )


def _honest_upload() -> tuple[bytes, dict[str, bytes]]:
    """An upload and views of it a few bits apart, as a rotation undone or a trim gives."""
    own = random_hash()
    names = ["trimmed", "mirror", "rot+1c", "rot-1c", "rot+1e", "rot-1e", "m1", "m2"]
    return own, {name: near_duplicate(own, 2 + index % 5) for index, name in enumerate(names)}


def test_an_upload_s_own_views_are_not_clustered_queries(
    partner_a: PartnerPersona, match_index: Matcher
) -> None:
    # 9 hashes each within a few bits of each other: 36 close pairs inside each upload.
    for _ in range(4):
        assert _match_views(partner_a, [_honest_upload() for _ in range(3)]).status_code == 200
    assert ProbingAlert.objects.count() == 0
    # A repost checked again counts once, not once per view.
    upload = _honest_upload()
    for _ in range(5):
        assert _match_views(partner_a, [upload]).status_code == 200
    assert ProbingAlert.objects.count() == 0


def test_probes_hidden_in_views_are_seen(partner_a: PartnerPersona, match_index: Matcher) -> None:
    base = random_hash()
    uploads = [
        (random_hash(), {"trimmed": near_duplicate(base, 1 + index % 4)}) for index in range(25)
    ]
    refused = _match_views(partner_a, uploads)
    assert refused.status_code == 429
    assert ProbingAlert.objects.get().reason == ProbingAlert.Reason.CLUSTERED_QUERIES


def _match_videos(persona: PartnerPersona, videos: list[list[bytes]]) -> Any:
    body = {
        "videos": [
            {
                "frames": [
                    {"hash": value.hex(), "quality": 90, "timestamp": float(second)}
                    for second, value in enumerate(frames)
                ]
            }
            for frames in videos
        ],
        "purpose": "publish",
    }
    return Client().post(
        "/api/v1/match", json.dumps(body), content_type="application/json", headers=persona.auth
    )


def test_probes_hidden_in_the_frames_of_videos_are_seen(
    partner_a: PartnerPersona, match_index: Matcher
) -> None:
    base = random_hash()

    def probes() -> list[list[bytes]]:
        # Each video: a decoy first frame, then a small edit of the probed hash.
        return [[random_hash(), near_duplicate(base, 1 + index % 4)] for index in range(5)]

    assert _match_videos(partner_a, probes()).status_code == 200  # 10 close pairs so far
    refused = _match_videos(partner_a, probes())
    assert refused.status_code == 429
    assert "video_results" not in refused.json()
    assert ProbingAlert.objects.get().reason == ProbingAlert.Reason.CLUSTERED_QUERIES


def test_the_frames_of_one_video_are_never_close_pairs_of_each_other(
    partner_a: PartnerPersona, match_index: Matcher
) -> None:
    # A still scene filmed for a while: frames a few bits apart, as a real video has them.
    base = random_hash()
    video = [base] + [near_duplicate(base, 3 + index % 5) for index in range(60)]
    answered = _match_videos(partner_a, [video])
    assert answered.status_code == 200
    assert answered.json()["video_results"] == [{"matches": []}]
    assert not ProbingAlert.objects.exists()


def test_a_call_of_one_hash_counts_the_distinct_close_uploads() -> None:
    """The compiled pass of a one-hash call (the common call) keeps the buffer and the counts a
    plain count of the distinct close uploads gives, calls of several views (the general pass)
    interleaved: a probe sent one hash a call is seen as it is in batches."""
    rng = np.random.default_rng(3)
    capacity, close_bits = 16, 8
    state = probing._KeyState(capacity=capacity)
    remembered: list[tuple[bytes, int]] = []  # (hash, upload) per slot, oldest first
    bases = [random_hash() for _ in range(4)]
    for upload in range(120):
        if upload % 7 == 3:  # an upload's own views: one upload, several hashes
            views = [near_duplicate(bases[upload % 4], 2 + view) for view in range(3)]
            state.push(probing._words(views), close_bits, np.zeros(3, np.int64))
            remembered.extend((view, upload) for view in views)
        else:
            value = near_duplicate(bases[int(rng.integers(4))], int(rng.integers(0, 12)))
            if rng.random() < 0.3:
                value = random_hash()
            before = state.close_pairs - int(state.close_counts[state.position])
            distinct = {
                seen_upload
                for seen, seen_upload in remembered[-capacity:]
                if 1 <= _bits_apart(seen, value) <= close_bits
            }
            assert state.push(probing._words([value]), close_bits) == 0
            assert state.close_pairs == before + len(distinct)
            remembered.append((value, upload))
        kept = remembered[-capacity:]
        assert state.size == len(kept)
        stored = {value for value, _ in kept}
        columns = {state.recent[:, column].tobytes() for column in range(state.size)}
        assert columns == stored
        assert state.close_pairs == int(state.close_counts[: state.size].sum())


def _bits_apart(first: bytes, second: bytes) -> int:
    return (int.from_bytes(first, "big") ^ int.from_bytes(second, "big")).bit_count()
