"""Idempotency-Key on the POSTs that create something: a retried request creates nothing new.

The key is scoped to the partner's API key, or to the public client's daily digest. The first
request inserts an IdempotencyRecord in the same transaction as what it creates: a concurrent
duplicate waits on the unique index, then replays the stored answer; a request that fails
stores nothing and may be retried. The same key with another body is refused with 422
``idempotency_key_reused``. Records are kept IDEMPOTENCY_KEY_HOURS (24).

The people's register and add-photos pages use the same mechanism (``idempotent_page_call``),
scoped to the client's daily digest. Their answer holds the case secret of a registration: it is
kept only sealed (AES-GCM) under a key derived from the server's secret and the Idempotency-Key,
which is itself kept only as an HMAC, so the answer can be replayed to whoever sends the key
again, and to nobody holding only a copy of the database.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request
from rest_framework.response import Response

from api.authentication import PartnerPrincipal
from api.errors import ApiError
from api.models import IdempotencyRecord
from registry.ratelimits import client_digest
from registry.web.errors import json_error

IDEMPOTENCY_KEY_HOURS = 24
HEADER = "Idempotency-Key"
_MAX_KEY_LENGTH = 255

Post = Callable[..., Response]
PageView = TypeVar("PageView", bound=Callable[..., HttpResponse])
R = TypeVar("R")

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


def _derived(purpose: str, scope: str, key: str) -> bytes:
    message = f"idempotency:{purpose}:{scope}:{key}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).digest()


def _seal(scope: str, key: str, data: Any) -> bytes:
    nonce = os.urandom(12)
    plain = json.dumps(data, separators=(",", ":")).encode()
    return nonce + AESGCM(_derived("seal", scope, key)).encrypt(nonce, plain, None)


def _unseal(scope: str, key: str, sealed: bytes) -> Any:
    plain = AESGCM(_derived("seal", scope, key)).decrypt(sealed[:12], sealed[12:], None)
    return json.loads(plain)


def _valid_key(key: str) -> bool:
    return bool(key) and len(key) <= _MAX_KEY_LENGTH and key.isprintable() and key.isascii()


def _once(
    *,
    scope: str,
    key: str,
    request_digest: str,
    run: Callable[[], tuple[R, int, Any]],
    replay: Callable[[int, Any], R],
    reused: Callable[[], R],
) -> R:
    """Run ``run`` once for (scope, key); a retry gets ``replay`` of what it answered.

    ``run`` returns the response, its status and the data to keep for a replay; only a 2xx is
    kept, anything else rolls back with what ``run`` wrote. Another body under the same key gets
    ``reused()``.
    """
    key_digest = _derived("key", scope, key).hex()
    fresh_after = timezone.now() - dt.timedelta(hours=IDEMPOTENCY_KEY_HOURS)
    with transaction.atomic():
        IdempotencyRecord.objects.filter(
            scope=scope, key_digest=key_digest, created_at__lt=fresh_after
        ).delete()
        try:
            with transaction.atomic():
                # A concurrent first request holds this row's index entry: wait for it.
                record = IdempotencyRecord.objects.create(
                    scope=scope, key_digest=key_digest, request_digest=request_digest
                )
        except IntegrityError:
            existing = IdempotencyRecord.objects.get(scope=scope, key_digest=key_digest)
            if not hmac.compare_digest(existing.request_digest, request_digest):
                return reused()
            return replay(
                existing.status_code, _unseal(scope, key, bytes(existing.response_sealed))
            )
        response, status_code, data = run()
        if 200 <= status_code < 300:
            record.status_code = status_code
            record.response_sealed = _seal(scope, key, data)
            record.save(update_fields=["status_code", "response_sealed"])
        else:
            transaction.set_rollback(True)
        return response


def idempotent(post: Post) -> Post:
    """Make an APIView ``post`` honour the optional Idempotency-Key header (see module doc)."""

    @functools.wraps(post)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return post(view, request, *args, **kwargs)
        if not _valid_key(key):
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

        return _once(
            scope=_scope(request),
            key=key,
            request_digest=hashlib.sha256(request.body).hexdigest(),
            run=run,
            replay=replay,
            reused=reused,
        )

    return wrapper


def idempotent_page_call(view: PageView) -> PageView:
    """The same for a people's page's JSON call (a plain Django view answering JsonResponse).

    The key is scoped to the client's daily digest (``web:<digest>``) and the request to its
    path and body; the stored answer, the receipt with the case secret of a registration, is
    sealed as above. A malformed key or another body under the same key is answered with the
    pages' translated error body (registry.web.errors).
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        key = request.headers.get(HEADER)
        if key is None:
            return view(request, *args, **kwargs)
        if not _valid_key(key):
            return json_error(400, "idempotency_key_invalid")

        def run() -> tuple[HttpResponse, int, Any]:
            response = view(request, *args, **kwargs)
            if not 200 <= response.status_code < 300:
                return response, response.status_code, None
            return response, response.status_code, json.loads(response.content)

        def replay(status_code: int, data: Any) -> HttpResponse:
            response = JsonResponse(data, status=status_code)
            response["Idempotent-Replayed"] = "true"
            return response

        request_digest = hashlib.sha256(request.path.encode() + b"\n" + request.body).hexdigest()
        return _once(
            scope=f"web:{client_digest(request)}",
            key=key,
            request_digest=request_digest,
            run=run,
            replay=replay,
            reused=lambda: json_error(422, "idempotency_key_reused"),
        )

    return wrapper  # type: ignore[return-value]
