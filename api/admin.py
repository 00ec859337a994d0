"""Django admin for partners and their keys: digests are never shown."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from api.models import Partner, PartnerKey


class PartnerKeyInline(admin.TabularInline[Any, Any]):
    model = PartnerKey
    extra = 0
    can_delete = False
    readonly_fields = ("lookup_id", "scopes", "created_at", "expires_at", "revoked_at")
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # Keys are issued by the service, which shows the key once.


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin[Partner]):
    list_display = ["name", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name"]
    readonly_fields = ["created_at"]
    inlines = [PartnerKeyInline]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
