"""The match of a partner's video, its vPDQ frame list, against every matchable registered item.

The query's frames are searched in the same index as every hash (registry.matching), then the
candidates are confirmed on the primary, as for a hash (registry.selectors.matches): a
withdrawal is effective at its commit. Registered videos are decided by the vPDQ rule
(registry.videos.video_decide_pairs); a registered photo seen in a frame of the query is named
too, with the time of that frame.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from django.db.models import Count

from registry.dbrouting import primary_reads
from registry.derivatives import DERIVED_VIEW_KINDS, WHOLE, WHOLE_DISTANCE
from registry.models import ImageHash
from registry.selectors.matches import VIDEO, searched_and_confirmed
from registry.videos import FRAME_MATCH_DISTANCE, Frame, matchable_frames, video_decide_pairs

# The kind of a registered photo seen in a frame of a query video.
PHOTO = "photo"


@dataclass(frozen=True, slots=True)
class VideoMatch:
    """A registered item that a query video matched (never its hashes, never its case).

    ``kind`` is ``video`` (a registered video, by the vPDQ rule: the shares of the query's and
    of the registered video's frames that matched, and ``timestamp``, the registered frame
    behind the closest pair) or ``photo`` (a registered photo within 31 bits of a frame of the
    query, whose time is ``timestamp``).
    """

    image_id: int
    scope: str
    minor_depicted: bool
    status: str
    kind: str
    distance: int
    timestamp: float
    query_match_percent: float = 0.0
    registered_match_percent: float = 0.0


@primary_reads()
def video_match(videos: Sequence[Sequence[Frame]]) -> list[list[VideoMatch]]:
    """Match each query video (its frames: registry.videos.parse_frames) and return, per video
    and in order, the registered videos the vPDQ rule matches and the registered photos seen in
    a frame, closest first. Frames of quality below 50 and repeated hashes are left out, as on
    the registered side."""
    kept = [matchable_frames(frames) for frames in videos]
    flat = [frame.value for frames in kept for frame in frames]
    owners = [(video, index) for video, frames in enumerate(kept) for index in range(len(frames))]
    found, confirmed = searched_and_confirmed(flat, max_distance=FRAME_MATCH_DISTANCE)
    if not confirmed:
        return [[] for _ in videos]
    # Per query video: registered video -> (query frame, registered hash id, distance) pairs,
    # and registered photo -> its closest (distance, query frame time).
    video_pairs: list[dict[int, list[tuple[int, int, int]]]] = [{} for _ in videos]
    photo_best: list[dict[int, tuple[int, float]]] = [{} for _ in videos]
    about: dict[int, tuple[str, bool, str]] = {}
    frame_times: dict[int, float] = {}
    for (video, index), (ids, distances) in zip(owners, found, strict=True):
        for hash_id, distance in zip(ids.tolist(), distances.tolist(), strict=True):
            row = confirmed.get(hash_id)
            if row is None:
                continue
            image_id, variant, scope, minor, status, frame_at = row
            about[image_id] = (scope, minor, status)
            if frame_at is not None:
                frame_times[hash_id] = frame_at
                video_pairs[video].setdefault(image_id, []).append((index, hash_id, distance))
            elif DERIVED_VIEW_KINDS.get(variant, WHOLE) == WHOLE and distance <= WHOLE_DISTANCE:
                moment = (distance, kept[video][index].timestamp)
                best = photo_best[video].get(image_id)
                if best is None or moment < best:
                    photo_best[video][image_id] = moment
    frames_held = _frame_counts({image_id for pairs in video_pairs for image_id in pairs})
    results: list[list[VideoMatch]] = []
    for video, frames in enumerate(kept):
        matches: list[VideoMatch] = []
        for image_id, pairs in video_pairs[video].items():
            # Each registered frame's place among the video's frames that were found.
            places = {hash_id: place for place, hash_id in enumerate({h for _, h, _ in pairs})}
            decision = video_decide_pairs(
                ((query, places[hash_id], distance) for query, hash_id, distance in pairs),
                query_frames=len(frames),
                registered_frames=frames_held.get(image_id, 0),
                registered_timestamps=[frame_times[hash_id] for hash_id in places],
            )
            if decision is None or not decision.is_match:
                continue
            scope, minor, status = about[image_id]
            matches.append(
                VideoMatch(
                    image_id=image_id,
                    scope=scope,
                    minor_depicted=minor,
                    status=status,
                    kind=VIDEO,
                    distance=decision.distance,
                    timestamp=decision.timestamp,
                    query_match_percent=round(decision.query_match_percent, 1),
                    registered_match_percent=round(decision.registered_match_percent, 1),
                )
            )
        for image_id, (distance, timestamp) in photo_best[video].items():
            scope, minor, status = about[image_id]
            matches.append(
                VideoMatch(
                    image_id=image_id,
                    scope=scope,
                    minor_depicted=minor,
                    status=status,
                    kind=PHOTO,
                    distance=distance,
                    timestamp=timestamp,
                )
            )
        results.append(sorted(matches, key=lambda match: (match.distance, match.image_id)))
    return results


def _frame_counts(image_ids: Collection[int]) -> dict[int, int]:
    """How many frames each registered video holds (its distinct hashes of quality 50 or
    more: registry.services.videos stores no other)."""
    if not image_ids:
        return {}
    rows = (
        ImageHash.objects.filter(image_id__in=image_ids, variant=ImageHash.FRAME)
        .values("image_id")
        .annotate(count=Count("id"))
        .values_list("image_id", "count")
    )
    return dict(rows)
