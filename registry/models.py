"""The registry's domain model. PostgreSQL is the source of truth; the match index is derived.

A person opens a *case* and, under a *consent record*, registers *images*; each image holds the
PDQ *hashes* of its eight dihedral variants. Every addition and withdrawal is appended to the
*change* sequence, which drives the freshness of every process's index and the partners' sync
feed. Every write that matters is on the *audit* record.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length
from django.db.models.lookups import Exact

from registry.pdq import DIHEDRAL_VARIANTS, HASH_BYTES, truncated


class Case(models.Model):
    """One person's registration: a public reference, a secret known only to them, a status.

    The secret is stored only as an Argon2 digest. Nothing here identifies the person.
    """

    class Status(models.TextChoices):
        ACTIVE = "active"
        WITHDRAWN = "withdrawn"

    reference = models.CharField(max_length=20, unique=True)
    secret_digest = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField()
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(status="active", withdrawn_at__isnull=True))
                | Q(status="withdrawn", withdrawn_at__isnull=False),
                name="case_withdrawn_at_matches_status",
            ),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class ConsentRecord(models.Model):
    """What the person attested when they opened the case; immutable once written.

    A database trigger refuses any UPDATE or DELETE, so the record stays evidence.
    """

    class Scope(models.TextChoices):
        INTIMATE = "intimate", "Intimate image: do not publish"
        NO_SEXUAL_EDIT = "no_sexual_edit", "Ordinary photo: no sexualised AI edits"

    class Language(models.TextChoices):
        ENGLISH = "en", "English"
        FRENCH = "fr", "Français"

    case = models.OneToOneField(Case, on_delete=models.PROTECT, related_name="consent")
    scope = models.CharField(max_length=32, choices=Scope.choices)
    depicted_or_acting_for = models.BooleanField()
    rights_to_register = models.BooleanField()
    minor_depicted = models.BooleanField()
    terms_version = models.CharField(max_length=32)
    language = models.CharField(max_length=8, choices=Language.choices)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            # A registration without both attestations is never valid evidence of consent.
            models.CheckConstraint(
                condition=Q(depicted_or_acting_for=True, rights_to_register=True),
                name="consent_attested",
            ),
            models.CheckConstraint(
                condition=Q(scope__in=["intimate", "no_sexual_edit"]), name="consent_scope_known"
            ),
        ]

    def __str__(self) -> str:
        return f"Consent for {self.case_id} ({self.scope})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("A consent record is immutable once written.")
        super().save(*args, **kwargs)


class RegisteredImageQuerySet(models.QuerySet["RegisteredImage"]):
    def matchable(self) -> RegisteredImageQuerySet:
        """Images whose hashes partners may match (a withdrawal withdraws every image)."""
        return self.filter(status__in=RegisteredImage.MATCHABLE)


class RegisteredImage(models.Model):
    """A photo registered in a case, known only by its PDQ quality and hashes.

    The photo itself never reaches the registry. ``scope`` and ``minor_depicted`` repeat what the
    consent record says, so that matching reads one row; the consent record stays the evidence.
    A hash submitted by a partner (``submitted_by_partner``) has no case: it enters as
    ``received`` and matches nothing until a reviewer accepts it.
    """

    class Status(models.TextChoices):
        RECEIVED = "received"  # submitted by a partner, awaiting review; never matched
        ACTIVE = "active"
        DISPUTED = "disputed"  # under review after partners' reports; still matching
        SUSPENDED = "suspended"  # a reviewer stopped it matching
        WITHDRAWN = "withdrawn"
        REJECTED = "rejected"  # a partner's submission a reviewer refused; never matched

    class DisputeReason(models.TextChoices):
        """Why an image entered the review queue as disputed (registry.review)."""

        PARTNER_REPORTS = "partner_reports", "Partners reported not blocking it"
        MATCH_SPIKE = "match_spike", "Matched far more often than usual"

    MATCHABLE = (Status.ACTIVE, Status.DISPUTED)

    case = models.ForeignKey(
        Case, on_delete=models.PROTECT, related_name="images", null=True, blank=True
    )
    # The partner (api.Partner id) that submitted this hash; registry does not depend on api.
    submitted_by_partner = models.PositiveBigIntegerField(null=True, blank=True)
    scope = models.CharField(max_length=32, choices=ConsentRecord.Scope.choices)
    minor_depicted = models.BooleanField()
    quality = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField()
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    # Set when the image last became disputed, and why; kept after a suspension (the reason
    # stays visible), cleared when it returns to active.
    disputed_at = models.DateTimeField(null=True, blank=True)
    dispute_reason = models.CharField(max_length=32, choices=DisputeReason.choices, blank=True)

    objects = RegisteredImageQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(quality__lte=100), name="image_quality_range"),
            models.CheckConstraint(
                condition=(~Q(status="withdrawn") & Q(withdrawn_at__isnull=True))
                | Q(status="withdrawn", withdrawn_at__isnull=False),
                name="image_withdrawn_at_matches_status",
            ),
            # A person's photo belongs to their case; a partner's submission never does.
            models.CheckConstraint(
                condition=Q(case__isnull=False, submitted_by_partner__isnull=True)
                | Q(case__isnull=True, submitted_by_partner__isnull=False),
                name="image_from_a_case_or_a_partner",
            ),
        ]
        indexes = [
            models.Index(fields=["case", "status"], name="image_case_status"),
            # The match path confirms candidates by hash id among matchable images only.
            models.Index(fields=["status"], name="image_status"),
        ]

    def __str__(self) -> str:
        origin = f"case {self.case_id}" if self.case_id else f"partner {self.submitted_by_partner}"
        return f"Image {self.pk} ({origin})"


class ReviewQueueImage(RegisteredImage):
    """The review queue: registered images seen as reviewers work them (registry.review).

    A proxy: the rows are RegisteredImage rows; the admin lists the disputed and received ones.
    """

    class Meta:
        proxy = True
        verbose_name = "review queue image"
        verbose_name_plural = "review queue"


class ImageHashQuerySet(models.QuerySet["ImageHash"]):
    def matchable(self) -> ImageHashQuerySet:
        """Hashes of matchable images (see RegisteredImageQuerySet.matchable)."""
        return self.filter(image__status__in=RegisteredImage.MATCHABLE)


class ImageHash(models.Model):
    """One PDQ hash of a registered image: the 32 bytes of one variant (original, rotations...)."""

    class Variant(models.TextChoices):
        ORIGINAL = "original"
        ROT90 = "rot90"
        ROT180 = "rot180"
        ROT270 = "rot270"
        FLIP_TB = "flip_tb"
        FLIP_LR = "flip_lr"
        TRANSPOSE = "transpose"
        ANTITRANSPOSE = "antitranspose"

    image = models.ForeignKey(RegisteredImage, on_delete=models.PROTECT, related_name="hashes")
    # Room for other kinds of variant later (another algorithm, a crop): a label, not an index.
    variant = models.CharField(max_length=32, choices=Variant.choices)
    value = models.BinaryField(max_length=HASH_BYTES)

    objects = ImageHashQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "variant"], name="hash_one_per_variant"),
            models.CheckConstraint(
                condition=Exact(Length("value"), HASH_BYTES), name="hash_is_32_bytes"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.variant} {truncated(bytes(self.value))}"


assert tuple(ImageHash.Variant.values) == DIHEDRAL_VARIANTS


class Change(models.Model):
    """One entry of the change sequence: an image became matchable, or stopped being matchable.

    An image may go back and forth (a reviewer suspends it, then reinstates it): its last change
    is its state.

    The primary key is the sequence number. Writers take a transaction-level lock before
    appending (see services._changes_append), so sequence numbers become visible in commit order
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
    """The ledger of raw hashes served: which partner received which image's hashes, when.

    Partners are named by their id (api.Partner): registry does not depend on api.
    """

    partner_id = models.PositiveBigIntegerField()
    image = models.ForeignKey(RegisteredImage, on_delete=models.PROTECT, related_name="disclosures")
    first_disclosed_at = models.DateTimeField()
    last_disclosed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["partner_id", "image"], name="disclosure_once")
        ]

    def __str__(self) -> str:
        return f"partner {self.partner_id} received image {self.image_id}"


class Feedback(models.Model):
    """A partner's verdict on a match: blocked after human review, not blocked, or pending."""

    class Verdict(models.TextChoices):
        BLOCKED = "blocked", "Blocked after human review"
        NOT_BLOCKED = "not_blocked", "Not blocked"
        PENDING_REVIEW = "pending_review", "Pending review"

    partner_id = models.PositiveBigIntegerField()
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

    partner_id = models.PositiveBigIntegerField()
    image = models.ForeignKey(
        RegisteredImage, on_delete=models.PROTECT, related_name="withdrawal_acks"
    )
    acknowledged_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["partner_id", "image"], name="ack_once")]

    def __str__(self) -> str:
        return f"partner {self.partner_id} applied the withdrawal of image {self.image_id}"


class AuditEvent(models.Model):
    """An append-only record of something done: by whom (a role and an id), to what, when.

    Never a hash, a secret or an IP address. A database trigger refuses UPDATE and DELETE, and
    each event carries the digest of the one before it (a hash chain, registry.audit), so that
    an event altered or removed behind the application's back is found by ``audit_verify``.
    """

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


class ReviewDecision(models.Model):
    """A reviewer's decision on an image: who, when, why, and the status it moved from and to.

    Written only by registry.review, with an audit event; never changed or deleted afterwards.
    """

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
    (registry.allowlist). These are never a person's hashes.
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
        verbose_name = "allow-listed hash"
        constraints = [
            models.CheckConstraint(
                condition=Exact(Length("value"), HASH_BYTES), name="allow_listed_hash_is_32_bytes"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({truncated(bytes(self.value))})"
