"""The audit record: an append-only, hash-chained account of everything done."""

from __future__ import annotations

from django.db import models


class AuditEvent(models.Model):
    """An append-only record of something done: by whom (a role and an id), to what, when.

    Never a hash, a secret or an IP address. A database trigger refuses UPDATE and DELETE, and each
    event carries the digest of the one before it (a hash chain, registry.services.audit), so that
    an event altered or removed behind the application's back is found by ``audit_verify``."""

    class Action(models.TextChoices):
        CASE_CREATED = "case.created"
        CASE_IMAGES_ADDED = "case.images_added"
        CASE_WITHDRAWN = "case.withdrawn"
        PARTNER_CREATED = "partner.created"
        PARTNER_KEY_ISSUED = "partner.key_issued"
        PARTNER_KEY_REVOKED = "partner.key_revoked"
        PARTNER_KEY_ROTATED = "partner.key_rotated"
        PARTNER_UPDATED = "partner.updated"
        STAFF_TWO_FACTOR_ENROLLED = "staff.two_factor_enrolled"
        PARTNER_HASHES_SUBMITTED = "partner.hashes_submitted"
        IMAGE_DISPUTED = "image.disputed"
        REVIEW_DECIDED = "review.decided"
        ALLOW_LIST_ADDED = "allow_list.added"
        ALLOW_LIST_REMOVED = "allow_list.removed"
        PROBING_ALERT_OPENED = "probing.alert_opened"
        PROBING_ALERT_CLEARED = "probing.alert_cleared"

    created_at = models.DateTimeField()
    action = models.CharField(max_length=64, choices=Action.choices)
    # Who acted: "person", "partner:<id>", "staff:<id>" or "system".
    actor = models.CharField(max_length=64)
    # What it was done to: "case:<reference>", "partner:<id>", "key:<lookup id>".
    subject = models.CharField(max_length=64)
    details = models.JSONField(default=dict, blank=True)
    previous_digest = models.CharField(max_length=64, blank=True)
    digest = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [models.Index(fields=["subject", "created_at"], name="audit_subject_time")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.subject}"
