"""The partner API and the public case endpoints: one thin class per operation.

Each view parses its input, calls one service or selector, and renders; errors become the one
error body of api.errors.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api import probing
from api.authentication import PartnerPrincipal, refuse_key_in_query, require_scope
from api.errors import ApiError, RateLimited
from api.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from api.match_ids import match_id_encode
from api.models import MatchCall
from api.services import partner_match, withdrawal_ack_record
from api.throttling import limit_client
from registry import services
from registry.exceptions import TooManyImages
from registry.pdq import (
    MATCH_DISTANCE,
    DihedralHashes,
    InvalidHash,
    parse_dihedral,
    parse_hash,
)
from registry.ratelimits import client_digest
from registry.selectors import case_summary

MAX_HASHES_PER_MATCH = 1000


class ErrorSerializer(serializers.Serializer[Any]):
    class Detail(serializers.Serializer[Any]):
        code = serializers.CharField()
        message = serializers.CharField()
        details = serializers.DictField()

    error = Detail()


_ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Malformed request"),
    413: OpenApiResponse(ErrorSerializer, description="Too many items in one request"),
    415: OpenApiResponse(ErrorSerializer, description="The body is not application/json"),
    422: OpenApiResponse(ErrorSerializer, description="An invalid hash or quality"),
    429: OpenApiResponse(ErrorSerializer, description="Rate limited; see Retry-After"),
    503: OpenApiResponse(
        ErrorSerializer, description="The database is unreachable for a moment; see Retry-After"
    ),
}
_PARTNER_ERRORS = {
    **_ERRORS,
    401: OpenApiResponse(ErrorSerializer, description="Missing, unknown, revoked or expired key"),
    403: OpenApiResponse(ErrorSerializer, description="The key lacks the scope"),
}
_CASE_ERRORS = {
    **_ERRORS,
    403: OpenApiResponse(ErrorSerializer, description="No case matches this reference and secret"),
}


class TextField(serializers.CharField):
    """A string, and only a string: a number or a boolean is refused, not turned into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class WholeNumberField(serializers.IntegerField):
    """A JSON whole number: text ("5") and booleans are refused, not converted."""

    def to_internal_value(self, data: Any) -> int:
        whole = isinstance(data, int) or (isinstance(data, float) and data.is_integer())
        if isinstance(data, bool) or not whole:
            self.fail("invalid")
        return super().to_internal_value(data)


class TruthField(serializers.BooleanField):
    """A JSON true or false: 1, "yes" and "true" are refused, not converted."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


@extend_schema_field(
    {
        "oneOf": [{"type": "string", "maxLength": 64}, {"type": "number"}],
        "description": "An opaque id issued to you; a number is read as its text (no such id).",
    }
)
class OpaqueIdField(serializers.CharField):
    """An opaque id in a list of them: a number is read as its text, an id never issued."""


@extend_schema_field(
    {"type": "string", "pattern": "^[0-9A-Fa-f]{64}$", "description": "64 hexadecimal digits."}
)
class HashTextField(serializers.CharField):
    """A PDQ hash as text, kept verbatim: registry.pdq parses it (422 when it is no hash)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trim_whitespace=False, **kwargs)


def _check_batch(data: Any, field: str, limit: int) -> None:
    """Answer 413 for an oversize batch before validating each item of it."""
    if isinstance(data, dict) and isinstance(data.get(field), list) and len(data[field]) > limit:
        raise ApiError(
            413,
            f"too_many_{field}",
            f"At most {limit} {field} in one request.",
            {f"max_{field}": limit},
        )


_HASH_TEXT = re.compile(r"[0-9A-Fa-f]{64}")


def _match_input_plain(data: Any) -> dict[str, Any] | None:
    """The input of a plainly well-formed match call, as MatchApi.InputSerializer validates it.

    None for anything else, which the serializer then checks and explains. Building that
    serializer costs more than the rest of a single-hash call's parsing (tests/load/); this
    accepts only what it would accept unchanged (64 hexadecimal digits, a purpose, a whole
    max_distance), so every refusal still comes from the serializer, word for word.
    """
    if type(data) is not dict:
        return None
    hashes = data.get("hashes")
    purpose = data.get("purpose")
    distance = data.get("max_distance", MATCH_DISTANCE)
    if not (
        type(hashes) is list
        and hashes
        and all(type(text) is str and _HASH_TEXT.fullmatch(text) for text in hashes)
        and type(purpose) is str
        and purpose in MatchCall.Purpose.values
        and type(distance) is int
        and 0 <= distance <= MATCH_DISTANCE
    ):
        return None
    return {"hashes": hashes, "purpose": purpose, "max_distance": distance}


class MatchApi(APIView):
    """Match up to 1,000 hashes before publishing an image or running an AI edit on it."""

    permission_classes = [require_scope("match")]

    class InputSerializer(serializers.Serializer[Any]):
        hashes = serializers.ListField(child=HashTextField(), allow_empty=False)
        purpose = serializers.ChoiceField(choices=MatchCall.Purpose.choices)
        max_distance = WholeNumberField(min_value=0, max_value=31, default=31)

    class MatchSerializer(serializers.Serializer[Any]):
        match_id = serializers.CharField(help_text="Opaque; stable for you, unknown to others.")
        scope = serializers.ChoiceField(choices=["intimate", "no_sexual_edit"])
        minor_depicted = serializers.BooleanField()
        status = serializers.ChoiceField(choices=["active", "disputed"])

    class ResultSerializer(serializers.Serializer[Any]):
        matches = serializers.ListField(child=serializers.DictField())

    class OutputSerializer(serializers.Serializer[Any]):
        results = serializers.ListField(child=serializers.DictField())

    # The schema names the nested shapes precisely.
    ResultSerializer._declared_fields["matches"] = MatchSerializer(many=True)
    OutputSerializer._declared_fields["results"] = ResultSerializer(many=True)

    @extend_schema(
        operation_id="match",
        request=InputSerializer,
        responses={200: OutputSerializer, **_PARTNER_ERRORS},
    )
    def post(self, request: Request) -> Response:
        _check_batch(request.data, "hashes", MAX_HASHES_PER_MATCH)
        data = _match_input_plain(request.data)
        if data is None:
            serializer = self.InputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
        hashes: list[bytes] = []
        for index, text in enumerate(data["hashes"]):
            try:
                hashes.append(parse_hash(text))
            except InvalidHash as error:
                raise InvalidHash(error.code, index=index) from None
        principal = request.user
        assert isinstance(principal, PartnerPrincipal)
        # Below the threshold, the distance would be an oracle that rebuilds a registered hash
        # (docs/threat-model.md); only keys that receive raw hashes anyway may lower it.
        if data["max_distance"] != MATCH_DISTANCE and "sync" not in principal.key.scopes:
            raise ApiError(
                403,
                "max_distance_not_allowed",
                "Only a key with the sync scope may lower max_distance.",
                {"max_distance": MATCH_DISTANCE},
            )
        results = partner_match(
            key=principal.key,
            hashes=hashes,
            purpose=data["purpose"],
            max_distance=data["max_distance"],
        )
        if probing.match_observe(key=principal.key, hashes=hashes, results=results):
            # The call that opens an alert is not answered: what it asked stays unknown.
            raise RateLimited(retry_after=60, details={"reason": "probing_alert"})
        partner_id = principal.partner.pk
        return Response(
            {
                "results": [
                    {
                        "matches": [
                            {
                                "match_id": match_id_encode(
                                    image_id=match.image_id, partner_id=partner_id
                                ),
                                "scope": match.scope,
                                "minor_depicted": match.minor_depicted,
                                "status": match.status,
                            }
                            for match in matches
                        ]
                    }
                    for matches in results
                ]
            }
        )


class CaseCredentialsSerializer(serializers.Serializer[Any]):
    case_reference = TextField(max_length=64, trim_whitespace=False)
    case_secret = TextField(max_length=64, trim_whitespace=False)


class ImageSerializer(serializers.Serializer[Any]):
    hashes = serializers.ListField(
        child=HashTextField(),
        help_text="The 8 dihedral PDQ hashes, in pdqhash's order, the original first.",
    )
    quality = WholeNumberField(min_value=0, max_value=100)


def _parse_images(items: list[dict[str, Any]]) -> list[DihedralHashes]:
    if len(items) > settings.REGISTRY_MAX_IMAGES_PER_REQUEST:
        raise TooManyImages(
            details={"max_images_per_request": settings.REGISTRY_MAX_IMAGES_PER_REQUEST}
        )
    parsed: list[DihedralHashes] = []
    for position, item in enumerate(items):
        try:
            parsed.append(parse_dihedral(item["hashes"], item["quality"]))
        except InvalidHash as error:
            error.location = {"image": position}  # type: ignore[attr-defined]
            raise
    return parsed


class PublicCaseApi(APIView):
    """Base of the public case endpoints: no partner key, limited per client."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    rate_group = "cases"

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        refuse_key_in_query(request)
        limit_client(request, group=self.rate_group, rate=settings.PUBLIC_CASE_RATE)

    def _case(self, data: dict[str, Any]) -> Any:
        return services.case_check_secret_limited(
            reference=data["case_reference"],
            secret=data["case_secret"],
            client=client_digest(self.request),
        )


class CaseCreateApi(PublicCaseApi):
    """Open a case with the hashes of one or more photos; the secret is shown this once."""

    rate_group = "cases.create"

    class InputSerializer(serializers.Serializer[Any]):
        class AttestationsSerializer(serializers.Serializer[Any]):
            depicted_or_acting_for = TruthField()
            rights_to_register = TruthField()
            minor_depicted = TruthField()

        scope = serializers.ChoiceField(choices=["intimate", "no_sexual_edit"])
        attestations = AttestationsSerializer()
        terms_version = TextField(max_length=32)
        language = serializers.ChoiceField(choices=["fr", "en"])
        images = ImageSerializer(many=True, allow_empty=False)

    class OutputSerializer(serializers.Serializer[Any]):
        case_reference = serializers.CharField()
        case_secret = serializers.CharField()

    @extend_schema(
        operation_id="case_create",
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        request=InputSerializer,
        responses={201: OutputSerializer, **_ERRORS},
        auth=[],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        _check_batch(request.data, "images", settings.REGISTRY_MAX_IMAGES_PER_REQUEST)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        attested = data["attestations"]
        created = services.case_create(
            scope=data["scope"],
            attestations=services.Attestations(
                depicted_or_acting_for=attested["depicted_or_acting_for"],
                rights_to_register=attested["rights_to_register"],
                minor_depicted=attested["minor_depicted"],
            ),
            terms_version=data["terms_version"],
            language=data["language"],
            images=_parse_images(data["images"]),
        )
        return Response(
            {"case_reference": created.case.reference, "case_secret": created.secret}, status=201
        )


class CaseSummarySerializer(serializers.Serializer[Any]):
    case_reference = serializers.CharField(source="reference")
    status = serializers.ChoiceField(choices=["active", "withdrawn"])
    scope = serializers.ChoiceField(choices=["intimate", "no_sexual_edit"])
    created_at = serializers.DateTimeField()
    withdrawn_at = serializers.DateTimeField(allow_null=True)
    images = serializers.IntegerField()
    active_images = serializers.IntegerField()
    partners_received = serializers.IntegerField(
        help_text="Partner platforms that received this case's hashes."
    )
    partners_blocked = serializers.IntegerField(
        help_text="Partner platforms that confirmed blocking a match of them."
    )


class CaseStatusApi(PublicCaseApi):
    """A case's status, dates and photo counts, for its reference and secret."""

    rate_group = "cases.status"

    @extend_schema(
        operation_id="case_status",
        request=CaseCredentialsSerializer,
        responses={200: CaseSummarySerializer, **_CASE_ERRORS},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = CaseCredentialsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        case = self._case(serializer.validated_data)
        return Response(CaseSummarySerializer(case_summary(case=case)).data)


class CaseWithdrawApi(PublicCaseApi):
    """Withdraw a case: its photos stop matching everywhere at once. Idempotent."""

    rate_group = "cases.withdraw"

    @extend_schema(
        operation_id="case_withdraw",
        request=CaseCredentialsSerializer,
        responses={200: CaseSummarySerializer, **_CASE_ERRORS},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = CaseCredentialsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        case = self._case(serializer.validated_data)
        services.case_withdraw(case=case)
        return Response(CaseSummarySerializer(case_summary(case=case)).data)


class CaseImagesApi(PublicCaseApi):
    """Add photos to an active case."""

    rate_group = "cases.images"

    class InputSerializer(CaseCredentialsSerializer):
        images = ImageSerializer(many=True, allow_empty=False)

    @extend_schema(
        operation_id="case_add_images",
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        request=InputSerializer,
        responses={
            201: CaseSummarySerializer,
            409: OpenApiResponse(ErrorSerializer, description="The case was withdrawn"),
            **_CASE_ERRORS,
        },
        auth=[],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        _check_batch(request.data, "images", settings.REGISTRY_MAX_IMAGES_PER_REQUEST)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        images = _parse_images(data["images"])
        case = self._case(data)
        services.case_add_images(case=case, images=images)
        return Response(CaseSummarySerializer(case_summary(case=case)).data, status=201)


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
        responses={200: OutputSerializer, **_PARTNER_ERRORS},
    )
    def post(self, request: Request) -> Response:
        _check_batch(request.data, "ids", MAX_IDS_PER_ACK)
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
