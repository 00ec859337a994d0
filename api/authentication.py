"""Partner authentication: ``Authorization: Bearer <key>``, and scopes.

A key is checked with one HMAC (no slow password hash per request) against its digest, read
once per process and then kept until PostgreSQL notifies a change to the key or its partner
(registry.keycache): a revocation takes effect on every web process within a second, and
while a process cannot hear those notices it reads the key on every request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from api.errors import ApiError
from registry.keys import PREFIX
from registry.models import Partner, PartnerKey
from registry.selectors.partners import partner_key_authenticate

# Query parameters under which clients sometimes put keys; refused wherever they appear.
_KEY_PARAMETERS = frozenset({"key", "api_key", "apikey", "token", "access_token", "authorization"})


@dataclass(frozen=True, slots=True)
class PartnerPrincipal:
    """The authenticated caller of a partner endpoint (DRF's ``request.user``)."""

    partner: Partner
    key: PartnerKey

    is_authenticated = True
    is_anonymous = False

    def has_scope(self, scope: str) -> bool:
        return self.key.has_scope(scope)


def refuse_key_in_query(request: Request) -> None:
    """Refuse a request carrying a key in its URL: URLs end up in logs and browser history."""
    for name, values in request.query_params.lists():
        if name.lower() in _KEY_PARAMETERS or any(
            value.startswith(f"{PREFIX}_") for value in values
        ):
            raise ApiError(
                400,
                "key_in_url",
                "Never put an API key in a URL: send it as 'Authorization: Bearer <key>', "
                "and revoke this key, which may now be in logs.",
            )


class PartnerKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer rmp_...``."""

    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[PartnerPrincipal, PartnerKey] | None:
        refuse_key_in_query(request)
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != self.keyword or len(header) != 2:
            raise ApiError(
                401, "key_invalid", "Send your API key as 'Authorization: Bearer <key>'."
            )
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raw = ""
        key = partner_key_authenticate(raw)
        if key is None:
            raise ApiError(401, "key_invalid", "This API key is unknown, revoked or expired.")
        return PartnerPrincipal(partner=key.partner, key=key), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="rempart"'


def require_scope(scope: str) -> type[BasePermission]:
    """A DRF permission: an authenticated partner whose key has ``scope`` (401, then 403)."""

    class HasScope(BasePermission):
        def has_permission(self, request: Request, view: Any) -> bool:
            user = request.user
            if not isinstance(user, PartnerPrincipal):
                raise ApiError(
                    401, "key_required", "Send your API key as 'Authorization: Bearer <key>'."
                )
            if not user.has_scope(scope):
                raise ApiError(
                    403,
                    "scope_missing",
                    f"This API key lacks the '{scope}' scope.",
                    {"scope": scope},
                )
            return True

    HasScope.__name__ = f"HasScope_{scope}"
    return HasScope


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

    target_class = "api.authentication.StopNCIIKeyAuthentication"
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


def partner_principal(request: Request) -> PartnerPrincipal:
    principal = request.user
    assert isinstance(principal, PartnerPrincipal)
    return principal
