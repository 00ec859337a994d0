"""Reads of the registry's domain that cross models: case summaries, hash matches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from registry.exceptions import InvalidInput
from registry.matcher import get_matcher
from registry.models import Case, Change, Disclosure, Feedback, ImageHash, RegisteredImage
from registry.pdq import MATCH_DISTANCE


@dataclass(frozen=True, slots=True)
class CaseSummary:
    """What a person may see of their own case (never its hashes)."""

    reference: str
    status: str
    scope: str
    created_at: dt.datetime
    withdrawn_at: dt.datetime | None
    images: int
    active_images: int
    # Distinct partners that received the case's hashes, and that confirmed blocking a match.
    partners_received: int = 0
    partners_blocked: int = 0


def case_summary(*, case: Case) -> CaseSummary:
    """Return the person-facing summary of ``case``: status, dates, scope and photo counts."""
    images = RegisteredImage.objects.filter(case=case)
    partners = case_partner_counts(case=case)
    return CaseSummary(
        reference=case.reference,
        status=case.status,
        scope=case.consent.scope,
        created_at=case.created_at,
        withdrawn_at=case.withdrawn_at,
        images=images.count(),
        # A disputed photo still matches, so it is still protected.
        active_images=images.filter(status__in=RegisteredImage.MATCHABLE).count(),
        partners_received=partners.received,
        partners_blocked=partners.blocked,
    )


@dataclass(frozen=True, slots=True)
class ImageMatch:
    """A registered image that a query hash matched (never its hashes, never its case)."""

    image_id: int
    scope: str
    minor_depicted: bool
    status: str
    distance: int


def hash_match(
    hashes: Sequence[bytes], max_distance: int = MATCH_DISTANCE
) -> list[list[ImageMatch]]:
    """Match each 32-byte query hash against every matchable registered image.

    Returns one list per query, in order: the matching images, each once (the closest of its
    variants), closest first. ``max_distance`` may be lowered from 31, never raised. Candidates
    from this process's index are confirmed against the database in one indexed query, so an
    image withdrawn by a committed transaction is never returned, even before the index has
    applied the withdrawal. Raises InvalidInput for a distance outside 0..31.
    """
    if isinstance(max_distance, bool) or not 0 <= max_distance <= MATCH_DISTANCE:
        raise InvalidInput(
            "max_distance_invalid", f"max_distance is a whole number from 0 to {MATCH_DISTANCE}."
        )
    found = get_matcher().search(hashes, max_distance=max_distance)
    candidate_ids = {hash_id for ids, _ in found for hash_id in ids.tolist()}
    if not candidate_ids:
        return [[] for _ in hashes]
    confirmed = {
        hash_id: (image_id, scope, minor, status)
        for hash_id, image_id, scope, minor, status in ImageHash.objects.matchable()
        .filter(id__in=candidate_ids)
        .values_list("id", "image_id", "image__scope", "image__minor_depicted", "image__status")
    }
    results: list[list[ImageMatch]] = []
    for ids, distances in found:
        per_image: dict[int, ImageMatch] = {}
        for hash_id, distance in zip(ids.tolist(), distances.tolist(), strict=True):
            row = confirmed.get(hash_id)
            if row is None:
                continue
            image_id, scope, minor, status = row
            best = per_image.get(image_id)
            if best is None or distance < best.distance:
                per_image[image_id] = ImageMatch(
                    image_id=image_id,
                    scope=scope,
                    minor_depicted=minor,
                    status=status,
                    distance=distance,
                )
        results.append(
            sorted(per_image.values(), key=lambda match: (match.distance, match.image_id))
        )
    return results


# --- Distribution to partners: the change feed, disclosures, feedback -----------------------


@dataclass(frozen=True, slots=True)
class CasePartnerCounts:
    """How many distinct partners received a case's hashes, and how many confirmed blocking."""

    received: int
    blocked: int


def case_partner_counts(*, case: Case) -> CasePartnerCounts:
    """Count the distinct partners in the disclosure ledger for ``case``'s images, and those
    that reported a ``blocked`` verdict on one of them. Never says which partners."""
    received = Disclosure.objects.filter(image__case=case).values("partner_id").distinct().count()
    blocked = (
        Feedback.objects.filter(image__case=case, verdict=Feedback.Verdict.BLOCKED)
        .values("partner_id")
        .distinct()
        .count()
    )
    return CasePartnerCounts(received=received, blocked=blocked)


def change_page(*, after_id: int, limit: int) -> list[Change]:
    """The next ``limit`` changes of the sequence after ``after_id``, in sequence order, with
    their images.

    One statement, so it sees a prefix of the sequence: writers append under a lock held until
    commit (services._changes_append), so no change below the last one returned can commit
    later. Callers filter by scope and status themselves and resume after the last change
    *returned*, never after the last one they kept.
    """
    return list(
        Change.objects.filter(id__gt=after_id).select_related("image").order_by("id")[:limit]
    )


def change_created_at_or_before(change_id: int) -> dt.datetime | None:
    """When the last change at or below ``change_id`` was appended; None if there is none."""
    return (
        Change.objects.filter(id__lte=change_id)
        .order_by("-id")
        .values_list("created_at", flat=True)
        .first()
    )


def change_last_before(moment: dt.datetime) -> int:
    """The id of the last change appended before ``moment`` (0 if none).

    Change times are taken under the sequence lock, so they do not decrease along the sequence:
    every change after this id was appended at or after ``moment``.
    """
    last = (
        Change.objects.filter(created_at__lt=moment)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    return last or 0


def image_hashes(image_ids: Collection[int]) -> dict[int, list[tuple[str, bytes]]]:
    """The hashes of each image, as (variant, 32 bytes), in pdqhash's variant order."""
    order = {variant: index for index, variant in enumerate(ImageHash.Variant.values)}
    found: dict[int, list[tuple[str, bytes]]] = {image_id: [] for image_id in image_ids}
    for image_id, variant, value in ImageHash.objects.filter(image_id__in=image_ids).values_list(
        "image_id", "variant", "value"
    ):
        found[image_id].append((variant, bytes(value)))
    for hashes in found.values():
        hashes.sort(key=lambda pair: order.get(pair[0], len(order)))
    return found


@dataclass(frozen=True, slots=True)
class HashHolder:
    """An image holding a given hash value: what a feed needs to say about it."""

    image_id: int
    status: str
    minor_depicted: bool


def hash_holders(
    values: Collection[bytes], *, scopes: Collection[str]
) -> dict[bytes, list[HashHolder]]:
    """For each hash value, the images in ``scopes`` holding it (never ``received`` ones)."""
    found: dict[bytes, list[HashHolder]] = {}
    rows = (
        ImageHash.objects.filter(value__in=list(values), image__scope__in=list(scopes))
        .exclude(image__status=RegisteredImage.Status.RECEIVED)
        .order_by("image_id")
        .values_list("value", "image_id", "image__status", "image__minor_depicted")
    )
    for value, image_id, status, minor in rows:
        found.setdefault(bytes(value), []).append(
            HashHolder(image_id=image_id, status=status, minor_depicted=minor)
        )
    return found


def images_disclosed(*, partner_id: int, image_ids: Collection[int]) -> set[int]:
    """Which of ``image_ids`` have had their hashes served to the partner ``partner_id``."""
    return set(
        Disclosure.objects.filter(partner_id=partner_id, image_id__in=list(image_ids)).values_list(
            "image_id", flat=True
        )
    )


def images_disclosed_with_hash(*, partner_id: int, value: bytes) -> list[int]:
    """The images holding hash ``value`` whose hashes were served to ``partner_id``."""
    return list(
        ImageHash.objects.filter(value=value, image__disclosures__partner_id=partner_id)
        .order_by("image_id")
        .values_list("image_id", flat=True)
        .distinct()
    )
