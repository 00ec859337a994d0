"""The match call of a partner: budget, search, counts and the usage record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from registry.matching import counters
from registry.matching.probing import slowed_key_id
from registry.matching.usage import match_call_recorder
from registry.models import PartnerKey
from registry.ratelimits import limit_partner_hashes
from registry.selectors.matches import ImageMatch, hash_match


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
    counted = len(hashes) + sum(len(upload) for upload in views or ())
    limit_partner_hashes(key.partner, counted, slowed_key=slowed_key_id(key))
    results = hash_match(hashes, max_distance=max_distance, views=views)
    counters.image_matches_record(match.image_id for matches in results for match in matches)
    match_call_recorder.record(
        partner_id=key.partner_id,
        key_id=key.pk,
        purpose=purpose,
        hashes=counted,
        matched_hashes=sum(1 for matches in results if matches),
        matches=sum(len(matches) for matches in results),
    )
    return results
