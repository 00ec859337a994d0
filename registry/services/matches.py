"""The match call of a partner: budget, search, counts and the usage record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from registry.matching.probing import slowed_key_id
from registry.matching.usage import match_call_recorder
from registry.models import PartnerKey
from registry.ratelimits import limit_partner_hashes
from registry.selectors.matches import ImageMatch, hash_match
from registry.selectors.video_matches import VideoMatch, video_match
from registry.videos import Frame


def partner_match(
    *,
    key: PartnerKey,
    hashes: Sequence[bytes],
    purpose: str,
    max_distance: int,
    views: Sequence[Mapping[str, bytes]] | None = None,
) -> list[list[ImageMatch]]:
    """Match ``hashes`` (each an upload's own hash, with its derived views ``views[i]`` when
    given) for the partner holding ``key`` and record the call.

    Counts each hash, views included, against the partner's rate limit (raises RateLimited),
    matches through
    registry.selectors.hash_match, and writes one MatchCall row: partner, time, counts and
    purpose, never the hashes. Counts each image's matches for the review's spike rule.
    A key under a probing alert gets a fraction of the budget (registry.matching.probing).
    """
    results, _ = partner_match_with_videos(
        key=key,
        hashes=hashes,
        videos=(),
        purpose=purpose,
        max_distance=max_distance,
        views=views,
    )
    return results


def partner_match_with_videos(
    *,
    key: PartnerKey,
    hashes: Sequence[bytes],
    videos: Sequence[Sequence[Frame]],
    purpose: str,
    max_distance: int,
    views: Sequence[Mapping[str, bytes]] | None = None,
) -> tuple[list[list[ImageMatch]], list[list[VideoMatch]]]:
    """partner_match for a call that also carries videos (their vPDQ frame lists): every frame
    counts as a hash against the budget, the videos are matched by
    registry.selectors.video_match, and the one MatchCall row counts each video that matched
    as one matched hash."""
    counted = (
        len(hashes)
        + sum(len(upload) for upload in views or ())
        + sum(len(frames) for frames in videos)
    )
    limit_partner_hashes(key.partner, counted, slowed_key=slowed_key_id(key))
    results = hash_match(hashes, max_distance=max_distance, views=views) if hashes else []
    video_results = video_match(videos) if videos else []
    matched = sum(1 for found in results if found) + sum(1 for found in video_results if found)
    images = [match.image_id for matches in results for match in matches]
    images += [match.image_id for matches in video_results for match in matches]
    match_call_recorder.record(
        partner_id=key.partner_id,
        key_id=key.pk,
        purpose=purpose,
        hashes=counted,
        matched_hashes=matched,
        matches=len(images),
        matched_images=images,
    )
    return results, video_results
