"""The public case endpoints: a helpline or a person's own tool registers, checks, adds to and
withdraws a case with its reference and secret (no partner key; limited per client).

Each view parses its input, calls one service or selector, and renders; errors become the one
error body of api.errors.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.authentication import refuse_key_in_query
from api.errors import ApiError
from api.fields import (
    CASE_ERRORS,
    ERRORS,
    ErrorSerializer,
    HashTextField,
    TextField,
    TruthField,
    WholeNumberField,
    check_batch,
)
from api.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from api.throttling import limit_client
from registry import services
from registry.pdq import (
    parse_images,
)
from registry.ratelimits import client_digest
from registry.selectors.cases import case_summary
from registry.videos import parse_videos


class CaseCredentialsSerializer(serializers.Serializer[Any]):
    case_reference = TextField(max_length=64, trim_whitespace=False)
    case_secret = TextField(max_length=64, trim_whitespace=False)


class ImageSerializer(serializers.Serializer[Any]):
    hashes = serializers.ListField(
        child=HashTextField(),
        help_text="The 8 dihedral PDQ hashes, in pdqhash's order, the original first.",
    )
    quality = WholeNumberField(min_value=0, max_value=100)
    views = serializers.DictField(
        child=HashTextField(),
        required=False,
        help_text=(
            "The photo's derived views (registry.derivatives.registered_views: crops, cuts and "
            "masked views of PDQ quality 50 or more), as an object of view name to hash."
        ),
    )


class FrameSerializer(serializers.Serializer[Any]):
    hash = HashTextField(help_text="The frame's PDQ hash.")
    quality = WholeNumberField(min_value=0, max_value=100)
    timestamp = serializers.FloatField(min_value=0, help_text="Seconds from the start.")


class VideoSerializer(serializers.Serializer[Any]):
    frames = FrameSerializer(
        many=True,
        help_text=(
            "The vPDQ frame list (one frame a second, docs/videos.md); frames of quality below "
            "50 are left out."
        ),
    )
    md5 = serializers.CharField(min_length=32, max_length=32, help_text="The file's MD5.")
    duration = serializers.FloatField(min_value=0, help_text="Seconds.")


def _items(view: APIView, request: Request) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """Validate the body without its videos, which registry.videos parses (a serializer would
    cost more than the rest of the call for a long video); return it with its photos and
    videos."""
    body = request.data
    videos_value = body.get("videos") if isinstance(body, dict) else None
    if isinstance(body, dict):
        body = {name: value for name, value in body.items() if name != "videos"}
    serializer = view.InputSerializer(data=body)  # type: ignore[attr-defined]
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    limit = settings.REGISTRY_MAX_IMAGES_PER_REQUEST
    images = parse_images(data.get("images", []), limit=limit)
    videos = parse_videos(videos_value, limit=limit - len(images))
    if not images and not videos:
        # The code a missing photo always had, before videos could stand in for photos.
        raise ApiError(
            400,
            "invalid_request",
            "Register at least one photo or video.",
            {"images": ["Register at least one photo or video."]},
        )
    return data, images, videos


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
        images = ImageSerializer(many=True, allow_empty=True, required=False)
        videos = VideoSerializer(many=True, required=False)

    class OutputSerializer(serializers.Serializer[Any]):
        case_reference = serializers.CharField()
        case_secret = serializers.CharField()

    @extend_schema(
        operation_id="case_create",
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        request=InputSerializer,
        responses={201: OutputSerializer, **ERRORS},
        auth=[],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        check_batch(request.data, "images", settings.REGISTRY_MAX_IMAGES_PER_REQUEST)
        data, images, videos = _items(self, request)
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
            images=images,
            videos=videos,
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
    images = serializers.IntegerField(help_text="Photos and videos.")
    active_images = serializers.IntegerField()
    videos = serializers.IntegerField(help_text="Of images, how many are videos.")
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
        responses={200: CaseSummarySerializer, **CASE_ERRORS},
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
        responses={200: CaseSummarySerializer, **CASE_ERRORS},
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
        images = ImageSerializer(many=True, allow_empty=True, required=False)
        videos = VideoSerializer(many=True, required=False)

    @extend_schema(
        operation_id="case_add_images",
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        request=InputSerializer,
        responses={
            201: CaseSummarySerializer,
            409: OpenApiResponse(ErrorSerializer, description="The case was withdrawn"),
            **CASE_ERRORS,
        },
        auth=[],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        check_batch(request.data, "images", settings.REGISTRY_MAX_IMAGES_PER_REQUEST)
        data, images, videos = _items(self, request)
        case = self._case(data)
        services.case_add_images(case=case, images=images, videos=videos)
        return Response(CaseSummarySerializer(case_summary(case=case)).data, status=201)
