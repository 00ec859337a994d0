"""Reads of the match path: which registered images a hash matches, and their hashes."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from registry.exceptions import InvalidInput
from registry.matching.follower import get_matcher
from registry.models import ImageHash, RegisteredImage
from registry.pdq import MATCH_DISTANCE


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
