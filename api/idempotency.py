"""Idempotency-Key on the partner API's creating POSTs (registry.services.idempotency).

The key is scoped to the partner's API key, or to the public client's daily digest.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request
from rest_framework.response import Response

from api.authentication import PartnerPrincipal
from api.errors import ApiError
from registry.ratelimits import client_digest
from registry.services.idempotency import HEADER, idempotency_key_valid, idempotent_run

Post = Callable[..., Response]

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    HEADER,
    type=str,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Optional, 1 to 255 printable ASCII characters (a random UUID): a retry with the same key "
        "and body within 24 hours answers what the first request answered and creates nothing; "
        "the same key with another body is refused with 422 idempotency_key_reused."
    ),
)


def _scope(request: Request) -> str:
    principal = request.user
    if isinstance(principal, PartnerPrincipal):
        return f"partner:{principal.key.pk}"
    return f"client:{client_digest(request._request)}"


def idempotent(post: Post) -> Post:
    """Make an APIView ``post`` honour the optional Idempotency-Key header (see module doc)."""

    @functools.wraps(post)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return post(view, request, *args, **kwargs)
        if not idempotency_key_valid(key):
            raise ApiError(
                400, "idempotency_key_invalid", "An Idempotency-Key is 1 to 255 ASCII characters."
            )

        def run() -> tuple[Response, int, Any]:
            response = post(view, request, *args, **kwargs)
            return response, response.status_code, response.data

        def replay(status_code: int, data: Any) -> Response:
            response = Response(data, status=status_code)
            response["Idempotent-Replayed"] = "true"
            return response

        def reused() -> Response:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was used with another request body: use a new key.",
            )

        return idempotent_run(
            scope=_scope(request),
            key=key,
            request_digest=hashlib.sha256(request.body).hexdigest(),
            run=run,
            replay=replay,
            reused=reused,
        )

    return wrapper
