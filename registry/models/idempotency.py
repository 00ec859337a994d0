"""Idempotency records: a retried POST creates nothing new."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class IdempotencyRecord(models.Model):
    """One POST that created something, under a client's Idempotency-Key, kept 24 hours.

    ``scope`` is ``partner:<key id>`` or ``client:<daily client digest>``; ``key_digest`` an
    HMAC of the client's key (the key itself is not kept). The response is stored encrypted
    under a key derived from the Idempotency-Key and the server's secret, so the case secret of
    a registration can be replayed to whoever holds the Idempotency-Key, and to nobody with only
    a copy of the database. ``status_code`` 0: the first request is still running.
    """

    scope = models.CharField(max_length=80)
    key_digest = models.CharField(max_length=64)
    request_digest = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(default=0)
    response_sealed = models.BinaryField(default=b"")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        db_table = "api_idempotencyrecord"
        constraints = [
            models.UniqueConstraint(fields=["scope", "key_digest"], name="idempotency_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key_digest[:8]}"
