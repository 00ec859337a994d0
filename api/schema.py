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
