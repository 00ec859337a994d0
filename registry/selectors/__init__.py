"""Reads of the registry's domain that cross models or need permissions (the match included).

Split by what is read: cases, matches, the change sequence, the sync feeds, partner keys and
statistics. The names most callers need are re-exported here.
"""

from registry.selectors.cases import (
    CasePartnerCounts,
    CaseSummary,
    case_partner_counts,
    case_summary,
)
from registry.selectors.changes import change_created_at_or_before, change_last_before, change_page
from registry.selectors.feeds import (
    FeedEntry,
    FeedPage,
    HashRecord,
    images_disclosed,
    images_disclosed_with_hash,
    partner_changes_read,
    partner_hash_records_read,
    partner_sync_scopes,
)
from registry.selectors.matches import (
    HashHolder,
    ImageMatch,
    hash_holders,
    hash_match,
    image_hashes,
)
from registry.selectors.partners import partner_key_authenticate

__all__ = [
    "CasePartnerCounts",
    "CaseSummary",
    "FeedEntry",
    "FeedPage",
    "HashHolder",
    "HashRecord",
    "ImageMatch",
    "case_partner_counts",
    "case_summary",
    "change_created_at_or_before",
    "change_last_before",
    "change_page",
    "hash_holders",
    "hash_match",
    "image_hashes",
    "images_disclosed",
    "images_disclosed_with_hash",
    "partner_changes_read",
    "partner_hash_records_read",
    "partner_key_authenticate",
    "partner_sync_scopes",
]
