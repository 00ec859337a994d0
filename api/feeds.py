"""The sync feeds: the native change feed and the StopNCII-compatible routes.

- ``GET /api/v1/hashes/changes`` (scope ``sync``, ``Authorization: Bearer``): every addition
  and withdrawal in change-sequence order, with opaque cursors.
- ``GET /v1/FetchHashes``, ``POST /v1/SubmitFeedback``, ``POST /v1/SubmitHashes`` (scopes
  ``sync``, ``feedback``, ``submit``): the StopNCII.org wire format, authenticated by the
  partner's key in ``Ocp-Apim-Subscription-Key``, with ``x-functions-key`` present.

Feed answers are never cached (``Cache-Control: no-store``): they carry raw hashes.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from redis.exceptions import RedisError
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from api import stopncii
from api.authentication import PartnerPrincipal, refuse_key_in_query, require_scope
from api.cursors import cursor_encode, cursor_parse
from api.errors import ApiError
from api.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from api.match_ids import match_id_encode
from api.models import PartnerKey
from api.services import partner_changes_read, partner_hash_records_read, partner_key_authenticate
from api.views import _PARTNER_ERRORS, ErrorSerializer, TextField, WholeNumberField
from registry import services
from registry.pdq import InvalidHash, format_hash, parse_hash
from registry.selectors import (
    change_created_at_or_before,
    change_last_before,
    images_disclosed_with_hash,
)

logger = logging.getLogger(__name__)

DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
MAX_ITEMS_PER_POST = 1000
# 9999-12-31T23:59:59Z: the last second a datetime can hold.
MAX_TIMESTAMP = 253_402_300_799


def _principal(request: Request) -> PartnerPrincipal:
    principal = request.user
    assert isinstance(principal, PartnerPrincipal)
    return principal


def _no_store(response: Response) -> Response:
    add_never_cache_headers(response)
    response["Cache-Control"] = "no-store"
    return response


class PartnerSyncThrottle(SimpleRateThrottle):
    """SYNC_REQUESTS_PER_MINUTE feed requests a partner may make, both feeds together.

    Counted per partner (never per address) on the shared cache; past it, 429 ``rate_limited``
    with Retry-After. With the cache unreachable the request goes through (logged), as for the
    other limits: a partner's sync of withdrawals matters more than the limit.
    """

    scope = "sync"

    def get_rate(self) -> str:
        return f"{settings.SYNC_REQUESTS_PER_MINUTE}/min"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        principal = request.user
        if not isinstance(principal, PartnerPrincipal):
            return None
        return f"rl:sync:{principal.partner.pk}"

    def allow_request(self, request: Request, view: APIView) -> bool:
        try:
            return super().allow_request(request, view)
        except (RedisError, OSError):
            logger.warning("rate-limit cache unreachable; sync feeds not limited")
            return True


def _check_retention(change_id: int) -> None:
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
        variant = serializers.CharField()
        hash = serializers.CharField(help_text="64 hexadecimal digits (PDQ).")

    class EntrySerializer(serializers.Serializer[Any]):
        id = serializers.CharField(help_text="The image's opaque id, the match_id of /match.")
        kind = serializers.ChoiceField(choices=["added", "withdrawn"])
        status = serializers.ChoiceField(choices=["active", "disputed", "withdrawn", "suspended"])
        scope = serializers.ChoiceField(choices=["intimate", "no_sexual_edit"])
        minor_depicted = serializers.BooleanField()
        changed_at = serializers.DateTimeField()
        hashes = serializers.ListField(
            child=serializers.DictField(), required=False, help_text="Additions only: 8 hashes."
        )

    class OutputSerializer(serializers.Serializer[Any]):
        entries = serializers.ListField(child=serializers.DictField())
        next_cursor = serializers.CharField()
        has_more = serializers.BooleanField()

    EntrySerializer._declared_fields["hashes"] = HashSerializer(many=True, required=False)
    OutputSerializer._declared_fields["entries"] = EntrySerializer(many=True)

    @extend_schema(
        operation_id="hash_changes",
        parameters=[InputSerializer],
        responses={
            200: OutputSerializer,
            410: OpenApiResponse(ErrorSerializer, description="Cursor expired: resync"),
            **_PARTNER_ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        # A plain dict: an empty value is refused, not read as the default.
        serializer = self.InputSerializer(data=request.query_params.dict())
        serializer.is_valid(raise_exception=True)
        text = serializer.validated_data.get("cursor") or ""
        after_id = cursor_parse(text) if text else 0
        _check_retention(after_id)
        partner = _principal(request).partner
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
            if entry.kind == "added":
                item["hashes"] = [
                    {"variant": variant, "hash": format_hash(value)}
                    for variant, value in entry.hashes
                ]
            entries.append(item)
        next_id = page.last_change_id if page.last_change_id is not None else after_id
        return _no_store(
            Response(
                {
                    "entries": entries,
                    "next_cursor": cursor_encode(next_id),
                    "has_more": page.has_more,
                }
            )
        )


# --- StopNCII wire format -------------------------------------------------------------------


class StopNCIIKeyAuthentication(BaseAuthentication):
    """``Ocp-Apim-Subscription-Key: rmp_...`` with ``x-functions-key`` present.

    StopNCII gives each partner a subscription key and one function key per endpoint; the
    registry's key is both. The function key must be present, as the client always sends it,
    and may carry the same key; only the subscription key names the partner.
    """

    def authenticate(self, request: Request) -> tuple[PartnerPrincipal, PartnerKey]:
        refuse_key_in_query(request)
        subscription = request.headers.get("Ocp-Apim-Subscription-Key", "")
        function = request.headers.get("x-functions-key", "")
        if not subscription or not function:
            raise ApiError(
                401,
                "key_required",
                "Send your API key in 'Ocp-Apim-Subscription-Key', and an 'x-functions-key' "
                "header (it may carry the same key).",
            )
        key = partner_key_authenticate(subscription)
        if key is None:
            raise ApiError(401, "key_invalid", "This API key is unknown, revoked or expired.")
        return PartnerPrincipal(partner=key.partner, key=key), key

    def authenticate_header(self, request: Request) -> str:
        return 'ApiKey realm="rempart"'


class StopNCIIKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """The two headers of the StopNCII format, both required."""

    target_class = "api.feeds.StopNCIIKeyAuthentication"
    name = ["stopnciiSubscriptionKey", "stopnciiFunctionKey"]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, str]]:
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "Ocp-Apim-Subscription-Key",
                "description": "Your partner API key, rmp_<lookup id>_<secret>.",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "x-functions-key",
                "description": "Required by the format; may carry the same key.",
            },
        ]


class StopNCIIApi(APIView):
    authentication_classes = [StopNCIIKeyAuthentication]


class StopNCIIFetchHashesApi(StopNCIIApi):
    """StopNCII ``FetchHashes``: the hash list as per-hash records, paged (scope sync)."""

    permission_classes = [require_scope(PartnerKey.Scope.SYNC)]
    throttle_classes = [PartnerSyncThrottle]

    class InputSerializer(serializers.Serializer[Any]):
        startTimestamp = serializers.IntegerField(  # noqa: N815 - the wire format's name
            min_value=0, max_value=MAX_TIMESTAMP, default=10
        )
        pageSize = serializers.IntegerField(  # noqa: N815
            min_value=1, max_value=stopncii.MAX_PAGE_SIZE, default=stopncii.DEFAULT_PAGE_SIZE
        )
        nextPageToken = serializers.CharField(  # noqa: N815
            required=False, allow_blank=True, trim_whitespace=False
        )

    class RecordSerializer(serializers.Serializer[Any]):
        lastModtimestamp = serializers.IntegerField()  # noqa: N815
        signalType = serializers.CharField()  # noqa: N815
        hashValue = serializers.CharField(help_text="64 hexadecimal digits (PDQ).")  # noqa: N815
        hashStatus = serializers.ChoiceField(  # noqa: N815
            choices=[stopncii.STATUS_ACTIVE, stopncii.STATUS_WITHDRAWN]
        )
        caseNumbers = serializers.DictField(  # noqa: N815
            child=serializers.CharField(), help_text="Your opaque image ids, with their status."
        )
        CSPFeedbacks = serializers.ListField(child=serializers.DictField())
        minorDepicted = serializers.BooleanField()  # noqa: N815

    class OutputSerializer(serializers.Serializer[Any]):
        count = serializers.IntegerField()
        nextPageToken = serializers.CharField(allow_null=True)  # noqa: N815
        nextSetTimestamp = serializers.IntegerField()  # noqa: N815
        hasMoreRecords = serializers.BooleanField()  # noqa: N815
        hashRecords = serializers.ListField(child=serializers.DictField())  # noqa: N815

    OutputSerializer._declared_fields["hashRecords"] = RecordSerializer(many=True)

    @extend_schema(
        operation_id="stopncii_fetch_hashes",
        parameters=[InputSerializer],
        responses={200: OutputSerializer, **_PARTNER_ERRORS},
    )
    def get(self, request: Request) -> Response:
        # A plain dict: an empty value is refused, not read as the default.
        serializer = self.InputSerializer(data=request.query_params.dict())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        start = data["startTimestamp"]
        token = data.get("nextPageToken") or ""
        # The token alone says where a page starts; the client repeats startTimestamp with it.
        if token:
            after_id = cursor_parse(token)
        else:
            after_id = change_last_before(dt.datetime.fromtimestamp(start, tz=dt.UTC))
        # A checkpoint older than the tombstones kept would miss withdrawals: refused, as the
        # native feed refuses such a cursor, so the client resyncs from the start.
        _check_retention(after_id)
        partner = _principal(request).partner
        records, page = partner_hash_records_read(
            partner=partner, after_id=after_id, limit=stopncii.changes_per_page(data["pageSize"])
        )
        position_time = change_created_at_or_before(after_id) if after_id else None
        return _no_store(
            Response(
                stopncii.fetch_response(
                    records,
                    page,
                    partner_id=partner.pk,
                    start_timestamp=start,
                    position_time=position_time,
                )
            )
        )


def _too_many(data: Any, field: str) -> None:
    items = data.get(field) if isinstance(data, dict) else None
    if isinstance(items, list) and len(items) > MAX_ITEMS_PER_POST:
        raise ApiError(
            413,
            f"too_many_{field}",
            f"At most {MAX_ITEMS_PER_POST} items in one request.",
            {"max_items": MAX_ITEMS_PER_POST},
        )


_TAGS = serializers.ListField(
    child=TextField(max_length=100), max_length=32, required=False, default=list
)


class StopNCIISubmitFeedbackApi(StopNCIIApi):
    """StopNCII ``SubmitFeedback``: verdicts on hashes this partner received (scope feedback).

    A hash names every image holding it whose hashes were served to this partner; values that
    carry no verdict, and hashes never served to it, are counted as ignored.
    """

    permission_classes = [require_scope(PartnerKey.Scope.FEEDBACK)]

    class ItemSerializer(serializers.Serializer[Any]):
        hashValue = TextField(max_length=200, trim_whitespace=False)  # noqa: N815
        feedbackValue = serializers.ChoiceField(  # noqa: N815
            choices=sorted(stopncii.FEEDBACK_VALUES)
        )
        tags = _TAGS

    class InputSerializer(serializers.Serializer[Any]):
        count = WholeNumberField(required=False, min_value=0)
        hashFeedbacks = serializers.ListField(child=serializers.DictField())  # noqa: N815

    InputSerializer._declared_fields["hashFeedbacks"] = ItemSerializer(many=True)

    class OutputSerializer(serializers.Serializer[Any]):
        count = serializers.IntegerField()
        recorded = serializers.IntegerField()
        ignored = serializers.IntegerField()

    @extend_schema(
        operation_id="stopncii_submit_feedback",
        request=InputSerializer,
        responses={200: OutputSerializer, **_PARTNER_ERRORS},
    )
    def post(self, request: Request) -> Response:
        _too_many(request.data, "hashFeedbacks")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        partner_id = _principal(request).partner.pk
        recorded = ignored = 0
        for item in serializer.validated_data["hashFeedbacks"]:
            verdict = stopncii.FEEDBACK_VERDICTS.get(item["feedbackValue"])
            image_ids = _disclosed_images(partner_id, item["hashValue"]) if verdict else []
            if not verdict or not image_ids:
                ignored += 1
                continue
            services.feedback_record(
                partner_id=partner_id, image_ids=image_ids, verdict=verdict, tags=item["tags"]
            )
            recorded += 1
        return Response({"count": recorded, "recorded": recorded, "ignored": ignored})


def _disclosed_images(partner_id: int, text: str) -> list[int]:
    try:
        value = parse_hash(text)
    except InvalidHash:
        return []
    return images_disclosed_with_hash(partner_id=partner_id, value=value)


class StopNCIISubmitHashesApi(StopNCIIApi):
    """StopNCII ``SubmitHashes``: PDQ hashes a partner found, held for review (scope submit).

    Each enters as an image awaiting review, with no case: it matches nothing and is in no feed
    until a reviewer accepts it. All or nothing: one invalid record refuses the request (422).
    """

    permission_classes = [require_scope(PartnerKey.Scope.SUBMIT)]

    class RecordSerializer(serializers.Serializer[Any]):
        lastModtimestamp = WholeNumberField(required=False)  # noqa: N815
        signalType = TextField(max_length=64)  # noqa: N815
        hashValue = TextField(max_length=200, trim_whitespace=False)  # noqa: N815
        CSPFeedbacks = serializers.ListField(
            child=serializers.DictField(), required=False, max_length=32
        )

    class InputSerializer(serializers.Serializer[Any]):
        count = WholeNumberField(required=False, min_value=0)
        hashRecords = serializers.ListField(  # noqa: N815
            child=serializers.DictField(), allow_empty=False
        )

    InputSerializer._declared_fields["hashRecords"] = RecordSerializer(many=True, allow_empty=False)

    class OutputSerializer(serializers.Serializer[Any]):
        count = serializers.IntegerField()
        status = serializers.ChoiceField(choices=["Received"])

    @extend_schema(
        operation_id="stopncii_submit_hashes",
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        request=InputSerializer,
        responses={200: OutputSerializer, **_PARTNER_ERRORS},
    )
    @idempotent
    def post(self, request: Request) -> Response:
        _too_many(request.data, "hashRecords")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        hashes: list[bytes] = []
        for index, record in enumerate(serializer.validated_data["hashRecords"]):
            if record["signalType"] not in stopncii.ACCEPTED_SIGNAL_TYPES:
                raise ApiError(
                    422,
                    "signal_type_unsupported",
                    "The registry holds PDQ image hashes only (signalType 'ImagePDQ').",
                    {"index": index},
                )
            try:
                hashes.append(parse_hash(record["hashValue"]))
            except InvalidHash as error:
                raise InvalidHash(error.code, index=index) from None
        images = services.image_submit_by_partner(
            partner_id=_principal(request).partner.pk, hashes=hashes
        )
        return Response({"count": len(images), "status": "Received"})
