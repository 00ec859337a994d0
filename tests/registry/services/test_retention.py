"""Retention, with a travelled clock: before a period ends nothing goes, after it exactly what
should, and what must stay (consent records, the audit chain, a partner's outbox position) stays.

Change times come from PostgreSQL's clock (registry.services.changes_append), which the test
cannot move: records are written at the real time, then the registry's clock travels forward.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from api.cursors import cursor_encode
from registry.celery import app as celery_app
from registry.matching.follower import Matcher
from registry.models import (
    AuditEvent,
    Case,
    Change,
    ConsentRecord,
    IdempotencyRecord,
    ImageHash,
    MatchCall,
    Partner,
    RegisteredImage,
    WebhookDelivery,
)
from registry.services.audit import chain_verify
from registry.services.cases import case_create, case_withdraw
from registry.services.retention import (
    partner_records_purge,
    registry_records_purge,
    withdrawn_hashes_purge,
)
from registry.videos import Frame, VideoHashes
from registry.webhooks import outbox
from tests.conftest import PartnerPersona
from tests.factories import (
    ATTESTED,
    RegisteredCase,
    case_creation_body,
    dihedral_payload,
    random_dihedral,
    random_hash,
    register_case,
)

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def start() -> dt.datetime:
    """The real time the records are written at (the database's clock cannot travel)."""
    return timezone.now()


@pytest.fixture
def travel() -> Iterator[Any]:
    """Move the registry's clock to a moment (frozen there) for the rest of the test."""
    traveller: list[time_machine.travel] = []

    def to(moment: dt.datetime) -> None:
        if traveller:
            traveller.pop().stop()
        traveller.append(time_machine.travel(moment, tick=False))
        traveller[-1].start()

    yield to
    if traveller:
        traveller.pop().stop()


def _hash_counts(*cases: RegisteredCase) -> list[int]:
    return [ImageHash.objects.filter(image__case=case.case).count() for case in cases]


def _withdraw_later(registered: RegisteredCase, by: dt.timedelta) -> None:
    """Withdraw a case, dated ``by`` after now, as if the person had withdrawn it then."""
    case_withdraw(case=registered.case)
    later = timezone.now() + by
    Change.objects.filter(image__case=registered.case, kind=Change.Kind.WITHDRAWN).update(
        created_at=later
    )
    RegisteredImage.objects.filter(case=registered.case).update(withdrawn_at=later)
    Case.objects.filter(pk=registered.case.pk).update(withdrawn_at=later)


def _evidence() -> tuple[Any, ...]:
    """What retention must never touch."""
    return (
        list(ConsentRecord.objects.order_by("pk").values_list()),
        list(AuditEvent.objects.order_by("pk").values_list("pk", "digest")),
        list(Case.objects.order_by("pk").values_list("pk", "status")),
        list(RegisteredImage.objects.order_by("pk").values_list("pk", "status")),
        list(Change.objects.order_by("pk").values_list("pk", "kind", "image_id")),
    )


def test_a_withdrawn_images_hashes_go_once_its_tombstone_expires_and_nothing_else(
    start: dt.datetime, travel: Any
) -> None:
    kept = register_case(images=1)
    withdrawn = register_case(images=2)
    later = register_case(images=1)
    case_withdraw(case=withdrawn.case)
    _withdraw_later(later, by=30 * DAY)
    evidence = _evidence()
    retention = dt.timedelta(days=settings.TOMBSTONE_RETENTION_DAYS)

    travel(start + retention - HOUR)
    assert withdrawn_hashes_purge() == 0
    assert _hash_counts(kept, withdrawn, later) == [8, 16, 8]

    travel(start + retention + HOUR)
    assert withdrawn_hashes_purge() == 16
    assert _hash_counts(kept, withdrawn, later) == [8, 0, 8]
    assert withdrawn_hashes_purge() == 0  # a second run deletes nothing more

    travel(start + 30 * DAY + retention + HOUR)
    assert registry_records_purge() == {"withdrawn_hashes": 8}
    assert _hash_counts(kept, withdrawn, later) == [8, 0, 0]

    assert _evidence() == evidence
    assert chain_verify() == (AuditEvent.objects.count(), None)
    call_command("audit_verify")  # exits non-zero on a broken chain


def test_the_feeds_still_behave_once_hashes_are_gone(
    start: dt.datetime, travel: Any, partner_a: PartnerPersona, match_index: Matcher
) -> None:
    kept = register_case(images=1)
    withdrawn = register_case(images=1)
    first = Client().get("/api/v1/hashes/changes", headers=partner_a.auth).json()
    old_cursor = first["next_cursor"]
    stopncii = {"Ocp-Apim-Subscription-Key": partner_a.raw_key, "x-functions-key": "f"}
    Client().get("/v1/FetchHashes", {"startTimestamp": 10}, headers=stopncii)  # discloses both
    case_withdraw(case=withdrawn.case)
    last_change = Change.objects.order_by("-pk").values_list("pk", flat=True).first()
    assert last_change is not None
    withdrawn_values = {value.hex() for value in withdrawn.images[0].hashes}
    kept_values = {value.hex() for value in kept.images[0].hashes}

    travel(start + dt.timedelta(days=settings.TOMBSTONE_RETENTION_DAYS) + HOUR)
    assert withdrawn_hashes_purge() == 8

    expired = Client().get("/api/v1/hashes/changes", {"cursor": old_cursor}, headers=partner_a.auth)
    assert expired.status_code == 410
    assert expired.json()["error"]["code"] == "cursor_expired"
    assert (
        Client()
        .get(
            "/api/v1/hashes/changes", {"cursor": cursor_encode(last_change)}, headers=partner_a.auth
        )
        .status_code
        == 410
    )

    resync = Client().get("/api/v1/hashes/changes", headers=partner_a.auth)
    assert resync.status_code == 200
    entries = resync.json()["entries"]
    assert [(entry["kind"], len(entry.get("hashes", []))) for entry in entries] == [
        ("added", 8),
        ("withdrawn", 0),
        ("withdrawn", 0),
    ]
    assert {item["hash"] for item in entries[0]["hashes"]} == kept_values

    fetched = Client().get("/v1/FetchHashes", {"startTimestamp": 10}, headers=stopncii)
    assert fetched.status_code == 200
    served = {record["hashValue"] for record in fetched.json()["hashRecords"]}
    assert served == kept_values
    assert not served & withdrawn_values

    match_index.catch_up()
    matched = Client().post(
        "/api/v1/match",
        json.dumps(
            {
                "hashes": [next(iter(kept_values)), next(iter(withdrawn_values))],
                "purpose": "publish",
            }
        ),
        content_type="application/json",
        headers=partner_a.auth,
    )
    assert [len(result["matches"]) for result in matched.json()["results"]] == [1, 0]


def _creation() -> dict[str, Any]:
    return case_creation_body([dihedral_payload(random_dihedral())])


def _post(path: str, body: dict[str, Any], **headers: str) -> Any:
    return Client(REMOTE_ADDR="198.51.100.20").post(
        path, json.dumps(body), content_type="application/json", headers=headers
    )


def test_idempotency_records_go_after_24_hours(start: dt.datetime, travel: Any) -> None:
    assert _post("/api/v1/cases", _creation(), **{"Idempotency-Key": "first"}).status_code == 201
    travel(start + 12 * HOUR)
    assert _post("/api/v1/cases", _creation(), **{"Idempotency-Key": "later"}).status_code == 201

    travel(start + 24 * HOUR - dt.timedelta(minutes=1))
    assert partner_records_purge()["idempotency_records"] == 0
    assert IdempotencyRecord.objects.count() == 2

    travel(start + 24 * HOUR + dt.timedelta(minutes=1))
    assert partner_records_purge()["idempotency_records"] == 1
    assert list(IdempotencyRecord.objects.values_list("created_at", flat=True)) == [
        start + 12 * HOUR
    ]
    assert Case.objects.count() == 2  # what the requests created stays


@pytest.fixture
def hooked(partner_a: PartnerPersona) -> Partner:
    Partner.objects.filter(pk=partner_a.partner.pk).update(
        webhook_url="https://partner.example/rempart", webhook_secret="whsec_dGVzdA=="
    )
    return Partner.objects.get(pk=partner_a.partner.pk)


def test_delivered_and_failed_webhooks_go_after_their_periods_never_pending_nor_the_latest(
    start: dt.datetime, travel: Any, hooked: Partner
) -> None:
    for _ in range(4):
        register_case(images=1)
    outbox.deliveries_derive()
    delivered, failed, pending, latest = WebhookDelivery.objects.order_by("change_id")
    now = timezone.now()
    for row, status in [(delivered, "delivered"), (failed, "failed"), (latest, "delivered")]:
        WebhookDelivery.objects.filter(pk=row.pk).update(
            status=status,
            attempts=1,
            next_attempt_at=now,
            delivered_at=now if status == "delivered" else None,
        )

    def remaining() -> set[int]:
        return set(WebhookDelivery.objects.values_list("pk", flat=True))

    delivered_days = settings.WEBHOOK_DELIVERED_RETENTION_DAYS
    failed_days = settings.WEBHOOK_FAILED_RETENTION_DAYS
    travel(start + delivered_days * DAY - HOUR)
    assert partner_records_purge()["webhook_deliveries"] == 0

    travel(start + delivered_days * DAY + HOUR)
    assert partner_records_purge()["webhook_deliveries"] == 1
    assert remaining() == {failed.pk, pending.pk, latest.pk}

    travel(start + failed_days * DAY - HOUR)
    assert partner_records_purge()["webhook_deliveries"] == 0

    travel(start + failed_days * DAY + HOUR)
    assert partner_records_purge()["webhook_deliveries"] == 1
    assert remaining() == {pending.pk, latest.pk}

    # The partner's position in the outbox survives: nothing old is derived and sent again.
    assert outbox.deliveries_derive() == []
    assert remaining() == {pending.pk, latest.pk}


def test_match_calls_go_after_their_period(
    start: dt.datetime, travel: Any, partner_a: PartnerPersona, partner_b: PartnerPersona
) -> None:
    def call(persona: PartnerPersona) -> MatchCall:
        return MatchCall.objects.create(
            partner=persona.partner,
            key=persona.key,
            purpose="publish",
            hashes=1,
            matched_hashes=0,
            matches=0,
        )

    old_a, old_b = call(partner_a), call(partner_b)
    days = settings.MATCH_CALL_RETENTION_DAYS
    travel(start + (days - 1) * DAY)
    recent = call(partner_a)
    assert partner_records_purge()["match_calls"] == 0

    travel(start + days * DAY + HOUR)
    assert partner_records_purge()["match_calls"] == 2
    assert list(MatchCall.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not MatchCall.objects.filter(pk__in=[old_a.pk, old_b.pk]).exists()


def test_expired_staff_sessions_go(start: dt.datetime, travel: Any) -> None:
    def session(seconds: int) -> str:
        store = SessionStore()
        store["staff"] = 1
        store.set_expiry(seconds)
        store.create()
        assert store.session_key is not None
        return store.session_key

    session(3600)
    lasting = session(30 * 86400)
    assert Session.objects.count() == 2
    travel(start + 2 * HOUR)
    registry_records_purge()
    assert list(Session.objects.values_list("session_key", flat=True)) == [lasting]


def test_beat_runs_both_retention_tasks_and_they_run() -> None:
    celery_app.loader.import_default_modules()
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    for name in (
        "registry.tasks.case_records_purge_task",
        "registry.tasks.partner_records_purge_task",
    ):
        assert name in schedule
        assert name in celery_app.tasks
    withdrawn = register_case(images=1)
    case_withdraw(case=withdrawn.case)
    with time_machine.travel(timezone.now() + 60 * DAY, tick=False):
        celery_app.tasks["registry.tasks.case_records_purge_task"].apply().get()
        celery_app.tasks["registry.tasks.partner_records_purge_task"].apply().get()
    assert not ImageHash.objects.filter(image__case=withdrawn.case).exists()


def test_every_cache_key_the_registry_writes_expires(
    partner_a: PartnerPersona, person: RegisteredCase, match_index: Matcher
) -> None:
    credentials = {"case_reference": person.case.reference, "case_secret": person.secret}
    wrong = {**credentials, "case_secret": "AAAA-BBBB-CCCC-DDDD"}
    assert _post("/api/v1/cases", _creation()).status_code == 201
    assert _post("/api/v1/cases/status", wrong).status_code == 403
    assert _post("/api/v1/cases/status", credentials).status_code == 200
    match = {"hashes": [person.images[0].hashes[0].hex()], "purpose": "publish"}
    matched = _post("/api/v1/match", match, **partner_a.auth)
    assert len(matched.json()["results"][0]["matches"]) == 1  # counted per image, per hour
    assert Client().get("/api/v1/hashes/changes", headers=partner_a.auth).status_code == 200
    page = Client(REMOTE_ADDR="198.51.100.21")
    assert page.post("/status", {**wrong}).status_code == 403
    submitted = page.post(
        "/register/submit",
        json.dumps(_creation()),
        content_type="application/json",
    )
    assert submitted.status_code == 201
    assert _post("/api/v1/cases/withdraw", credentials).status_code == 200

    redis = cache._cache.get_client(write=False)  # type: ignore[attr-defined]
    keys = list(redis.scan_iter(count=1000))
    assert len(keys) >= 8  # the scenario was counted: per-client, per-reference, per-partner
    without_expiry = [key for key in keys if redis.ttl(key) < 0]
    assert without_expiry == []


def test_the_privacy_page_names_only_real_settings_and_jobs() -> None:
    page = (ROOT / "docs" / "privacy.md").read_text()
    example = (ROOT / "deploy" / "env.example").read_text()
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    named = set(re.findall(r"`([A-Z][A-Z0-9]*_[A-Z0-9_]+)`", page))
    assert {"TOMBSTONE_RETENTION_DAYS", "WEBHOOK_DELIVERED_RETENTION_DAYS"} <= named
    assert named <= documented | {"IDEMPOTENCY_KEY_HOURS"}, sorted(named - documented)
    for task in set(re.findall(r"`((?:registry|api)\.tasks\.\w+)`", page)):
        assert task in {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}, task


def test_a_withdrawn_videos_frames_and_md5_go_once_its_tombstone_expires(
    start: dt.datetime, travel: Any
) -> None:
    rng = random.Random(4)
    video = VideoHashes(
        frames=tuple(Frame(random_hash(rng), 90, float(second)) for second in range(5)),
        md5=b"\x01" * 16,
        duration=5.0,
    )
    kept = case_create(
        scope="intimate",
        attestations=ATTESTED,
        terms_version="2026-11",
        language="en",
        images=[],
        videos=[video],
    )
    gone = case_create(
        scope="intimate",
        attestations=ATTESTED,
        terms_version="2026-11",
        language="en",
        images=[],
        videos=[video],
    )
    case_withdraw(case=gone.case)
    travel(start + dt.timedelta(days=settings.TOMBSTONE_RETENTION_DAYS) + HOUR)
    assert withdrawn_hashes_purge() == 5
    kept_video, gone_video = (case.case.images.get() for case in (kept, gone))
    assert (kept_video.hashes.count(), bytes(kept_video.md5 or b"")) == (5, b"\x01" * 16)
    assert (gone_video.hashes.count(), gone_video.md5) == (0, None)
    assert gone_video.duration == 5.0
