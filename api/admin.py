"""Django admin for partners and their keys: digests are never shown."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest

from api.models import Partner, PartnerKey, WebhookDelivery
from api.webhooks import secret_key
from registry.models import WithdrawalAck


class PartnerKeyInline(admin.TabularInline[Any, Any]):
    model = PartnerKey
    extra = 0
    can_delete = False
    readonly_fields = ("lookup_id", "scopes", "created_at", "expires_at", "revoked_at")
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # Keys are issued by the service, which shows the key once.


class PartnerAdminForm(forms.ModelForm[Partner]):
    """Refuses a webhook the registry could never call: http, or a URL without a secret."""

    webhook_url = forms.URLField(max_length=500, required=False, assume_scheme="https")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        url = cleaned.get("webhook_url") or ""
        secret = cleaned.get("webhook_secret") or ""
        if url and not (url.startswith("https://") or settings.WEBHOOK_ALLOW_PRIVATE_TARGETS):
            self.add_error("webhook_url", "A webhook address must be https.")
        if url and not secret:
            self.add_error("webhook_secret", "A webhook needs a secret to sign its deliveries.")
        if secret:
            try:
                secret_key(secret)
            except ValueError:
                self.add_error("webhook_secret", "After 'whsec_', a secret is base64.")
        return cleaned


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin[Partner]):
    form = PartnerAdminForm
    list_display = ["name", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name"]
    readonly_fields = ["created_at"]
    inlines = [PartnerKeyInline]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin[WebhookDelivery]):
    """The webhook delivery log: read-only (the outbox is written only by api.outbox)."""

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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WithdrawalAck)
class WithdrawalAckAdmin(admin.ModelAdmin[WithdrawalAck]):
    """Which partner confirmed which withdrawal, and when (by partner name; read-only)."""

    list_display = ["image", "partner_name", "acknowledged_at"]
    list_filter = ["acknowledged_at"]
    search_fields = ["image__case__reference"]
    readonly_fields = ("image", "partner_id", "partner_name", "acknowledged_at")
    fields = readonly_fields

    @admin.display(description="partner")
    def partner_name(self, obj: WithdrawalAck) -> str:
        partner = Partner.objects.filter(pk=obj.partner_id).first()
        return partner.name if partner else f"partner {obj.partner_id}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
