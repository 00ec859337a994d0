"""Cases: consent records, registered images and their PDQ hashes.

A person opens a *case* and, under a *consent record*, registers *images*; each image holds the
PDQ *hashes* of its eight dihedral variants. Every addition and withdrawal is appended to the
*change* sequence, which drives the freshness of every process's index and the partners' sync
feed. Every write that matters is on the *audit* record.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
from django.db.models.functions import Length
from django.db.models.lookups import Exact
from django.utils.translation import gettext_lazy

from registry.derivatives import DERIVED_VIEW_NAMES
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
        # The labels people read on the pages and receipts, in their language.
        INTIMATE = "intimate", gettext_lazy("Intimate image: never publish it")
        NO_SEXUAL_EDIT = "no_sexual_edit", gettext_lazy("Ordinary photo: no sexualised AI edits")

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
    """A photo or a video registered in a case, known only by its PDQ quality and hashes.

    A video (``kind`` video: registry.videos) is known by the PDQ hashes of its frames, one a
    second (ImageHash rows of variant ``frame``), the MD5 of its file and its duration; its
    ``quality`` is that of its best frame.

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
        """Why an image entered the review queue as disputed (registry.services.review)."""

        PARTNER_REPORTS = "partner_reports", "Partners reported not blocking it"
        MATCH_SPIKE = "match_spike", "Matched far more often than usual"

    class Kind(models.TextChoices):
        PHOTO = "photo"
        VIDEO = "video"

    MATCHABLE = (Status.ACTIVE, Status.DISPUTED)

    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.PHOTO)
    # A video's file MD5 (the signal StopNCII's partners know) and length in seconds.
    md5 = models.BinaryField(max_length=16, null=True, blank=True)
    duration = models.FloatField(null=True, blank=True)
    case = models.ForeignKey(
        Case, on_delete=models.PROTECT, related_name="images", null=True, blank=True
    )
    # The partner that submitted this hash (the column keeps its name from before it was a key).
    submitted_by_partner = models.ForeignKey(
        "registry.Partner",
        on_delete=models.PROTECT,
        related_name="submitted_images",
        null=True,
        blank=True,
        db_column="submitted_by_partner",
    )
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
                # A withdrawn video loses its MD5 with its frames (registry.services.retention).
                condition=Q(kind="photo", md5__isnull=True, duration__isnull=True)
                | (
                    Q(kind="video", duration__isnull=False)
                    & (Q(md5__isnull=False) | Q(status="withdrawn"))
                ),
                name="image_video_has_md5_and_duration",
            ),
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
        origin = (
            f"case {self.case_id}" if self.case_id else f"submitted by {self.submitted_by_partner}"
        )
        return f"Image {self.pk} ({origin})"


class ImageHashQuerySet(models.QuerySet["ImageHash"]):
    def matchable(self) -> ImageHashQuerySet:
        """Hashes of matchable images (see RegisteredImageQuerySet.matchable)."""
        return self.filter(image__status__in=RegisteredImage.MATCHABLE)


class ImageHash(models.Model):
    """One PDQ hash of a registered image: the 32 bytes of one variant, a dihedral one (original,
    rotations, flips) or a derived view (a crop, a masked view: registry.derivatives), or one
    frame of a registered video (variant ``frame``, with its time and quality)."""

    FRAME = "frame"

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
    # A label, not an index: the dihedral variants, then the derived views' names.
    variant = models.CharField(
        max_length=32,
        choices=[
            *Variant.choices,
            *((name, name) for name in DERIVED_VIEW_NAMES),
            (FRAME, FRAME),
        ],
    )
    value = models.BinaryField(max_length=HASH_BYTES)
    # A video frame's time in seconds and PDQ quality; null for a photo's hashes.
    frame_at = models.FloatField(null=True, blank=True)
    frame_quality = models.PositiveSmallIntegerField(null=True, blank=True)

    objects = ImageHashQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["image", "variant"],
                condition=~Q(variant="frame"),
                name="hash_one_per_variant",
            ),
            # A video's frames: each distinct hash once (vPDQ compares distinct hashes).
            models.UniqueConstraint(
                fields=["image", "value"],
                condition=Q(variant="frame"),
                name="hash_frame_once_per_video",
            ),
            models.CheckConstraint(
                condition=Q(variant="frame", frame_at__isnull=False, frame_quality__isnull=False)
                | (~Q(variant="frame") & Q(frame_at__isnull=True, frame_quality__isnull=True)),
                name="hash_frame_has_time_and_quality",
            ),
            models.CheckConstraint(
                condition=Exact(Length("value"), HASH_BYTES), name="hash_is_32_bytes"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.variant} {truncated(bytes(self.value))}"


assert tuple(ImageHash.Variant.values) == DIHEDRAL_VARIANTS
