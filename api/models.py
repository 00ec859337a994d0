"""Partner platforms and their API keys.

A key is shown once, at issue. The registry keeps only a non-secret lookup id and an
HMAC-SHA256 digest of the whole key under a server-side pepper (``KEY_PEPPER``), so a copy of
the database lets nobody call the API, and a key check costs one indexed read and one HMAC.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


def _default_sync_scopes() -> list[str]:
    return ["intimate"]


class Partner(models.Model):
    """A platform (social network, AI image editor, helpline) that uses the registry."""

    name = models.CharField(max_length=100, unique=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Hashes this partner may match per minute, all its keys together (each hash of a batch
    # counts). Null: the registry's default (MATCH_HASHES_PER_MINUTE).
    match_hashes_per_minute = models.PositiveIntegerField(null=True, blank=True)
    # The scopes whose hashes this partner receives in the sync feeds. A platform that only
    # publishes receives intimate images; an AI editor opts into no_sexual_edit as well.
    sync_scopes = models.JSONField(default=_default_sync_scopes, blank=True)
    # Signed webhooks (image.added, image.withdrawn): an https endpoint and the shared secret
    # that signs each delivery (Standard Webhooks). Empty: no webhooks.
    webhook_url = models.URLField(max_length=500, blank=True)
    webhook_secret = models.CharField(max_length=128, blank=True)

    def __str__(self) -> str:
        return self.name


class PartnerKeyQuerySet(models.QuerySet["PartnerKey"]):
    def usable(self) -> PartnerKeyQuerySet:
        """Keys that authenticate now: not revoked, not expired, of an active partner."""
        now = timezone.now()
        return self.filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now),
            revoked_at__isnull=True,
            partner__is_active=True,
        )


class PartnerKey(models.Model):
    """One API key of a partner: ``rmp_<lookup id>_<secret>``, stored as a peppered digest."""

    class Scope(models.TextChoices):
        MATCH = "match", "Match hashes"
        SYNC = "sync", "Receive the hash list"
        FEEDBACK = "feedback", "Report feedback on matches"
        SUBMIT = "submit", "Submit hashes"

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="keys")
    lookup_id = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Set while the key has an open probing alert (api.probing): its match budget is divided by
    # PROBING_SLOWDOWN_FACTOR until a reviewer clears the alert. Read with the key, at no cost.
    slowed_since = models.DateTimeField(null=True, blank=True)

    objects = PartnerKeyQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.partner} key {self.lookup_id}"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def is_usable(self, *, now: dt.datetime) -> bool:
        """What PartnerKeyQuerySet.usable() selects, for one key already read."""
        return (
            self.revoked_at is None
            and (self.expires_at is None or self.expires_at > now)
            and self.partner.is_active
        )


class MatchCall(models.Model):
    """One match call by a partner: how many hashes, how many matched, for what purpose.

    Never the query hashes themselves. This is the usage record behind statistics and probing
    detection, kept apart from the audit record because it is written on every call.
    """

    class Purpose(models.TextChoices):
        PUBLISH = "publish", "Before publishing"
        AI_EDIT = "ai_edit", "Before an AI edit"

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="match_calls")
    key = models.ForeignKey(PartnerKey, on_delete=models.PROTECT, related_name="match_calls")
    created_at = models.DateTimeField(default=timezone.now)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    hashes = models.PositiveIntegerField()
    matched_hashes = models.PositiveIntegerField()
    matches = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["partner", "created_at"], name="matchcall_partner_time")]

    def __str__(self) -> str:
        return f"{self.partner} {self.purpose}: {self.hashes} hashes, {self.created_at:%Y-%m-%d}"


class WebhookDelivery(models.Model):
    """The outbox of webhooks: one event for one partner, sent at least once, idempotent by id.

    Rows are derived from the change sequence (registry.Change), itself written in the same
    transaction as each addition and withdrawal; ``webhook_id`` stays the same on every retry.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # gave up after the last retry

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="deliveries")
    change = models.ForeignKey(
        "registry.Change", on_delete=models.PROTECT, related_name="deliveries"
    )
    webhook_id = models.CharField(max_length=64, unique=True)
    event_type = models.CharField(max_length=32)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["partner", "change"], name="delivery_once_per_change")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due")]

    def __str__(self) -> str:
        return f"{self.event_type} to {self.partner} ({self.status})"


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
        constraints = [
            models.UniqueConstraint(fields=["scope", "key_digest"], name="idempotency_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key_digest[:8]}"


class ProbingAlert(models.Model):
    """Suspected probing by one key: its queries clustered, or it matched abnormally often.

    Counts only, never a hash. While an alert is open the key is slowed down (see
    PartnerKey.slowed_since); a reviewer or a superuser clears it in the admin (api.probing).
    """

    class Reason(models.TextChoices):
        CLUSTERED_QUERIES = "clustered_queries", "Queries within a few bits of each other"
        HIGH_HIT_RATE = "high_hit_rate", "Abnormal share of queries matching"

    key = models.ForeignKey(PartnerKey, on_delete=models.PROTECT, related_name="probing_alerts")
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="probing_alerts")
    reason = models.CharField(max_length=32, choices=Reason.choices)
    # What the process that raised it had observed of the key's recent queries.
    queries = models.PositiveIntegerField()
    matched_queries = models.PositiveIntegerField()
    close_pairs = models.PositiveIntegerField()
    opened_at = models.DateTimeField(default=timezone.now)
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="probing_alerts_cleared",
        null=True,
        blank=True,
    )
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(cleared_at__isnull=True, cleared_by__isnull=True)
                | Q(cleared_at__isnull=False, cleared_by__isnull=False),
                name="probing_alert_cleared_by_someone",
            ),
        ]
        indexes = [models.Index(fields=["key", "cleared_at"], name="probing_alert_key_open")]

    def __str__(self) -> str:
        return f"{self.get_reason_display()}: {self.key} ({self.opened_at:%Y-%m-%d %H:%M})"

    @property
    def is_open(self) -> bool:
        return self.cleared_at is None
