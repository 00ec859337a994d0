"""The admin of cases: cases, their consent records, images, hashes, changes and the audit
record, all read-only, with hashes truncated and no secret."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest

from registry.admin.base import ReadOnlyAdmin, ReadOnlyInline
from registry.models import (
    AuditEvent,
    Case,
    Change,
    ConsentRecord,
    ImageHash,
    RegisteredImage,
    WithdrawalAck,
)
from registry.pdq import truncated


class ConsentInline(ReadOnlyInline):
    model = ConsentRecord
    readonly_fields = (
        "scope",
        "depicted_or_acting_for",
        "rights_to_register",
        "minor_depicted",
        "terms_version",
        "language",
        "created_at",
    )
    fields = readonly_fields


class ImageInline(ReadOnlyInline):
    model = RegisteredImage
    readonly_fields = ("kind", "quality", "duration", "status", "created_at", "withdrawn_at")
    fields = readonly_fields


@admin.register(Case)
class CaseAdmin(ReadOnlyAdmin):
    list_display = [
        "reference",
        "status",
        "scope",
        "image_count",
        "video_count",
        "created_at",
        "withdrawn_at",
    ]
    list_filter = ["status", "consent__scope", "created_at"]
    search_fields = ["reference"]
    # secret_digest is deliberately absent: not even its digest is shown.
    readonly_fields = ("reference", "status", "created_at", "withdrawn_at")
    fields = readonly_fields
    inlines = [ConsentInline, ImageInline]

    @admin.display(description="scope")
    def scope(self, obj: Case) -> str:
        return obj.consent.scope

    @admin.display(description="photos")
    def image_count(self, obj: Case) -> int:
        return int(getattr(obj, "photos", 0))

    @admin.display(description="videos")
    def video_count(self, obj: Case) -> int:
        return int(getattr(obj, "videos", 0))

    def get_queryset(self, request: HttpRequest) -> Any:
        return (
            super()
            .get_queryset(request)
            .select_related("consent")
            .annotate(
                photos=Count("images", filter=Q(images__kind=RegisteredImage.Kind.PHOTO)),
                videos=Count("images", filter=Q(images__kind=RegisteredImage.Kind.VIDEO)),
            )
        )


class HashInline(ReadOnlyInline):
    model = ImageHash
    # A video's frames show their time and quality, in time order.
    readonly_fields = ("variant", "hash_prefix", "frame_at", "frame_quality")
    fields = readonly_fields
    ordering = ("frame_at", "pk")
    show_change_link = False

    @admin.display(description="hash (truncated)")
    def hash_prefix(self, obj: ImageHash) -> str:
        return truncated(bytes(obj.value))


class WithdrawalAckInline(ReadOnlyInline):
    """Which partners confirmed they applied this image's withdrawal, and when."""

    model = WithdrawalAck
    verbose_name = "partner confirmation of the withdrawal"
    verbose_name_plural = "partner confirmations of the withdrawal"
    readonly_fields = ("partner", "acknowledged_at")
    fields = readonly_fields
    ordering = ("acknowledged_at",)
    show_change_link = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[WithdrawalAck]:
        return super().get_queryset(request).select_related("partner")


@admin.register(RegisteredImage)
class RegisteredImageAdmin(ReadOnlyAdmin):
    list_display = [
        "pk",
        "case",
        "kind",
        "quality",
        "status",
        "created_at",
        "withdrawn_at",
        "withdrawal_confirmations",
    ]
    list_filter = ["kind", "status", "created_at"]
    search_fields = ["case__reference"]
    readonly_fields = (
        "case",
        "kind",
        "md5_prefix",
        "duration",
        "quality",
        "status",
        "created_at",
        "withdrawn_at",
    )
    fields = readonly_fields
    inlines = [HashInline, WithdrawalAckInline]

    @admin.display(description="video MD5 (truncated)")
    def md5_prefix(self, obj: RegisteredImage) -> str:
        return truncated(bytes(obj.md5)) if obj.md5 is not None else "-"

    @admin.display(description="partners confirmed withdrawal")
    def withdrawal_confirmations(self, obj: RegisteredImage) -> int | str:
        if obj.status != RegisteredImage.Status.WITHDRAWN:
            return "-"
        return int(getattr(obj, "confirmations", 0))

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).annotate(confirmations=Count("withdrawal_acks"))


@admin.register(Change)
class ChangeAdmin(ReadOnlyAdmin):
    list_display = ["pk", "kind", "image", "created_at"]
    list_filter = ["kind"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "action", "actor", "subject"]
    list_filter = ["action", "created_at"]
    search_fields = ["subject", "actor"]
    readonly_fields = ("created_at", "action", "actor", "subject", "details")
    fields = readonly_fields


# --- The review queue -------------------------------------------------------------------------


# --- The allow-list ---------------------------------------------------------------------------
