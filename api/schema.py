"""OpenAPI generation: component names and the partner key's security scheme.

Views follow the one-class-per-operation style with nested ``InputSerializer`` and
``OutputSerializer``; naming components by the serializer's qualified name (``MatchApi.Input``
becomes ``MatchApiInput``) keeps them distinct in the schema.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers


class AutoSchema(SpectacularAutoSchema):
    def get_serializer_name(self, serializer: serializers.Serializer[Any], direction: Any) -> str:
        return serializer.__class__.__qualname__.replace(".", "").replace("Serializer", "")

    def _map_serializer_field(
        self, field: Any, direction: Any, bypass_extensions: bool = False
    ) -> dict[str, Any]:
        """The field's schema, with ``minItems: 1`` for a list that refuses to be empty."""
        schema: dict[str, Any] = super()._map_serializer_field(  # type: ignore[no-untyped-call]
            field, direction, bypass_extensions
        )
        lists = (serializers.ListField, serializers.ListSerializer)
        if isinstance(field, lists) and not field.allow_empty and schema.get("type") == "array":
            schema.setdefault("minItems", 1)
        return schema


class PartnerKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """``Authorization: Bearer rmp_<lookup id>_<secret>``."""

    target_class = "api.authentication.PartnerKeyAuthentication"
    name = "partnerKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A partner API key: Authorization: Bearer rmp_<lookup id>_<secret>",
        }
