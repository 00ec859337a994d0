"""OpenAPI generation: component names, groups and summaries, and the partner key's scheme.

Operations are grouped by what a partner does (TAGS, in the order the docs show them, match
first), each summarised by the first line of its view's docstring.

Views follow the one-class-per-operation style with nested ``InputSerializer`` and
``OutputSerializer``; naming components by the serializer's qualified name (``MatchApi.Input``
becomes ``MatchApiInput``) keeps them distinct in the schema.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers

# Each group: its name, what a partner does there, and the modules of its views.
TAGS: list[tuple[str, str, tuple[str, ...]]] = [
    (
        "Match",
        "Check an image before publishing it or running an AI edit on it.",
        ("api.views.match",),
    ),
    (
        "Sync",
        "Keep a local copy of the hash list (scope sync): additions, withdrawals, their "
        "acknowledgement.",
        ("api.views.sync",),
    ),
    ("Feedback", "Say what you did with a match.", ("api.views.feedback",)),
    (
        "Cases",
        "Register, check, add to and withdraw a case with its reference and secret (no key).",
        ("api.views.cases",),
    ),
    (
        "StopNCII-compatible",
        "The StopNCII.org wire format, for Meta's threatexchange client unchanged.",
        ("api.stopncii.views",),
    ),
]


def tags_declare(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Schema post-processing: declare the groups, in order, with what each is for."""
    result["tags"] = [{"name": name, "description": text} for name, text, _ in TAGS]
    return result


class AutoSchema(SpectacularAutoSchema):
    def get_tags(self) -> list[str]:
        module = type(self.view).__module__
        return [name for name, _, modules in TAGS if module in modules] or super().get_tags()

    def get_summary(self) -> str | None:
        lines = (type(self.view).__doc__ or "").strip().splitlines()
        return lines[0].strip().rstrip(".") if lines else None

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
