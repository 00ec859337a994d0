"""The webhook outbox: deliveries derived from the change sequence, claimed, sent and retried.

Every addition and withdrawal appends to the change sequence (registry.Change) in its own
transaction, and sequence numbers become visible in commit order. For each partner with a
webhook, the dispatcher turns the changes after the last one it derived into WebhookDelivery
rows, one per (partner, change): running it twice, or in two processes at once, writes nothing
twice. Sending is at least once: a row is claimed for a short lease, attempted, and either
delivered, rescheduled with exponential backoff, or given up (``failed``) after
WEBHOOK_MAX_ATTEMPTS attempts. A worker that dies mid-attempt leaves the row pending; it is due
again when the lease ends.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from registry.match_ids import match_id_encode
from registry.models import Change, Partner, RegisteredImage, WebhookDelivery
from registry.webhooks.sender import deliver

logger = logging.getLogger(__name__)

# A reviewer's suspension is a removal, as a withdrawal is: partners that know only these two
# types do the right thing; its payload says ``"reason": "suspended"`` for those that care.
EVENT_TYPES = {
    Change.Kind.ADDED: "image.added",
    Change.Kind.WITHDRAWN: "image.withdrawn",
    Change.Kind.SUSPENDED: "image.withdrawn",
}
# Serialises dispatchers, so that two never read the same "last derived change" at once.
_DISPATCH_LOCK = 0x5745424B  # "WEBK"
# Changes turned into deliveries per partner in one dispatch; the sweep continues a backlog.
DISPATCH_BATCH = 1000


def retry_delay(attempts: int) -> dt.timedelta:
    """How long to wait after the ``attempts``-th failed attempt: base, doubling, capped."""
    base = settings.WEBHOOK_RETRY_BASE_SECONDS
    cap = settings.WEBHOOK_RETRY_CAP_SECONDS
    exponent = max(0, attempts - 1)
    seconds = cap if exponent >= 32 else min(cap, base * 2**exponent)
    return dt.timedelta(seconds=seconds)


def webhook_id_for(*, partner_id: int, change_id: int) -> str:
    """The delivery's id: derived from (partner, change) under the pepper, so stable forever and
    unlinkable across partners."""
    digest = hmac.new(
        settings.KEY_PEPPER.encode(),
        f"rempart webhook id v1:{partner_id}:{change_id}".encode(),
        hashlib.sha256,
    ).digest()
    return "msg_" + base64.b32encode(digest[:20]).decode().lower()


def partners_with_webhooks() -> list[Partner]:
    """Active partners with a webhook URL and a secret to sign with."""
    return list(
        Partner.objects.filter(is_active=True)
        .exclude(webhook_url="")
        .exclude(webhook_secret="")
        .order_by("pk")
    )


def _derive_for_partner(partner: Partner) -> list[WebhookDelivery]:
    last = WebhookDelivery.objects.filter(partner=partner).aggregate(last=Max("change_id"))["last"]
    changes = Change.objects.select_related("image").order_by("pk")
    if last is None:
        # A partner's first webhooks start with the changes made since it joined: the sync feed,
        # not a flood of notifications, is how a partner catches up with history.
        changes = changes.filter(created_at__gte=partner.created_at)
    else:
        changes = changes.filter(pk__gt=last)
    changes = changes.filter(image__scope__in=partner.received_scopes)
    now = timezone.now()
    rows: list[WebhookDelivery] = []
    for change in changes[:DISPATCH_BATCH]:
        event_type = EVENT_TYPES[Change.Kind(change.kind)]
        data = {
            "id": match_id_encode(image_id=change.image_id, partner_id=partner.pk),
            "scope": change.image.scope,
            "minor_depicted": change.image.minor_depicted,
        }
        if change.image.kind == RegisteredImage.Kind.VIDEO:
            # A photo's event is unchanged; a video's says so. Neither carries a hash.
            data["media"] = RegisteredImage.Kind.VIDEO
        if change.kind == Change.Kind.SUSPENDED:
            data["reason"] = "suspended"
        rows.append(
            WebhookDelivery(
                partner=partner,
                change=change,
                webhook_id=webhook_id_for(partner_id=partner.pk, change_id=change.pk),
                event_type=event_type,
                payload={
                    "type": event_type,
                    "timestamp": change.created_at.isoformat().replace("+00:00", "Z"),
                    "data": data,
                },
                next_attempt_at=now,
                created_at=now,
            )
        )
    return rows


def deliveries_derive() -> list[int]:
    """Derive the deliveries of every change not yet derived, for every partner with a webhook.

    Idempotent: a (partner, change) pair gets one row ever. Returns the ids of the rows this
    call wrote (none when another dispatcher got there first).
    """
    written: list[str] = []
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_DISPATCH_LOCK])
        for partner in partners_with_webhooks():
            rows = _derive_for_partner(partner)
            if rows:
                WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
                written.extend(row.webhook_id for row in rows)
    if not written:
        return []
    logger.info("webhook deliveries derived: %d", len(written))
    return list(
        WebhookDelivery.objects.filter(webhook_id__in=written, attempts=0)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def deliveries_due(*, limit: int = 500) -> list[int]:
    """Ids of pending deliveries whose next attempt is due, oldest first."""
    return list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def delivery_claim(delivery_id: int) -> WebhookDelivery | None:
    """Claim a due pending delivery for one attempt, or None if it is not due or taken.

    The claim counts the attempt and moves the next attempt past a lease, atomically, so two
    workers handed the same id never send it at the same time.
    """
    now = timezone.now()
    lease = dt.timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + 30)
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("partner")
            .filter(
                pk=delivery_id,
                status=WebhookDelivery.Status.PENDING,
                next_attempt_at__lte=now,
            )
            .first()
        )
        if delivery is None:
            return None
        delivery.attempts += 1
        delivery.next_attempt_at = now + lease
        delivery.save(update_fields=["attempts", "next_attempt_at"])
    return delivery


def delivery_attempt(delivery_id: int) -> WebhookDelivery | None:
    """Claim, send and record one attempt of a delivery; None if there was nothing to do.

    A delivered row is final. A failed attempt reschedules the row after retry_delay, or marks
    it ``failed`` after WEBHOOK_MAX_ATTEMPTS attempts or when the partner no longer has an
    active webhook.
    """
    delivery = delivery_claim(delivery_id)
    if delivery is None:
        return None
    partner = delivery.partner
    if not (partner.is_active and partner.webhook_url and partner.webhook_secret):
        _record(delivery, delivered=False, error="the partner has no active webhook", final=True)
        return delivery
    result = deliver(
        url=partner.webhook_url,
        secret=partner.webhook_secret,
        webhook_id=delivery.webhook_id,
        timestamp=int(timezone.now().timestamp()),
        payload=delivery.payload,
    )
    _record(delivery, delivered=result.delivered, error=result.error, final=False)
    return delivery


def _record(delivery: WebhookDelivery, *, delivered: bool, error: str, final: bool) -> None:
    now = timezone.now()
    pending = WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookDelivery.Status.PENDING)
    if delivered:
        delivery.status = WebhookDelivery.Status.DELIVERED
        delivery.delivered_at = now
        delivery.last_error = ""
        pending.update(status=delivery.status, delivered_at=now, last_error="")
        return
    delivery.last_error = error[:500]
    if final or delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        delivery.status = WebhookDelivery.Status.FAILED
        logger.warning("webhook %s given up after %d attempts", delivery.pk, delivery.attempts)
    else:
        delivery.next_attempt_at = now + retry_delay(delivery.attempts)
    # Only the claim that counted this attempt records it: a later claim has moved on.
    pending.filter(attempts=delivery.attempts).update(
        status=delivery.status,
        last_error=delivery.last_error,
        next_attempt_at=delivery.next_attempt_at,
    )
