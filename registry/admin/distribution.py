"""The admin of distribution: webhook deliveries and withdrawal acknowledgements, read-only."""

from __future__ import annotations

from django.contrib import admin

from registry.admin.base import ReadOnlyAdmin
from registry.models import WebhookDelivery, WithdrawalAck


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """The webhook delivery log: read-only (the outbox is written only by
    registry.webhooks.outbox)."""

    list_display = [
        "webhook_id",
        "partner",
        "event_type",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "delivered_at",
        "last_error",
    ]
    list_filter = ["status", "event_type", "partner"]
    search_fields = ["webhook_id"]
    readonly_fields = (
        "webhook_id",
        "partner",
        "change",
        "event_type",
        "payload",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "created_at",
        "delivered_at",
    )
    fields = readonly_fields
    list_select_related = ["partner"]


@admin.register(WithdrawalAck)
class WithdrawalAckAdmin(ReadOnlyAdmin):
    """Which partner confirmed which withdrawal, and when (by partner name; read-only)."""

    list_display = ["image", "partner_name", "acknowledged_at"]
    list_filter = ["acknowledged_at"]
    search_fields = ["image__case__reference"]
    readonly_fields = ("image", "partner_id", "partner_name", "acknowledged_at")
    fields = readonly_fields
    list_select_related = ["partner", "image"]

    @admin.display(description="partner", ordering="partner__name")
    def partner_name(self, obj: WithdrawalAck) -> str:
        return obj.partner.name
