"""Reads of the match path: which registered images a hash matches, and their hashes."""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Count

from registry import dbreads
from registry.dbrouting import primary_reads
from registry.derivatives import DERIVED_VIEW_NAMES, MASK_NAMES, TILE_NAMES, WHOLE, decide
from registry.exceptions import InvalidInput
from registry.matching.follower import get_matcher
from registry.matching.index import Matches
from registry.models import ImageHash, RegisteredImage
from registry.pdq import DIHEDRAL_VARIANTS, MATCH_DISTANCE


@dataclass(frozen=True, slots=True)
class ImageMatch:
    """A registered image that an upload matched (never its hashes, never its case).

    ``kind`` says what matched (registry.derivatives.decide): ``whole`` (the upload's own hash
    and a dihedral hash of the photo), ``reframed`` (a crop, border trim, rotation or cut of one
    side against the other) or ``regions`` (``regions`` of the photo's ``regions_of`` masked
    views and guard tiles agreed). ``distance`` is the closest pair behind the decision.
    """

    image_id: int
    scope: str
    minor_depicted: bool
    status: str
    distance: int
    kind: str = WHOLE
    regions: int = 0
    regions_of: int = 0
    # For a registered video (kind ``video``): the time, in seconds, of the frame that matched.
    timestamp: float | None = None


# The kind of a match on a registered video's frame (registry.videos).
VIDEO = "video"


# A withdrawal is effective at its commit on the primary: never confirm on a replica.
@primary_reads()
def hash_match(
    hashes: Sequence[bytes],
    max_distance: int = MATCH_DISTANCE,
    *,
    views: Sequence[Mapping[str, bytes]] | None = None,
) -> list[list[ImageMatch]]:
    """Match each upload, its 32-byte hash and optionally its derived views (``views[i]`` for
    ``hashes[i]``: registry.derivatives.query_views), against every matchable registered image.

    Returns one list per upload, in order: the images the rule (registry.derivatives.decide)
    matches, each once, closest first. ``max_distance`` may be lowered from 31, never raised.
    Candidates from this process's index are confirmed against the database in one indexed
    query, so an image withdrawn by a committed transaction is never returned, even before the
    index has applied the withdrawal. Raises InvalidInput for a distance outside 0..31.
    """
    if isinstance(max_distance, bool) or not 0 <= max_distance <= MATCH_DISTANCE:
        raise InvalidInput(
            "max_distance_invalid", f"max_distance is a whole number from 0 to {MATCH_DISTANCE}."
        )
    # Every query hash, flattened: (upload, query view) for each.
    owners: list[tuple[int, str]] = [(upload, WHOLE) for upload in range(len(hashes))]
    flat = list(hashes)
    for upload, upload_views in enumerate(views or ()):
        for name, value in upload_views.items():
            owners.append((upload, name))
            flat.append(value)
    found, confirmed = searched_and_confirmed(flat, max_distance=max_distance)
    if not confirmed:
        return [[] for _ in hashes]
    # For each upload and image, the (query view, registered variant, distance) pairs.
    pairs: list[dict[int, list[tuple[str, str, int]]]] = [{} for _ in hashes]
    about: dict[int, tuple[str, bool, str]] = {}
    # For each upload and registered video, its closest frame: (distance, time).
    closest_frames: list[dict[int, tuple[int, float]]] = [{} for _ in hashes]
    for (upload, query_view), (ids, distances) in zip(owners, found, strict=True):
        for hash_id, distance in zip(ids.tolist(), distances.tolist(), strict=True):
            row = confirmed.get(hash_id)
            if row is None:
                continue
            image_id, variant, scope, minor, status, frame_at = row
            about[image_id] = (scope, minor, status)
            pairs[upload].setdefault(image_id, []).append((query_view, variant, distance))
            if frame_at is not None:
                # A frame counts as the photo of a moment of the video, whole or re-framed.
                best = closest_frames[upload].get(image_id)
                if best is None or (distance, frame_at) < best:
                    closest_frames[upload][image_id] = (distance, frame_at)
    # The regions rule needs every guard tile of the photo: how many masks and tiles it holds.
    regions_held = _region_counts(
        {
            image_id
            for per_image in pairs
            for image_id, found_pairs in per_image.items()
            if any(registered in _REGION_VARIANTS for _, registered, _ in found_pairs)
        }
    )
    results: list[list[ImageMatch]] = []
    for per_image, frames in zip(pairs, closest_frames, strict=True):
        matches = []
        for image_id, image_pairs in per_image.items():
            masks, tiles = regions_held.get(image_id, (0, 0))
            decision = decide(image_pairs, registered_masks=masks, registered_tiles=tiles)
            if decision is None:
                continue
            scope, minor, status = about[image_id]
            frame = frames.get(image_id)
            if frame is not None:
                matches.append(
                    ImageMatch(
                        image_id=image_id,
                        scope=scope,
                        minor_depicted=minor,
                        status=status,
                        distance=decision.distance,
                        kind=VIDEO,
                        timestamp=frame[1],
                    )
                )
                continue
            matches.append(
                ImageMatch(
                    image_id=image_id,
                    scope=scope,
                    minor_depicted=minor,
                    status=status,
                    distance=decision.distance,
                    kind=decision.kind,
                    regions=decision.regions,
                    regions_of=decision.regions_of,
                )
            )
        results.append(sorted(matches, key=lambda match: (match.distance, match.image_id)))
    return results


_REGION_VARIANTS = frozenset((*MASK_NAMES, *TILE_NAMES))


@functools.cache
def _confirm_sql() -> str:
    """``ImageHash.objects.matchable().filter(id__in=...)`` with the image's fields, written out
    once: building it through the ORM cost more than the database's work (tests/load/)."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    hashes, images = ImageHash._meta, RegisteredImage._meta
    statuses = ", ".join(f"'{status}'" for status in RegisteredImage.MATCHABLE)
    return (
        f"SELECT h.{quote('id')}, h.{quote('image_id')}, h.{quote('variant')}, "  # noqa: S608
        f"i.{quote('scope')}, i.{quote('minor_depicted')}, i.{quote('status')}, "
        f"h.{quote('frame_at')} "
        f"FROM {quote(hashes.db_table)} h JOIN {quote(images.db_table)} i "
        f"ON i.{quote('id')} = h.{quote('image_id')} "
        f"WHERE i.{quote('status')} IN ({statuses}) AND h.{quote('id')} IN "
    )


# A confirmed candidate: image id, variant, scope, under-18 flag, status, a frame's time.
Confirmed = tuple[int, str, str, bool, str, float | None]


def _confirmed(candidate_ids: Collection[int]) -> dict[int, Confirmed]:
    """The candidates still matchable, with their image's fields (and a video frame's time),
    read on the primary: an image withdrawn by a committed transaction is never among them."""
    ids = list(candidate_ids)
    sql = _confirm_sql() + f"({', '.join(['%s'] * len(ids))})"
    rows = dbreads.rows(sql, ids)
    return {
        hash_id: (image_id, variant, scope, bool(minor), status, frame_at)
        for hash_id, image_id, variant, scope, minor, status, frame_at in rows
    }


def searched_and_confirmed(
    queries: Sequence[bytes], *, max_distance: int
) -> tuple[list[Matches], dict[int, Confirmed]]:
    """This process's index searched for ``queries`` (one Matches each, in order), and the
    candidates it found that are still matchable, by hash id (_confirmed): the one search and
    the one query on the primary of every match, of hashes and of videos alike."""
    found = get_matcher().search(queries, max_distance=max_distance)
    candidate_ids = {hash_id for ids, _ in found for hash_id in ids.tolist()}
    return found, (_confirmed(candidate_ids) if candidate_ids else {})


def _region_counts(image_ids: Collection[int]) -> dict[int, tuple[int, int]]:
    """How many masked views and guard tiles each image holds: a photo's flat regions were
    never registered, and a regions match needs every tile the photo has."""
    if not image_ids:
        return {}
    counts: dict[int, list[int]] = {image_id: [0, 0] for image_id in image_ids}
    rows = (
        ImageHash.objects.filter(image_id__in=image_ids, variant__in=_REGION_VARIANTS)
        .values("image_id", "variant")
        .annotate(count=Count("id"))
        .values_list("image_id", "variant", "count")
    )
    for image_id, variant, count in rows:
        counts[image_id][0 if variant in MASK_NAMES else 1] += count
    return {image_id: (masks, tiles) for image_id, (masks, tiles) in counts.items()}


def image_hashes(image_ids: Collection[int]) -> dict[int, list[tuple[str, bytes]]]:
    """The hashes of each image, as (variant, 32 bytes): the dihedral ones in pdqhash's order,
    then the derived views in registry.derivatives' order."""
    order = {
        variant: index
        for index, variant in enumerate((*ImageHash.Variant.values, *DERIVED_VIEW_NAMES))
    }
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
    """For each hash value, the images in ``scopes`` holding it as a dihedral hash (never
    ``received`` ones)."""
    found: dict[bytes, list[HashHolder]] = {}
    rows = (
        ImageHash.objects.filter(
            value__in=list(values),
            variant__in=DIHEDRAL_VARIANTS,
            image__scope__in=list(scopes),
        )
        .exclude(image__status=RegisteredImage.Status.RECEIVED)
        .order_by("image_id")
        .values_list("value", "image_id", "image__status", "image__minor_depicted")
    )
    for value, image_id, status, minor in rows:
        found.setdefault(bytes(value), []).append(
            HashHolder(image_id=image_id, status=status, minor_depicted=minor)
        )
    return found
