"""Reads of the sync feeds: a partner's view of the change sequence and of the hash records."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from registry.models import Change, Disclosure, ImageHash, Partner, RegisteredImage
from registry.pdq import DIHEDRAL_VARIANTS
from registry.selectors.changes import change_page
from registry.selectors.matches import hash_holders, image_hashes
from registry.services.distribution import disclosure_record


def partner_sync_scopes(partner: Partner) -> list[str]:
    """The scopes whose images ``partner`` receives (Partner.received_scopes)."""
    return partner.received_scopes


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One image at its place in the change sequence, as the feeds show it now.

    ``kind`` is the image's present state, not the change's: ``added`` while it matches (with
    its hashes), ``withdrawn`` once it no longer does (a tombstone, no hashes). A partner that
    applies entries in order ends with the present state, and a stopped image never has its
    hashes served again.
    """

    change_id: int
    image_id: int
    kind: str
    status: str
    scope: str
    minor_depicted: bool
    changed_at: dt.datetime
    hashes: list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class FeedPage:
    """A page of the feed: its entries, and where the next page starts."""

    entries: list[FeedEntry]
    # The last change read, kept or not: the next page starts after it (None: nothing read).
    last_change_id: int | None
    last_changed_at: dt.datetime | None
    has_more: bool


def partner_changes_read(*, partner: Partner, after_id: int, limit: int) -> FeedPage:
    """The next ``limit`` changes after ``after_id`` as ``partner`` sees them; records disclosures.

    Keeps only images in the partner's sync scopes and never an image awaiting review. Every
    image whose hashes are in the page is recorded in the disclosure ledger before returning.
    """
    changes = change_page(after_id=after_id, limit=limit)
    scopes = set(partner_sync_scopes(partner))
    kept = [
        change
        for change in changes
        if change.image.scope in scopes and change.image.status != RegisteredImage.Status.RECEIVED
    ]
    matchable = {
        change.image_id for change in kept if change.image.status in RegisteredImage.MATCHABLE
    }
    hashes = image_hashes(matchable)
    disclosure_record(partner_id=partner.pk, image_ids=matchable)
    entries = [
        FeedEntry(
            change_id=change.pk,
            image_id=change.image_id,
            kind=Change.Kind.ADDED if change.image_id in matchable else Change.Kind.WITHDRAWN,
            status=change.image.status,
            scope=change.image.scope,
            minor_depicted=change.image.minor_depicted,
            changed_at=change.created_at,
            hashes=hashes.get(change.image_id, []),
        )
        for change in kept
    ]
    return FeedPage(
        entries=entries,
        last_change_id=changes[-1].pk if changes else None,
        last_changed_at=changes[-1].created_at if changes else None,
        has_more=len(changes) == limit,
    )


@dataclass(frozen=True, slots=True)
class HashRecord:
    """One hash value as the StopNCII feed shows it: every image holding it that the partner
    may know of, and whether any of them still matches."""

    value: bytes
    changed_at: dt.datetime
    active_image_ids: list[int]
    withdrawn_image_ids: list[int]
    minor_depicted: bool


def partner_hash_records_read(
    *, partner: Partner, after_id: int, limit: int
) -> tuple[list[HashRecord], FeedPage]:
    """The next ``limit`` changes as per-hash records (the StopNCII shape); records disclosures.

    Only the dihedral hashes are served, never the derived views. A hash value is keyed alone on
    the partner's side, so each record aggregates every image in
    the partner's scopes that holds the value: it is active if any of them matches. The hashes
    of an image that stopped matching are sent again (as withdrawn) only to a partner that
    received them before: a withdrawal never discloses a hash to a partner that never had it.
    """
    page = partner_changes_read(partner=partner, after_id=after_id, limit=limit)
    scopes = partner_sync_scopes(partner)
    gone = {entry.image_id for entry in page.entries if entry.kind == Change.Kind.WITHDRAWN}
    gone_known = images_disclosed(partner_id=partner.pk, image_ids=gone)
    gone_hashes = image_hashes(gone_known)
    ordered: dict[bytes, dt.datetime] = {}
    for entry in page.entries:
        for variant, value in entry.hashes or gone_hashes.get(entry.image_id, []):
            # The StopNCII shape carries the 8 dihedral hashes only: its partners' matchers know
            # no crops or masked views (registry.derivatives).
            if variant not in DIHEDRAL_VARIANTS:
                continue
            ordered.pop(value, None)
            ordered[value] = entry.changed_at
    holders = hash_holders(ordered, scopes=scopes)
    other_gone = {
        holder.image_id
        for found in holders.values()
        for holder in found
        if holder.status not in RegisteredImage.MATCHABLE
    }
    known = images_disclosed(partner_id=partner.pk, image_ids=other_gone)
    records: list[HashRecord] = []
    served: set[int] = set()
    for value, changed_at in ordered.items():
        found = holders.get(value, [])
        active = [h.image_id for h in found if h.status in RegisteredImage.MATCHABLE]
        withdrawn = [h.image_id for h in found if h.image_id in known]
        if not active and not withdrawn:
            continue
        served.update(active)
        records.append(
            HashRecord(
                value=value,
                changed_at=changed_at,
                active_image_ids=active,
                withdrawn_image_ids=withdrawn,
                minor_depicted=any(
                    h.minor_depicted for h in found if h.status in RegisteredImage.MATCHABLE
                ),
            )
        )
    # Images outside this page that share a served hash value were disclosed too.
    disclosure_record(partner_id=partner.pk, image_ids=served)
    return records, page


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
