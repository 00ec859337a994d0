"""Every Celery task of the registry: thin wrappers around services, named ``<service>_task``.

- ``webhook_deliveries_dispatch_task`` is enqueued after every addition or withdrawal commits
  (registry.services.changes); ``webhook_deliveries_sweep_task`` runs on Celery beat
  (CELERY_BEAT_SCHEDULE) and does the same work, so that a change whose enqueue failed, or a
  retry that fell due, is never left behind; ``webhook_delivery_send_task`` is one attempt.
- ``case_records_purge_task`` and ``partner_records_purge_task``, on beat, delete what the
  retention periods of docs/privacy.md no longer allow keeping (registry.services.retention).
- ``images_dispute_on_match_spikes_task``, on beat, disputes images whose matches spiked
  (registry.services.review).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, cast

from celery import shared_task

from registry.services import retention, review
from registry.services.webhooks import (
    webhook_deliveries_dispatch,
    webhook_deliveries_sweep,
    webhook_delivery_send,
)

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


@_task
def case_records_purge_task() -> None:
    """Delete the hash values of withdrawn photos past their tombstones, and expired sessions."""
    retention.registry_records_purge()


@_task
def partner_records_purge_task() -> None:
    """Delete idempotency records, webhook deliveries and match calls past their periods."""
    retention.partner_records_purge()


@_task
def images_dispute_on_match_spikes_task() -> None:
    """Dispute the images whose matches spiked (the review's spike rule)."""
    review.images_dispute_on_match_spikes()
