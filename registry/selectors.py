"""Reads of the registry's domain that cross models: case summaries, hash matches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from registry.exceptions import InvalidInput
from registry.matcher import get_matcher
from registry.models import Case, ImageHash, RegisteredImage
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


def case_summary(*, case: Case) -> CaseSummary:
    """Return the person-facing summary of ``case``: status, dates, scope and photo counts."""
    images = RegisteredImage.objects.filter(case=case)
    return CaseSummary(
        reference=case.reference,
        status=case.status,
        scope=case.consent.scope,
        created_at=case.created_at,
        withdrawn_at=case.withdrawn_at,
        images=images.count(),
        active_images=images.filter(status=RegisteredImage.Status.ACTIVE).count(),
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
        hash_id: (image_id, scope, minor)
        for hash_id, image_id, scope, minor in ImageHash.objects.matchable()
        .filter(id__in=candidate_ids)
        .values_list("id", "image_id", "image__scope", "image__minor_depicted")
    }
    results: list[list[ImageMatch]] = []
    for ids, distances in found:
        per_image: dict[int, ImageMatch] = {}
        for hash_id, distance in zip(ids.tolist(), distances.tolist(), strict=True):
            row = confirmed.get(hash_id)
            if row is None:
                continue
            image_id, scope, minor = row
            best = per_image.get(image_id)
            if best is None or distance < best.distance:
                per_image[image_id] = ImageMatch(
                    image_id=image_id,
                    scope=scope,
                    minor_depicted=minor,
                    status=RegisteredImage.Status.ACTIVE,
                    distance=distance,
                )
        results.append(
            sorted(per_image.values(), key=lambda match: (match.distance, match.image_id))
        )
    return results
