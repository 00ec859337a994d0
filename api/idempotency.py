"""Idempotency-Key on the POSTs that create something: a retried request creates nothing new.

The key is scoped to the partner's API key, or to the public client's daily digest. The first
request inserts an IdempotencyRecord in the same transaction as what it creates: a concurrent
duplicate waits on the unique index, then replays the stored answer; a request that fails
stores nothing and may be retried. The same key with another body is refused with 422
``idempotency_key_reused``. Records are kept IDEMPOTENCY_KEY_HOURS (24).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request
from rest_framework.response import Response

from api.authentication import PartnerPrincipal
from api.errors import ApiError
from api.models import IdempotencyRecord
from registry.ratelimits import client_digest

IDEMPOTENCY_KEY_HOURS = 24
HEADER = "Idempotency-Key"
_MAX_KEY_LENGTH = 255

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


def _replay(record: IdempotencyRecord, scope: str, key: str, request_digest: str) -> Response:
    if not hmac.compare_digest(record.request_digest, request_digest):
        raise ApiError(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used with another request body: use a new key.",
        )
    response = Response(
        _unseal(scope, key, bytes(record.response_sealed)), status=record.status_code
    )
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(post: Post) -> Post:
    """Make an APIView ``post`` honour the optional Idempotency-Key header (see module doc)."""

    @functools.wraps(post)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return post(view, request, *args, **kwargs)
        if not key or len(key) > _MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
            raise ApiError(
                400, "idempotency_key_invalid", "An Idempotency-Key is 1 to 255 ASCII characters."
            )
        scope = _scope(request)
        key_digest = _derived("key", scope, key).hex()
        request_digest = hashlib.sha256(request.body).hexdigest()
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
                return _replay(existing, scope, key, request_digest)
            response = post(view, request, *args, **kwargs)
            if 200 <= response.status_code < 300:
                record.status_code = response.status_code
                record.response_sealed = _seal(scope, key, response.data)
                record.save(update_fields=["status_code", "response_sealed"])
            else:
                transaction.set_rollback(True)
            return response

    return wrapper
