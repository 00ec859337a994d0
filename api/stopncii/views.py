"""The StopNCII-compatible routes, in the StopNCII.org wire format (api.wire.wire).

- ``GET /v1/FetchHashes`` (scope ``sync``): the hash list and its withdrawals, by time.
- ``POST /v1/SubmitFeedback`` (scope ``feedback``): verdicts on the hashes a partner received.
- ``POST /v1/SubmitHashes`` (scope ``submit``): hashes a partner submits for review.

Platforms that already fetch from StopNCII.org with Meta's ``threatexchange`` client point it
at the registry unchanged: the partner's key goes in ``Ocp-Apim-Subscription-Key``, with
``x-functions-key`` present. Feed answers are never cached: they carry raw hashes.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.authentication import StopNCIIKeyAuthentication, partner_principal, require_scope
from api.cursors import cursor_parse
from api.errors import ApiError
from api.fields import PARTNER_ERRORS, TextField, WholeNumberField
from api.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from api.stopncii import wire
from api.throttling import PartnerSyncThrottle
from api.views.sync import check_retention, no_store
from registry import services
from registry.dbrouting import replica_reads
from registry.models import PartnerKey
from registry.pdq import InvalidHash, parse_hash
from registry.selectors.changes import change_created_at_or_before, change_last_before
from registry.selectors.feeds import images_disclosed_with_hash, partner_hash_records_read

MAX_ITEMS_PER_POST = 1000


# 9999-12-31T23:59:59Z: the last second a datetime can hold.
MAX_TIMESTAMP = 253_402_300_799


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
            min_value=1, max_value=wire.MAX_PAGE_SIZE, default=wire.DEFAULT_PAGE_SIZE
        )
        nextPageToken = serializers.CharField(  # noqa: N815
            required=False, allow_blank=True, trim_whitespace=False
        )

    class RecordSerializer(serializers.Serializer[Any]):
        lastModtimestamp = serializers.IntegerField()  # noqa: N815
        signalType = serializers.ChoiceField(  # noqa: N815
            choices=[wire.SIGNAL_TYPE_PDQ, wire.SIGNAL_TYPE_VIDEO_MD5],
            help_text="ImagePDQ for a photo's hash, VideoMD5 for a video (its file's MD5).",
        )
        hashValue = serializers.CharField(  # noqa: N815
            help_text="ImagePDQ: 64 hexadecimal digits; VideoMD5: 32, lower case."
        )
        hashStatus = serializers.ChoiceField(  # noqa: N815
            choices=[wire.STATUS_ACTIVE, wire.STATUS_WITHDRAWN]
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
        responses={200: OutputSerializer, **PARTNER_ERRORS},
    )
    # As the native feed: the key was checked on the primary, the feed's reads may lag.
    @replica_reads()
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
        check_retention(after_id)
        partner = partner_principal(request).partner
        records, page = partner_hash_records_read(
            partner=partner, after_id=after_id, limit=wire.changes_per_page(data["pageSize"])
        )
        position_time = change_created_at_or_before(after_id) if after_id else None
        return no_store(
            Response(
                wire.fetch_response(
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

    A hash names every image holding it whose hashes were served to this partner (a video's MD5,
    every video whose file has it); values that carry no verdict, and hashes never served to it,
    are counted as ignored.
    """

    permission_classes = [require_scope(PartnerKey.Scope.FEEDBACK)]

    class ItemSerializer(serializers.Serializer[Any]):
        hashValue = TextField(max_length=200, trim_whitespace=False)  # noqa: N815
        feedbackValue = serializers.ChoiceField(  # noqa: N815
            choices=sorted(wire.FEEDBACK_VALUES)
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
        responses={200: OutputSerializer, **PARTNER_ERRORS},
    )
    def post(self, request: Request) -> Response:
        _too_many(request.data, "hashFeedbacks")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        partner_id = partner_principal(request).partner.pk
        recorded = ignored = 0
        for item in serializer.validated_data["hashFeedbacks"]:
            verdict = wire.FEEDBACK_VERDICTS.get(item["feedbackValue"])
            image_ids = _disclosed_images(partner_id, item["hashValue"]) if verdict else []
            if not verdict or not image_ids:
                ignored += 1
                continue
            services.feedback_record(
                partner_id=partner_id, image_ids=image_ids, verdict=verdict, tags=item["tags"]
            )
            recorded += 1
        return Response({"count": recorded, "recorded": recorded, "ignored": ignored})


_MD5_TEXT = re.compile(r"[0-9A-Fa-f]{32}")


def _disclosed_images(partner_id: int, text: str) -> list[int]:
    """The images disclosed to the partner that hold ``text``: a PDQ hash (64 hexadecimal
    digits) or a video's MD5 (32: StopNCII's feedback names no signal type, the length does)."""
    if _MD5_TEXT.fullmatch(text):
        return images_disclosed_with_hash(partner_id=partner_id, value=bytes.fromhex(text))
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
        responses={200: OutputSerializer, **PARTNER_ERRORS},
    )
    @idempotent
    def post(self, request: Request) -> Response:
        _too_many(request.data, "hashRecords")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        hashes: list[bytes] = []
        for index, record in enumerate(serializer.validated_data["hashRecords"]):
            if record["signalType"] not in wire.ACCEPTED_SIGNAL_TYPES:
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
            partner_id=partner_principal(request).partner.pk, hashes=hashes
        )
        return Response({"count": len(images), "status": "Received"})
