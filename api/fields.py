"""What the partner API's views share: strict serializer fields and the error responses of
the schema."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers

from api.errors import ApiError


class ErrorSerializer(serializers.Serializer[Any]):
    class Detail(serializers.Serializer[Any]):
        code = serializers.CharField()
        message = serializers.CharField()
        details = serializers.DictField()

    error = Detail()


ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Malformed request"),
    413: OpenApiResponse(ErrorSerializer, description="Too many items in one request"),
    415: OpenApiResponse(ErrorSerializer, description="The body is not application/json"),
    422: OpenApiResponse(ErrorSerializer, description="An invalid hash or quality"),
    429: OpenApiResponse(ErrorSerializer, description="Rate limited; see Retry-After"),
    503: OpenApiResponse(
        ErrorSerializer, description="The database is unreachable for a moment; see Retry-After"
    ),
}


PARTNER_ERRORS = {
    **ERRORS,
    401: OpenApiResponse(ErrorSerializer, description="Missing, unknown, revoked or expired key"),
    403: OpenApiResponse(ErrorSerializer, description="The key lacks the scope"),
}


CASE_ERRORS = {
    **ERRORS,
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


def check_batch(data: Any, field: str, limit: int) -> None:
    """Answer 413 for an oversize batch before validating each item of it."""
    if isinstance(data, dict) and isinstance(data.get(field), list) and len(data[field]) > limit:
        raise ApiError(
            413,
            f"too_many_{field}",
            f"At most {limit} {field} in one request.",
            {f"max_{field}": limit},
        )
