"""Moderation: the review queue, reviewers' decisions, the allow-list and probing alerts."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length
from django.db.models.lookups import Exact
from django.utils import timezone

from registry.models.cases import RegisteredImage
from registry.models.partners import Partner, PartnerKey
from registry.pdq import HASH_BYTES, truncated


class ReviewQueueImage(RegisteredImage):
    """The review queue: registered images seen as reviewers work them (registry.services.review).

    A proxy: the rows are RegisteredImage rows; the admin lists the disputed and received ones.
    """

    class Meta:
        proxy = True
        verbose_name = "review queue image"
        verbose_name_plural = "review queue"


class ReviewDecision(models.Model):
    """A reviewer's decision on an image: who, when, why, and the status it moved from and to.

    Written only by registry.services.review, with an audit event; never changed or deleted
    afterwards."""

    class Decision(models.TextChoices):
        SUSPEND = "suspend", "Suspend (stop matching)"
        REINSTATE = "reinstate", "Reinstate (match again)"
        DISMISS = "dismiss", "Dismiss the dispute"
        ACCEPT = "accept", "Accept the partner's hash"
        REJECT = "reject", "Reject the partner's hash"

    image = models.ForeignKey(
        RegisteredImage, on_delete=models.PROTECT, related_name="review_decisions"
    )
    decision = models.CharField(max_length=16, choices=Decision.choices)
    from_status = models.CharField(max_length=16, choices=RegisteredImage.Status.choices)
    to_status = models.CharField(max_length=16, choices=RegisteredImage.Status.choices)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="review_decisions"
    )
    reason = models.TextField(max_length=2000)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="review_decision_reason_required"),
        ]
        indexes = [models.Index(fields=["image", "created_at"], name="review_image_time")]

    def __str__(self) -> str:
        return f"{self.decision} image {self.image_id} ({self.from_status} -> {self.to_status})"


class AllowListedHash(models.Model):
    """A known benign or collision-prone hash (a blank image, a common meme) no one may register.

    A submission holding a hash within the match distance of one of these is refused
    (registry.services.allowlist). These are never a person's hashes.
    """

    value = models.BinaryField(max_length=HASH_BYTES)
    label = models.CharField(max_length=200)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="allow_listed_hashes",
        null=True,
        blank=True,
    )
    created_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "allow-listed hashes"
        verbose_name = "allow-listed hash"
        constraints = [
            models.CheckConstraint(
                condition=Exact(Length("value"), HASH_BYTES), name="allow_listed_hash_is_32_bytes"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({truncated(bytes(self.value))})"


class ProbingAlert(models.Model):
    """Suspected probing by one key: its queries clustered, or it matched abnormally often.

    Counts only, never a hash. While an alert is open the key is slowed down (see
    PartnerKey.slowed_since); a reviewer or a superuser clears it in the admin
    (registry.matching.probing)."""

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
        db_table = "api_probingalert"
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
