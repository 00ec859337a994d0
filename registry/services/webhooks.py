"""Webhook services: derive deliveries from the change sequence, sweep, send one."""

from __future__ import annotations

from registry.models import WebhookDelivery
from registry.webhooks import outbox


def webhook_deliveries_dispatch() -> list[int]:
    """Derive webhook deliveries from the changes not yet derived (registry.webhooks.outbox), for
    every partner
    with a webhook; return the ids of the deliveries written, for the caller to send.

    Idempotent and safe to run in several processes at once: a (partner, change) pair gets one
    delivery, whose ``webhook_id`` never changes.
    """
    return outbox.deliveries_derive()


def webhook_deliveries_sweep() -> list[int]:
    """The periodic catch-up: derive as webhook_deliveries_dispatch does (changes whose enqueue
    failed), then return the ids of every pending delivery now due (first attempts and
    retries), for the caller to send. Sending a due id twice is harmless (see the claim)."""
    outbox.deliveries_derive()
    return outbox.deliveries_due()


def webhook_delivery_send(*, delivery_id: int) -> WebhookDelivery | None:
    """Make one attempt of a due delivery: claim it, POST it signed, record the outcome.

    Returns None when the delivery is not due, already final, or claimed by another worker.
    Never raises for the partner's faults: they become a retry, or ``failed`` after the last.
    """
    return outbox.delivery_attempt(delivery_id)
