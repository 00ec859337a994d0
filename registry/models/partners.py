"""Partner platforms and their API keys.

A key is shown once, at issue. The registry keeps only a non-secret lookup id and an
HMAC-SHA256 digest of the whole key under a server-side pepper (``KEY_PEPPER``), so a copy of
the database lets nobody call the API, and a key check costs one indexed read and one HMAC.
"""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models import Q
from django.utils import timezone

from registry.models.cases import ConsentRecord


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
    # Named to people as a platform where protection applies (home page, receipts) only when
    # it agreed to be; under ``public_name`` when set, else under ``name``.
    listed_publicly = models.BooleanField(
        default=False,
        help_text="The platform agreed to be named to people as one that checks the registry.",
    )
    public_name = models.CharField(
        max_length=100, blank=True, help_text="The name people know it by; empty: its name."
    )

    class Meta:
        # The table keeps the name it had when partners were modelled in the API layer.
        db_table = "api_partner"

    def __str__(self) -> str:
        return self.name

    @property
    def received_scopes(self) -> list[str]:
        """The scopes whose images this partner receives, in the feeds and the webhooks alike:
        the known scopes of ``sync_scopes``, or intimate images when it holds no list."""
        chosen = self.sync_scopes
        if not isinstance(chosen, list):
            return [ConsentRecord.Scope.INTIMATE]
        return [scope for scope in chosen if scope in ConsentRecord.Scope.values]


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
    # Set while the key has an open probing alert (registry.matching.probing): its match budget is
    # divided by PROBING_SLOWDOWN_FACTOR until a reviewer clears the alert. Read with the key, at no
    # cost.
    slowed_since = models.DateTimeField(null=True, blank=True)

    objects = PartnerKeyQuerySet.as_manager()

    class Meta:
        db_table = "api_partnerkey"

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
        db_table = "api_matchcall"
        indexes = [models.Index(fields=["partner", "created_at"], name="matchcall_partner_time")]

    def __str__(self) -> str:
        return f"{self.partner} {self.purpose}: {self.hashes} hashes, {self.created_at:%Y-%m-%d}"
