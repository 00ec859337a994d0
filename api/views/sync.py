"""The native sync feed and withdrawal acknowledgements (scope ``sync``).

- ``GET /api/v1/hashes/changes``: every addition and withdrawal in change-sequence order, with
  opaque cursors. Answers are never cached (``Cache-Control: no-store``): they carry raw hashes.
- ``POST /api/v1/withdrawals/ack``: the partner confirms it applied withdrawals.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.authentication import (
    PartnerPrincipal,
    partner_principal,
    require_scope,
)
from api.cursors import cursor_encode, cursor_parse
from api.errors import ApiError
from api.fields import (
    PARTNER_ERRORS,
    ErrorSerializer,
    OpaqueIdField,
    check_batch,
)
from api.throttling import PartnerSyncThrottle
from registry.dbrouting import replica_reads
from registry.derivatives import DERIVED_VIEW_KINDS, REFRAMED, REGIONS, WHOLE
from registry.match_ids import match_id_encode
from registry.models import PartnerKey, RegisteredImage
from registry.pdq import format_hash
from registry.selectors.changes import change_created_at_or_before
from registry.selectors.feeds import (
    partner_changes_read,
)
from registry.services.distribution import withdrawal_ack_record

logger = logging.getLogger(__name__)

DEFAULT_LIMIT = 500
MAX_LIMIT = 1000


def no_store(response: Response) -> Response:
    add_never_cache_headers(response)
    response["Cache-Control"] = "no-store"
    return response


def check_retention(change_id: int) -> None:
    """Refuse, with 410, a position older than the tombstones the registry keeps."""
    if change_id == 0:
        return
    horizon = timezone.now() - dt.timedelta(days=settings.TOMBSTONE_RETENTION_DAYS)
    created_at = change_created_at_or_before(change_id)
    if created_at is None or created_at < horizon:
        raise ApiError(
            410,
            "cursor_expired",
            "This cursor is older than the withdrawals the registry keeps "
            f"({settings.TOMBSTONE_RETENTION_DAYS} days): delete what you hold from this feed "
            "and resync from the beginning, without a cursor.",
            {"retention_days": settings.TOMBSTONE_RETENTION_DAYS},
        )


class HashChangesApi(APIView):
    """Every addition and withdrawal of the hash list, in order, from a cursor (scope sync)."""

    permission_classes = [require_scope(PartnerKey.Scope.SYNC)]
    throttle_classes = [PartnerSyncThrottle]

    class InputSerializer(serializers.Serializer[Any]):
        cursor = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
        limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT)

    class HashSerializer(serializers.Serializer[Any]):
        variant = serializers.CharField(
            help_text="A dihedral variant (original, rot90...) or the name of a derived view."
        )
        kind = serializers.ChoiceField(
            choices=[WHOLE, REFRAMED, REGIONS],
            help_text="whole for the 8 dihedral hashes; reframed or regions for derived views.",
        )
        hash = serializers.CharField(help_text="64 hexadecimal digits (PDQ).")

    class FeedFrameSerializer(serializers.Serializer[Any]):
        hash = serializers.CharField(help_text="64 hexadecimal digits (the frame's PDQ hash).")
        quality = serializers.IntegerField(help_text="The frame's PDQ quality, 50 to 100.")
        timestamp = serializers.FloatField(help_text="The frame's time in the video, seconds.")

    class EntrySerializer(serializers.Serializer[Any]):
        id = serializers.CharField(help_text="The image's opaque id, the match_id of /match.")
        kind = serializers.ChoiceField(choices=["added", "withdrawn"])
        status = serializers.ChoiceField(choices=["active", "disputed", "withdrawn", "suspended"])
        scope = serializers.ChoiceField(choices=["intimate", "no_sexual_edit"])
        minor_depicted = serializers.BooleanField()
        changed_at = serializers.DateTimeField()
        media = serializers.ChoiceField(
            choices=["video"],
            required=False,
            help_text="video for a video (additions and tombstones); absent for a photo.",
        )
        hashes = serializers.ListField(
            child=serializers.DictField(),
            required=False,
            help_text=(
                "Additions only: a photo's 8 dihedral hashes, then its derived views; empty for a"
                " video."
            ),
        )
        frames = serializers.ListField(
            child=serializers.DictField(),
            required=False,
            help_text=(
                "Video additions only: its vPDQ frames (quality 50 or more, each hash once), in"
                " time order (docs/videos.md)."
            ),
        )
        md5 = serializers.CharField(
            required=False,
            help_text="Video additions only: the MD5 of the video's file, 32 hexadecimal digits.",
        )

    class OutputSerializer(serializers.Serializer[Any]):
        entries = serializers.ListField(child=serializers.DictField())
        next_cursor = serializers.CharField()
        has_more = serializers.BooleanField()

    EntrySerializer._declared_fields["hashes"] = HashSerializer(many=True, required=False)
    EntrySerializer._declared_fields["frames"] = FeedFrameSerializer(many=True, required=False)
    OutputSerializer._declared_fields["entries"] = EntrySerializer(many=True)

    @extend_schema(
        operation_id="hash_changes",
        parameters=[InputSerializer],
        responses={
            200: OutputSerializer,
            410: OpenApiResponse(ErrorSerializer, description="Cursor expired: resync"),
            **PARTNER_ERRORS,
        },
    )
    # The key, its scope and the budget were checked on the primary before get() is called;
    # the feed's own reads tolerate a replica's lag (registry.dbrouting, docs/scaling.md).
    @replica_reads()
    def get(self, request: Request) -> Response:
        # A plain dict: an empty value is refused, not read as the default.
        serializer = self.InputSerializer(data=request.query_params.dict())
        serializer.is_valid(raise_exception=True)
        text = serializer.validated_data.get("cursor") or ""
        after_id = cursor_parse(text) if text else 0
        check_retention(after_id)
        partner = partner_principal(request).partner
        page = partner_changes_read(
            partner=partner, after_id=after_id, limit=serializer.validated_data["limit"]
        )
        entries: list[dict[str, Any]] = []
        for entry in page.entries:
            item: dict[str, Any] = {
                "id": match_id_encode(image_id=entry.image_id, partner_id=partner.pk),
                "kind": entry.kind,
                "status": entry.status,
                "scope": entry.scope,
                "minor_depicted": entry.minor_depicted,
                "changed_at": entry.changed_at.isoformat(),
            }
            if entry.media == RegisteredImage.Kind.VIDEO:
                item["media"] = RegisteredImage.Kind.VIDEO
            if entry.kind == "added":
                item["hashes"] = [
                    {
                        "variant": variant,
                        "kind": DERIVED_VIEW_KINDS.get(variant, WHOLE),
                        "hash": format_hash(value),
                    }
                    for variant, value in entry.hashes
                ]
                if entry.media == RegisteredImage.Kind.VIDEO:
                    item["frames"] = [
                        {
                            "hash": format_hash(frame.value),
                            "quality": frame.quality,
                            "timestamp": frame.timestamp,
                        }
                        for frame in entry.frames
                    ]
                    item["md5"] = (entry.md5 or b"").hex()
            entries.append(item)
        next_id = page.last_change_id if page.last_change_id is not None else after_id
        return no_store(
            Response(
                {
                    "entries": entries,
                    "next_cursor": cursor_encode(next_id),
                    "has_more": page.has_more,
                }
            )
        )


# --- StopNCII wire format -------------------------------------------------------------------


MAX_IDS_PER_ACK = 1000


class WithdrawalAckApi(APIView):
    """Confirm that you applied withdrawals: the registry shows which partners did, and when."""

    permission_classes = [require_scope("sync")]

    class InputSerializer(serializers.Serializer[Any]):
        ids = serializers.ListField(
            child=OpaqueIdField(max_length=64, trim_whitespace=False),
            allow_empty=False,
            help_text="Opaque image ids issued to you (in webhooks, the sync feed or matches).",
        )

    class OutputSerializer(serializers.Serializer[Any]):
        acknowledged = serializers.ListField(
            child=serializers.CharField(), help_text="Recorded now or before."
        )
        unknown = serializers.ListField(
            child=serializers.CharField(), help_text="Not issued to you, or no such image."
        )
        not_withdrawn = serializers.ListField(
            child=serializers.CharField(), help_text="Not withdrawn: nothing to acknowledge."
        )

    @extend_schema(
        operation_id="withdrawal_ack",
        request=InputSerializer,
        responses={200: OutputSerializer, **PARTNER_ERRORS},
    )
    def post(self, request: Request) -> Response:
        check_batch(request.data, "ids", MAX_IDS_PER_ACK)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        principal = request.user
        assert isinstance(principal, PartnerPrincipal)
        result = withdrawal_ack_record(
            partner=principal.partner, ids=serializer.validated_data["ids"]
        )
        return Response(
            {
                "acknowledged": result.acknowledged,
                "unknown": result.unknown,
                "not_withdrawn": result.not_withdrawn,
            }
        )
