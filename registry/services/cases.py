"""Every write of the registry's domain: cases, consent, images, withdrawal, audit.

Each service is one transaction: it writes all its rows or none, appends to the change sequence
and to the audit record, and enqueues follow-up work only once the transaction has committed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.db import IntegrityError, transaction
from django.utils import timezone

from registry import codes, ratelimits
from registry.exceptions import (
    CaseAccessDenied,
    CaseCheckLimited,
    CaseWithdrawn,
    InvalidInput,
    TooManyImages,
)
from registry.journal import withdrawal_journal_append
from registry.models import (
    AuditEvent,
    Case,
    Change,
    ConsentRecord,
    ImageHash,
    RegisteredImage,
)
from registry.pdq import DihedralHashes
from registry.services import allowlist
from registry.services import videos as video_services
from registry.services.audit import audit_event_record
from registry.services.changes import changes_append
from registry.videos import VideoHashes

logger = logging.getLogger(__name__)

_TERMS_VERSION_MAX = 32
# A valid Argon2 digest of a secret nobody knows, checked when a reference is unknown so that
# an unknown reference costs the same time as a wrong secret.
_DUMMY_SECRET_DIGEST: str | None = None


@dataclass(frozen=True, slots=True)
class Attestations:
    """What the person attests when registering."""

    depicted_or_acting_for: bool
    rights_to_register: bool
    minor_depicted: bool


@dataclass(frozen=True, slots=True)
class CaseCreated:
    """A new case and its secret, which is never stored in clear and never shown again."""

    case: Case
    secret: str


def _images_insert(
    *, case: Case, consent: ConsentRecord, images: Sequence[DihedralHashes]
) -> list[int]:
    now = timezone.now()
    created = RegisteredImage.objects.bulk_create(
        [
            RegisteredImage(
                case=case,
                scope=consent.scope,
                minor_depicted=consent.minor_depicted,
                quality=image.quality,
                created_at=now,
            )
            for image in images
        ]
    )
    ImageHash.objects.bulk_create(
        [
            ImageHash(image=row, variant=variant, value=value)
            for row, image in zip(created, images, strict=True)
            for variant, value in image.by_variant()
        ]
    )
    return [row.pk for row in created]


def _check_image_count(count: int) -> None:
    if count < 1:
        raise InvalidInput("images_required", "Register at least one photo or video.")
    if count > settings.REGISTRY_MAX_IMAGES_PER_REQUEST:
        raise TooManyImages(
            details={"max_images_per_request": settings.REGISTRY_MAX_IMAGES_PER_REQUEST}
        )


def case_create(
    *,
    scope: str,
    attestations: Attestations,
    terms_version: str,
    language: str,
    images: Sequence[DihedralHashes],
    videos: Sequence[VideoHashes] = (),
) -> CaseCreated:
    """Open a case: the case, its consent record, its images and hashes, in one transaction.

    ``images`` and ``videos`` are already parsed and validated (registry.pdq.parse_dihedral,
    registry.videos.parse_video). Appends one ``added`` change per image or video and a
    ``case.created`` audit event. Returns the case and its new
    secret, shown to the person once and stored only as an Argon2 digest.

    Raises InvalidInput for an unknown scope or language, a missing attestation or a bad terms
    version, TooManyImages, and RequestRefused (``too_many_frames``, and
    ``video_quality_too_low`` for a video whose every frame is allow-listed).
    """
    if scope not in ConsentRecord.Scope.values:
        raise InvalidInput("scope_invalid", "Scope is 'intimate' or 'no_sexual_edit'.")
    if language not in ConsentRecord.Language.values:
        raise InvalidInput("language_invalid", "Language is 'fr' or 'en'.")
    if not (attestations.depicted_or_acting_for and attestations.rights_to_register):
        raise InvalidInput(
            "attestation_required",
            "You must attest that you are the person depicted or act for them, and that the "
            "photos are yours to register.",
        )
    if not terms_version or len(terms_version) > _TERMS_VERSION_MAX:
        raise InvalidInput("terms_version_invalid", "Terms version is 1 to 32 characters.")
    _check_image_count(len(images) + len(videos))
    # Raises InvalidHash(hash_allow_listed), nothing stored; drops allow-listed derived views.
    images = allowlist.images_check(images)
    videos = video_services.videos_check(videos)
    video_services.video_frames_check(case=None, videos=videos)

    secret = codes.new_secret()
    secret_digest = make_password(secret)  # Slow by design: done before the transaction opens.
    for _attempt in range(5):
        try:
            with transaction.atomic():
                case = _case_insert(
                    secret_digest=secret_digest,
                    scope=scope,
                    attestations=attestations,
                    terms_version=terms_version,
                    language=language,
                    images=images,
                    videos=videos,
                )
            break
        except _ReferenceTakenError:
            continue
    else:  # pragma: no cover - 50 random bits colliding five times running
        raise RuntimeError("Could not allocate a unique case reference.")
    logger.info("case created with %d image(s) and %d video(s)", len(images), len(videos))
    return CaseCreated(case=case, secret=secret)


class _ReferenceTakenError(Exception):
    pass


def _case_insert(
    *,
    secret_digest: str,
    scope: str,
    attestations: Attestations,
    terms_version: str,
    language: str,
    images: Sequence[DihedralHashes],
    videos: Sequence[VideoHashes],
) -> Case:
    now = timezone.now()
    try:
        case = Case.objects.create(
            reference=codes.new_reference(), secret_digest=secret_digest, created_at=now
        )
    except IntegrityError as error:  # The only unique column is the reference.
        raise _ReferenceTakenError from error
    consent = ConsentRecord.objects.create(
        case=case,
        scope=scope,
        depicted_or_acting_for=attestations.depicted_or_acting_for,
        rights_to_register=attestations.rights_to_register,
        minor_depicted=attestations.minor_depicted,
        terms_version=terms_version,
        language=language,
        created_at=now,
    )
    image_ids = _images_insert(case=case, consent=consent, images=images)
    image_ids += video_services.videos_insert(case=case, consent=consent, videos=videos)
    audit_event_record(
        action=AuditEvent.Action.CASE_CREATED,
        actor="person",
        subject=f"case:{case.reference}",
        details={
            "scope": scope,
            "images": len(images),
            "minor_depicted": attestations.minor_depicted,
            **({"videos": len(videos)} if videos else {}),
        },
    )
    changes_append(image_ids=image_ids, kind=Change.Kind.ADDED)
    return case


def case_add_images(
    *, case: Case, images: Sequence[DihedralHashes], videos: Sequence[VideoHashes] = ()
) -> list[RegisteredImage]:
    """Add photos and videos to an active case, under its consent record, in one transaction;
    return the images and videos added.

    A photo already in the case (the same original hash), or a video (the same file MD5), or
    one sent twice, is added once: the case never protects one photo twice. Appends one
    ``added`` change per image added and a ``case.images_added`` audit event, or writes nothing
    when every photo was already there. Raises RequestRefused (``too_many_frames``) past the
    case's frames,
    CaseWithdrawn for a withdrawn case and TooManyImages past the per-request or per-case limit,
    and InvalidHash (``hash_allow_listed``) for a photo near an allow-listed hash.
    """
    _check_image_count(len(images) + len(videos))
    images = allowlist.images_check(images)
    videos = video_services.videos_check(videos)
    with transaction.atomic():
        locked = Case.objects.select_for_update().get(pk=case.pk)
        if not locked.is_active:
            raise CaseWithdrawn
        held = {
            bytes(value)
            for value in ImageHash.objects.filter(
                image__case=locked, variant=ImageHash.Variant.ORIGINAL
            ).values_list("value", flat=True)
        }
        fresh: list[DihedralHashes] = []
        for image in images:
            if image.hashes[0] not in held:
                held.add(image.hashes[0])
                fresh.append(image)
        videos = video_services.videos_new(case=locked, videos=videos)
        if not fresh and not videos:
            return []
        images = fresh
        existing = locked.images.count()
        if existing + len(images) + len(videos) > settings.REGISTRY_MAX_IMAGES_PER_CASE:
            raise TooManyImages(
                details={"max_images_per_case": settings.REGISTRY_MAX_IMAGES_PER_CASE}
            )
        video_services.video_frames_check(case=locked, videos=videos)
        image_ids = _images_insert(case=locked, consent=locked.consent, images=images)
        image_ids += video_services.videos_insert(
            case=locked, consent=locked.consent, videos=videos
        )
        audit_event_record(
            action=AuditEvent.Action.CASE_IMAGES_ADDED,
            actor="person",
            subject=f"case:{locked.reference}",
            details={"images": len(images), **({"videos": len(videos)} if videos else {})},
        )
        changes_append(image_ids=image_ids, kind=Change.Kind.ADDED)
    logger.info("case images added: %d, videos: %d", len(images), len(videos))
    return list(RegisteredImage.objects.filter(pk__in=image_ids).order_by("pk"))


_WITHDRAWABLE = (
    RegisteredImage.Status.ACTIVE,
    RegisteredImage.Status.DISPUTED,
    RegisteredImage.Status.SUSPENDED,
)


def case_withdraw(*, case: Case, replayed: bool = False) -> bool:
    """Withdraw a case: its images stop being matchable when this transaction commits.

    Idempotent: withdrawing a withdrawn case changes nothing and returns False; otherwise marks
    the case and its active, disputed and suspended images withdrawn, appends one ``withdrawn``
    change per image and a ``case.withdrawn`` audit event, and returns True. The hashes stay
    stored until retention deletes them, so that partners still receive the withdrawal.

    Before the commit, the withdrawal is appended to the withdrawal journal (registry.journal),
    so that restoring an older backup cannot undo it; raises WithdrawalJournalError (an
    OperationalError: answered 503, retry) if the journal cannot be written.
    ``replayed``: the withdrawal comes from that journal (``manage.py withdrawals_replay``), so
    it is not journalled again and the audit event names the replay as its actor.
    """
    with transaction.atomic():
        locked = Case.objects.select_for_update().get(pk=case.pk)
        if not locked.is_active:
            return False
        now = timezone.now()
        image_ids = list(
            # Disputed images still match and suspended ones may be reinstated: the person's
            # withdrawal ends them all.
            locked.images.filter(status__in=_WITHDRAWABLE)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        RegisteredImage.objects.filter(pk__in=image_ids).update(
            status=RegisteredImage.Status.WITHDRAWN, withdrawn_at=now
        )
        locked.status = Case.Status.WITHDRAWN
        locked.withdrawn_at = now
        locked.save(update_fields=["status", "withdrawn_at"])
        if not replayed:
            withdrawal_journal_append(
                case_reference=locked.reference, image_ids=image_ids, withdrawn_at=now
            )
        audit_event_record(
            action=AuditEvent.Action.CASE_WITHDRAWN,
            actor="journal:replay" if replayed else "person",
            subject=f"case:{locked.reference}",
            details={"images": len(image_ids)},
        )
        changes_append(image_ids=image_ids, kind=Change.Kind.WITHDRAWN)
    case.refresh_from_db()
    logger.info("case withdrawn: %d image(s)", len(image_ids))
    return True


def _dummy_digest() -> str:
    global _DUMMY_SECRET_DIGEST
    if _DUMMY_SECRET_DIGEST is None:
        _DUMMY_SECRET_DIGEST = make_password(codes.new_secret())
    return _DUMMY_SECRET_DIGEST


def case_check_secret(*, reference: object, secret: object) -> Case:
    """Return the case named by ``reference`` if ``secret`` is its secret.

    Raises CaseAccessDenied, the same error after the same work, whether the reference is
    malformed, unknown, or the secret wrong: the answer reveals nothing about which cases exist.
    The comparison itself is constant-time (Django's password check).
    """
    canonical_reference = codes.normalise_reference(reference)
    canonical_secret = codes.normalise_secret(secret) or ""
    case = (
        Case.objects.filter(reference=canonical_reference).first() if canonical_reference else None
    )
    digest = case.secret_digest if case is not None else _dummy_digest()
    matches = check_password(canonical_secret, digest)
    if case is None or not matches or not canonical_secret:
        raise CaseAccessDenied
    return case


# Counted for every malformed reference alike: they name no case.
_MALFORMED_REFERENCE = "malformed"


def case_check_secret_limited(*, reference: object, secret: object, client: str) -> Case:
    """case_check_secret, limited against guessing; ``client`` is a ratelimits.client_digest.

    Only failures count (registry.ratelimits.case_check_refusal says who is refused), so the
    same answer comes for an unknown reference and a wrong secret, and the case's owner, who has
    not failed on it, can still get in while an attacker is refused. Raises CaseCheckLimited
    before any check when refused, else what case_check_secret raises.
    """
    counted_reference = codes.normalise_reference(reference) or _MALFORMED_REFERENCE
    retry_after = ratelimits.case_check_refusal(reference=counted_reference, client=client)
    if retry_after is not None:
        raise CaseCheckLimited(retry_after=retry_after)
    try:
        return case_check_secret(reference=reference, secret=secret)
    except CaseAccessDenied:
        ratelimits.case_check_failure_record(reference=counted_reference, client=client)
        raise


# --- Distribution to partners: disclosures, feedback, partner-submitted hashes ---------------
