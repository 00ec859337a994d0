"""``POST /api/v1/feedback``: a partner's verdict on one of its matches (scope feedback)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.authentication import PartnerPrincipal, require_scope
from api.errors import ApiError
from api.fields import PARTNER_ERRORS, ErrorSerializer, TextField
from api.idempotency import IDEMPOTENCY_KEY_PARAMETER, idempotent
from registry import services
from registry.match_ids import match_id_decode
from registry.models import Feedback, PartnerKey, RegisteredImage


class FeedbackCreateApi(APIView):
    """Report what you did with a match: blocked after human review, not blocked, or pending."""

    permission_classes = [require_scope(PartnerKey.Scope.FEEDBACK)]

    class InputSerializer(serializers.Serializer[Any]):
        match_id = TextField(max_length=64, trim_whitespace=False)
        verdict = serializers.ChoiceField(choices=Feedback.Verdict.values)
        tags = serializers.ListField(
            child=TextField(max_length=100), max_length=32, required=False, default=list
        )

    class OutputSerializer(serializers.Serializer[Any]):
        match_id = serializers.CharField()
        verdict = serializers.CharField()
        tags = serializers.ListField(child=serializers.CharField())
        created_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="feedback_create",
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            404: OpenApiResponse(ErrorSerializer, description="No match with this id for you"),
            **PARTNER_ERRORS,
        },
    )
    @idempotent
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        principal = request.user
        assert isinstance(principal, PartnerPrincipal)
        partner_id = principal.partner.pk
        image_id = match_id_decode(data["match_id"], partner_id=partner_id)
        if image_id is None or not RegisteredImage.objects.filter(pk=image_id).exists():
            raise ApiError(404, "match_not_found", "No match with this id was issued to you.")
        [feedback] = services.feedback_record(
            partner_id=partner_id, image_ids=[image_id], verdict=data["verdict"], tags=data["tags"]
        )
        return Response(
            {
                "match_id": data["match_id"],
                "verdict": feedback.verdict,
                "tags": feedback.tags,
                "created_at": feedback.created_at,
            },
            status=201,
        )
