"""Celery tasks of the partner API: thin wrappers around the webhook services.

``webhook_deliveries_dispatch_task`` is enqueued by registry.services after every addition or
withdrawal commits (by name: registry does not import api); ``webhook_deliveries_sweep_task``
runs on Celery beat (CELERY_BEAT_SCHEDULE) and does the same work, so that a change whose
enqueue failed, or a retry that fell due, is never left behind.

``retention_purge_task``, also on beat, deletes the partner API's records whose retention
period is over (docs/privacy.md); the registry's own are registry.tasks.retention_purge_task.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, cast

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from api.idempotency import IDEMPOTENCY_KEY_HOURS
from api.models import IdempotencyRecord, MatchCall, Partner, WebhookDelivery
from api.services import (
    webhook_deliveries_dispatch,
    webhook_deliveries_sweep,
    webhook_delivery_send,
)
from registry.retention import delete_in_batches

logger = logging.getLogger(__name__)

P = ParamSpec("P")


class Task(Protocol[P]):
    """What this module uses of a Celery task, typed (Celery ships no type hints)."""

    name: str

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None: ...

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Any: ...


def _task(function: Callable[P, None]) -> Task[P]:
    return cast(Task[P], shared_task(ignore_result=True)(function))


def _enqueue_sends(delivery_ids: list[int]) -> None:
    for delivery_id in delivery_ids:
        webhook_delivery_send_task.delay(delivery_id)


@_task
def webhook_deliveries_dispatch_task() -> None:
    """Derive deliveries from the changes just committed and send them."""
    _enqueue_sends(webhook_deliveries_dispatch())


@_task
def webhook_deliveries_sweep_task() -> None:
    """The periodic safety net: derive what nobody dispatched, send every due delivery."""
    _enqueue_sends(webhook_deliveries_sweep())


@_task
def webhook_delivery_send_task(delivery_id: int) -> None:
    """One attempt of one delivery (a no-op if it is not due or another worker holds it)."""
    webhook_delivery_send(delivery_id=delivery_id)


# --- Retention of the partner API's records (registry.retention, docs/privacy.md) -------------


def idempotency_records_purge(*, now: dt.datetime) -> int:
    """Delete idempotency records older than IDEMPOTENCY_KEY_HOURS (24): a retry that late is a
    new request anyway (api.idempotency)."""
    cutoff = now - dt.timedelta(hours=IDEMPOTENCY_KEY_HOURS)
    return delete_in_batches(IdempotencyRecord.objects.filter(created_at__lt=cutoff))


def webhook_deliveries_purge(*, now: dt.datetime) -> int:
    """Delete delivered webhooks older than WEBHOOK_DELIVERED_RETENTION_DAYS, and failed ones
    whose last attempt is older than WEBHOOK_FAILED_RETENTION_DAYS. Pending ones are never
    deleted.

    Each partner's latest delivery (highest change) is kept whatever its age: the outbox derives
    a partner's next deliveries from the changes after it (api.outbox), and without it would
    derive, and send again, everything since the partner joined.
    """
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
    # A claim moves next_attempt_at past the attempt (api.outbox.delivery_claim), so for a row
    # that is final it bounds its last attempt from above: the condition on it selects through
    # the (status, next_attempt_at) index, and a row it misses now goes at a later run.
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


@_task
def retention_purge_task() -> None:
    """Delete the partner API's records whose retention period is over."""
    partner_records_purge()
