"""Retention: deleting what the registry no longer needs, once it no longer needs it.

docs/privacy.md lists every kind of data the registry keeps, where, why and for how long. This
module enforces the periods of the registry's own records; registry.tasks those of the partner API's
(idempotency records, webhook deliveries, match calls), with ``delete_in_batches`` from here.
Celery beat runs both every RETENTION_SWEEP_SECONDS (CELERY_BEAT_SCHEDULE).

- A withdrawn image's hash values (its ImageHash rows) are deleted once its withdrawal, its
  tombstone in the change sequence, is older than TOMBSTONE_RETENTION_DAYS. From then on every
  sync feed cursor placed before the withdrawal is refused (410, the sync feeds) and its partner
  resyncs from the start, so no feed will ever serve those values again, not even as withdrawn.
  The image row stays, without hashes: its scope, status and dates are what the person's case
  page, the change sequence, the disclosure ledger and the audit record refer to.
- Expired staff sessions (Django's session table) are deleted.

What is never deleted, and why, is in docs/privacy.md: consent records and audit events (append
only, enforced by database triggers; evidence, and a hash chain that a deletion would break),
cases and image rows (no hash, no name; the person's reference must keep answering), the change
sequence (no hash; every process's index and every feed position is a place in it).

Each job deletes only what has expired, in batches of one short transaction each, and at most
``max_batches`` batches a run (the next run continues), so that it never holds locks for long
and never outlives the broker's visibility timeout. Running it twice, or in two workers at once,
deletes nothing twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from importlib import import_module
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from registry.models import (
    Change,
    IdempotencyRecord,
    ImageHash,
    MatchCall,
    Partner,
    RegisteredImage,
    WebhookDelivery,
)
from registry.services.idempotency import IDEMPOTENCY_KEY_HOURS

logger = logging.getLogger(__name__)

BATCH = 1000
MAX_BATCHES = 100


def delete_in_batches(
    queryset: QuerySet[Any], *, batch: int = BATCH, max_batches: int = MAX_BATCHES
) -> int:
    """Delete the rows ``queryset`` selects, ``batch`` at a time; return how many were deleted.

    Each batch is its own transaction. Stops after ``max_batches`` batches: a backlog is left
    to the next run rather than held in one long one.
    """
    model = queryset.model
    deleted = 0
    for _ in range(max_batches):
        ids = list(queryset.order_by().values_list("pk", flat=True)[:batch])
        if not ids:
            break
        with transaction.atomic():
            count, _by_model = model._default_manager.filter(pk__in=ids).delete()
        deleted += count
        if len(ids) < batch:
            break
    return deleted


def withdrawn_hashes_expired(*, now: dt.datetime) -> QuerySet[ImageHash]:
    """The hash values of images whose withdrawal is older than TOMBSTONE_RETENTION_DAYS.

    The age is the withdrawal change's, on the database's clock: the one the feeds compare
    cursors with (the sync feeds), so a hash goes exactly when the last cursor that could need it
    expires.
    """
    horizon = now - dt.timedelta(days=settings.TOMBSTONE_RETENTION_DAYS)
    expired_images = Change.objects.filter(
        kind=Change.Kind.WITHDRAWN, created_at__lt=horizon
    ).values("image_id")
    return ImageHash.objects.filter(
        image__status=RegisteredImage.Status.WITHDRAWN, image_id__in=expired_images
    )


def withdrawn_hashes_purge(*, now: dt.datetime | None = None) -> int:
    """Delete the hash values of images withdrawn more than TOMBSTONE_RETENTION_DAYS ago.

    Returns how many hash values (ImageHash rows, 8 an image) were deleted. The images, their
    changes and the audit record stay (see the module doc).
    """
    moment = now or timezone.now()
    deleted = delete_in_batches(withdrawn_hashes_expired(now=moment))
    if deleted:
        logger.info("retention: %d hash value(s) of withdrawn images deleted", deleted)
    # A withdrawn video's file MD5 goes with its frames: it is a hash of the file too.
    horizon = moment - dt.timedelta(days=settings.TOMBSTONE_RETENTION_DAYS)
    RegisteredImage.objects.filter(
        kind=RegisteredImage.Kind.VIDEO,
        status=RegisteredImage.Status.WITHDRAWN,
        md5__isnull=False,
        pk__in=Change.objects.filter(kind=Change.Kind.WITHDRAWN, created_at__lt=horizon).values(
            "image_id"
        ),
    ).update(md5=None)
    return deleted


def expired_sessions_purge() -> None:
    """Delete expired sessions (staff logins to the admin), as ``clearsessions`` does."""
    engine = import_module(settings.SESSION_ENGINE)
    engine.SessionStore.clear_expired()


def registry_records_purge(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Every retention job of the registry's own records; what each deleted, by name."""
    hashes = withdrawn_hashes_purge(now=now)
    expired_sessions_purge()
    return {"withdrawn_hashes": hashes}


def idempotency_records_purge(*, now: dt.datetime) -> int:
    """Delete idempotency records older than IDEMPOTENCY_KEY_HOURS (24): a retry that late is a
    new request anyway (api.idempotency)."""
    cutoff = now - dt.timedelta(hours=IDEMPOTENCY_KEY_HOURS)
    return delete_in_batches(IdempotencyRecord.objects.filter(created_at__lt=cutoff))


def webhook_deliveries_purge(*, now: dt.datetime) -> int:
    """Delete delivered webhooks older than WEBHOOK_DELIVERED_RETENTION_DAYS, and failed ones
    whose last attempt is older than WEBHOOK_FAILED_RETENTION_DAYS. Pending ones are never
    deleted.

    Each partner's latest delivery (highest change) is kept whatever its age: the outbox derives a
    partner's next deliveries from the changes after it (registry.webhooks.outbox), and without it
    would derive, and send again, everything since the partner joined."""
    latest: list[int] = []
    for partner_id in Partner.objects.values_list("pk", flat=True):
        last = (
            WebhookDelivery.objects.filter(partner_id=partner_id)
            .order_by("-change_id")
            .values_list("pk", flat=True)
            .first()
        )
        if last is not None:
            latest.append(last)
    delivered_before = now - dt.timedelta(days=settings.WEBHOOK_DELIVERED_RETENTION_DAYS)
    failed_before = now - dt.timedelta(days=settings.WEBHOOK_FAILED_RETENTION_DAYS)
    # A claim moves next_attempt_at past the attempt (registry.webhooks.outbox.delivery_claim), so
    # for a row that is final it bounds its last attempt from above: the condition on it selects
    # through the (status, next_attempt_at) index, and a row it misses now goes at a later run.
    expired = WebhookDelivery.objects.filter(
        Q(
            status=WebhookDelivery.Status.DELIVERED,
            next_attempt_at__lt=delivered_before,
            delivered_at__lt=delivered_before,
        )
        | Q(status=WebhookDelivery.Status.FAILED, next_attempt_at__lt=failed_before)
    ).exclude(pk__in=latest)
    return delete_in_batches(expired)


def match_calls_purge(*, now: dt.datetime) -> int:
    """Delete match call records older than MATCH_CALL_RETENTION_DAYS, partner by partner (the
    (partner, created_at) index)."""
    cutoff = now - dt.timedelta(days=settings.MATCH_CALL_RETENTION_DAYS)
    return sum(
        delete_in_batches(MatchCall.objects.filter(partner_id=partner_id, created_at__lt=cutoff))
        for partner_id in Partner.objects.values_list("pk", flat=True)
    )


def partner_records_purge(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Every retention job of the partner API's records; what each deleted, by name."""
    moment = now or timezone.now()
    deleted = {
        "idempotency_records": idempotency_records_purge(now=moment),
        "webhook_deliveries": webhook_deliveries_purge(now=moment),
        "match_calls": match_calls_purge(now=moment),
    }
    if any(deleted.values()):
        logger.info(
            "retention: %s deleted",
            ", ".join(f"{count} {name}" for name, count in deleted.items()),
        )
    return deleted
