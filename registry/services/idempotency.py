"""Idempotency-Key on the requests that create something: a retried request creates nothing new.

The first request inserts an IdempotencyRecord in the same transaction as what it creates: a
concurrent duplicate waits on the unique index, then replays the stored answer; a request that
fails stores nothing and may be retried. The same key with another body is refused
(``idempotency_key_reused``). Records are kept IDEMPOTENCY_KEY_HOURS (24).

The answer of a registration holds the case secret: it is kept only sealed (AES-GCM) under a
key derived from the server's secret and the Idempotency-Key, which is itself kept only as an
HMAC, so the answer can be replayed to whoever sends the key again, and to nobody holding only a
copy of the database. The partner API (api.idempotency) and the people's pages
(registry.web.idempotency) wrap ``idempotent_run`` for their own requests and responses.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from registry.models import IdempotencyRecord

IDEMPOTENCY_KEY_HOURS = 24


HEADER = "Idempotency-Key"


_MAX_KEY_LENGTH = 255


R = TypeVar("R")


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


def idempotency_key_valid(key: str) -> bool:
    return bool(key) and len(key) <= _MAX_KEY_LENGTH and key.isprintable() and key.isascii()


def idempotent_run(
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
