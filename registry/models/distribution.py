"""The change sequence and what partners received, reported and applied.

Every addition and withdrawal is appended to the *change* sequence, which drives the freshness
of every process's index, the sync feeds and the webhook *outbox*. The *disclosure* ledger
says which partner received which raw hashes; *feedback* and *withdrawal acknowledgements* are
what partners send back.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from registry.models.cases import RegisteredImage
from registry.models.partners import Partner


class Change(models.Model):
    """One entry of the change sequence: an image became matchable, or stopped being matchable.

    An image may go back and forth (a reviewer suspends it, then reinstates it): its last change
    is its state.

    The primary key is the sequence number. Writers take a transaction-level lock before
    appending (see services.changes_append), so sequence numbers become visible in commit order
    and a reader that has seen number N has seen every number below it.
    """

    class Kind(models.TextChoices):
        ADDED = "added"  # became matchable: registered, accepted or reinstated by a reviewer
        WITHDRAWN = "withdrawn"  # the person withdrew it
        SUSPENDED = "suspended"  # a reviewer stopped it matching (a removal, like a withdrawal)

    # The kinds after which an image no longer matches.
    REMOVALS = (Kind.WITHDRAWN, Kind.SUSPENDED)

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    image = models.ForeignKey(RegisteredImage, on_delete=models.PROTECT, related_name="changes")
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["image"], name="change_image"),
            # The StopNCII feed starts a fetch at a time, not at a sequence number.
            models.Index(fields=["created_at"], name="change_created_at"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} image {self.image_id}"


class Disclosure(models.Model):
    """The ledger of raw hashes served: which partner received which image's hashes, when."""

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="disclosures")
    image = models.ForeignKey(RegisteredImage, on_delete=models.PROTECT, related_name="disclosures")
    first_disclosed_at = models.DateTimeField()
    last_disclosed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["partner", "image"], name="disclosure_once")]

    def __str__(self) -> str:
        return f"partner {self.partner_id} received image {self.image_id}"


class Feedback(models.Model):
    """A partner's verdict on a match: blocked after human review, not blocked, or pending."""

    class Verdict(models.TextChoices):
        BLOCKED = "blocked", "Blocked after human review"
        NOT_BLOCKED = "not_blocked", "Not blocked"
        PENDING_REVIEW = "pending_review", "Pending review"

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="feedback")
    image = models.ForeignKey(RegisteredImage, on_delete=models.PROTECT, related_name="feedback")
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["image", "verdict"], name="feedback_image_verdict")]

    def __str__(self) -> str:
        return f"partner {self.partner_id}: {self.verdict} on image {self.image_id}"


class WithdrawalAck(models.Model):
    """A partner's confirmation that it applied a withdrawal on its side."""

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="withdrawal_acks")
    image = models.ForeignKey(
        RegisteredImage, on_delete=models.PROTECT, related_name="withdrawal_acks"
    )
    acknowledged_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["partner", "image"], name="ack_once")]

    def __str__(self) -> str:
        return f"partner {self.partner_id} applied the withdrawal of image {self.image_id}"


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
    change = models.ForeignKey(Change, on_delete=models.PROTECT, related_name="deliveries")
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
        db_table = "api_webhookdelivery"
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["partner", "change"], name="delivery_once_per_change")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due")]

    def __str__(self) -> str:
        return f"{self.event_type} to {self.partner} ({self.status})"
