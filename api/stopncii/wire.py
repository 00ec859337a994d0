"""The StopNCII wire format: the registry's records and verdicts in the shapes of StopNCII.org.

Platforms that already fetch from StopNCII.org with Meta's ``threatexchange`` client
(``StopNCIIAPI``) can point it at this registry unchanged. This module maps only: hash records
and page positions out, feedback values and signal types in. The contract is
docs/partners.md and the client itself, checked by tests/api/stopncii/test_stopncii.py.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from api.cursors import cursor_encode
from registry.match_ids import match_id_encode
from registry.models import Feedback
from registry.pdq import format_hash
from registry.selectors.feeds import SIGNAL_MD5, FeedPage, HashRecord

SIGNAL_TYPE_PDQ = "ImagePDQ"
# A video travels as the MD5 of its file, the only video signal StopNCII's partners know.
SIGNAL_TYPE_VIDEO_MD5 = "VideoMD5"
# The client sends str() of its enum member rather than its value; both are accepted.
ACCEPTED_SIGNAL_TYPES = frozenset({SIGNAL_TYPE_PDQ, "StopNCIISignalType.ImagePDQ"})
STATUS_ACTIVE = "Active"
STATUS_WITHDRAWN = "Withdrawn"
# Each photo holds 8 hashes, one record each: a page reads pageSize / 8 changes (a video is
# one record, its MD5, so a page with videos holds fewer records).
RECORDS_PER_IMAGE = 8
DEFAULT_PAGE_SIZE = 800
MAX_PAGE_SIZE = 1000

# StopNCII's feedback values that carry a verdict; the others (Unknown, None, QualityUnknown,
# Withdrawn, Deleted) say nothing about a match and are not recorded.
FEEDBACK_VERDICTS: dict[str, str] = {
    "Blocked": Feedback.Verdict.BLOCKED,
    "NotBlocked": Feedback.Verdict.NOT_BLOCKED,
    "PendingReview": Feedback.Verdict.PENDING_REVIEW,
}
FEEDBACK_VALUES = frozenset(
    {
        "Unknown",
        "None",
        "QualityUnknown",
        "PendingReview",
        "Blocked",
        "NotBlocked",
        "Withdrawn",
        "Deleted",
    }
)


def unix_seconds(moment: dt.datetime) -> int:
    """Whole seconds, rounded down: a checkpoint never lies after the change it stands for."""
    return math.floor(moment.timestamp())


def changes_per_page(page_size: int) -> int:
    return max(1, page_size // RECORDS_PER_IMAGE)


def hash_record(record: HashRecord, *, partner_id: int) -> dict[str, Any]:
    """One ``hashRecords`` item. ``caseNumbers`` names images by this partner's opaque ids."""
    cases = {
        match_id_encode(image_id=image_id, partner_id=partner_id): STATUS_ACTIVE
        for image_id in record.active_image_ids
    }
    cases.update(
        {
            match_id_encode(image_id=image_id, partner_id=partner_id): STATUS_WITHDRAWN
            for image_id in record.withdrawn_image_ids
        }
    )
    is_md5 = record.signal == SIGNAL_MD5
    return {
        "lastModtimestamp": unix_seconds(record.changed_at),
        "signalType": SIGNAL_TYPE_VIDEO_MD5 if is_md5 else SIGNAL_TYPE_PDQ,
        "hashValue": record.value.hex() if is_md5 else format_hash(record.value),
        "hashStatus": STATUS_ACTIVE if record.active_image_ids else STATUS_WITHDRAWN,
        "caseNumbers": cases,
        "CSPFeedbacks": [],
        # Registry-specific, ignored by the client: treat a match as child sexual abuse material.
        "minorDepicted": record.minor_depicted,
    }


def fetch_response(
    records: list[HashRecord],
    page: FeedPage,
    *,
    partner_id: int,
    start_timestamp: int,
    position_time: dt.datetime | None,
) -> dict[str, Any]:
    """The FetchHashes body.

    ``nextSetTimestamp`` is the time of the last change read (or of the page's starting point
    when nothing was read), never earlier than ``startTimestamp``: change times do not decrease
    along the sequence, so every change committed after it has a time at or after it, and
    resuming from it re-delivers at most the changes of that second.
    """
    moment = page.last_changed_at or position_time
    next_set = max(start_timestamp, unix_seconds(moment)) if moment else start_timestamp
    token = (
        cursor_encode(page.last_change_id)
        if page.has_more and page.last_change_id is not None
        else None
    )
    return {
        "count": len(records),
        "nextPageToken": token,
        "nextSetTimestamp": next_set,
        "hasMoreRecords": token is not None,
        "hashRecords": [hash_record(record, partner_id=partner_id) for record in records],
    }
