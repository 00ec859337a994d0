"""Reads of the sync feeds: a partner's view of the change sequence and of the hash records.

A photo travels as its PDQ hashes; a video (RegisteredImage kind ``video``: registry.videos) as
its vPDQ frames and the MD5 of its file on the native feed, and as its MD5 alone on the
StopNCII feed, whose partners know no other video signal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, field

from registry.models import Change, Disclosure, ImageHash, Partner, RegisteredImage
from registry.pdq import DIHEDRAL_VARIANTS
from registry.selectors.changes import change_page
from registry.selectors.matches import HashHolder, hash_holders, image_hashes
from registry.services.distribution import disclosure_record
from registry.videos import Frame

# The signals of the StopNCII shape: a photo's PDQ hashes (32 bytes), a video's file MD5 (16).
SIGNAL_PDQ = "pdq"
SIGNAL_MD5 = "md5"
MD5_BYTES = 16


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

    ``media`` is ``photo`` or ``video``. An added photo carries its ``hashes``; an added video
    its ``frames`` (quality 50 or more, each hash once, in time order) and ``md5`` instead. A
    tombstone carries none of them.
    """

    change_id: int
    image_id: int
    kind: str
    status: str
    scope: str
    minor_depicted: bool
    changed_at: dt.datetime
    hashes: list[tuple[str, bytes]]
    media: str = RegisteredImage.Kind.PHOTO
    frames: list[Frame] = field(default_factory=list)
    md5: bytes | None = None


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
    videos = {change.image_id for change in kept if change.image.kind == RegisteredImage.Kind.VIDEO}
    hashes = image_hashes(matchable - videos)
    frames = video_frames(matchable & videos)
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
            media=change.image.kind,
            frames=frames.get(change.image_id, []),
            md5=(
                bytes(change.image.md5)
                if change.image_id in matchable and change.image.md5 is not None
                else None
            ),
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
    may know of, and whether any of them still matches.

    ``signal`` is SIGNAL_PDQ (a photo's dihedral PDQ hash, 32 bytes) or SIGNAL_MD5 (a video's
    file MD5, 16 bytes); records are keyed by both, so the two never mix.
    """

    value: bytes
    changed_at: dt.datetime
    active_image_ids: list[int]
    withdrawn_image_ids: list[int]
    minor_depicted: bool
    signal: str = SIGNAL_PDQ


def partner_hash_records_read(
    *, partner: Partner, after_id: int, limit: int
) -> tuple[list[HashRecord], FeedPage]:
    """The next ``limit`` changes as per-hash records (the StopNCII shape); records disclosures.

    Only a photo's dihedral hashes are served, never its derived views, and a video only as the
    MD5 of its file, never its frames. A value is keyed alone on the partner's side, so each
    record aggregates every image in the partner's scopes that holds the value: it is active if
    any of them matches. The values of an image that stopped matching are sent again (as
    withdrawn) only to a partner that received them before: a withdrawal never discloses a
    value to a partner that never had it.
    """
    page = partner_changes_read(partner=partner, after_id=after_id, limit=limit)
    scopes = partner_sync_scopes(partner)
    gone = {entry.image_id for entry in page.entries if entry.kind == Change.Kind.WITHDRAWN}
    gone_known = images_disclosed(partner_id=partner.pk, image_ids=gone)
    gone_hashes = image_hashes(gone_known)
    gone_md5s = video_md5s(gone_known)
    ordered: dict[tuple[str, bytes], dt.datetime] = {}

    def place(key: tuple[str, bytes], moment: dt.datetime) -> None:
        ordered.pop(key, None)
        ordered[key] = moment

    for entry in page.entries:
        if entry.media == RegisteredImage.Kind.VIDEO:
            # StopNCII's partners know a video by the MD5 of its file only.
            md5 = entry.md5 or gone_md5s.get(entry.image_id)
            if md5 is not None:
                place((SIGNAL_MD5, md5), entry.changed_at)
            continue
        for variant, value in entry.hashes or gone_hashes.get(entry.image_id, []):
            # The StopNCII shape carries the 8 dihedral hashes only: its partners' matchers know
            # no crops or masked views (registry.derivatives).
            if variant not in DIHEDRAL_VARIANTS:
                continue
            place((SIGNAL_PDQ, value), entry.changed_at)
    holders: dict[tuple[str, bytes], list[HashHolder]] = {}
    pdq_values = [value for signal, value in ordered if signal == SIGNAL_PDQ]
    md5_values = [value for signal, value in ordered if signal == SIGNAL_MD5]
    for value, found in hash_holders(pdq_values, scopes=scopes).items():
        holders[(SIGNAL_PDQ, value)] = found
    for value, found in md5_holders(md5_values, scopes=scopes).items():
        holders[(SIGNAL_MD5, value)] = found
    other_gone = {
        holder.image_id
        for found in holders.values()
        for holder in found
        if holder.status not in RegisteredImage.MATCHABLE
    }
    known = images_disclosed(partner_id=partner.pk, image_ids=other_gone)
    records: list[HashRecord] = []
    served: set[int] = set()
    for (signal, value), changed_at in ordered.items():
        found = holders.get((signal, value), [])
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
                signal=signal,
            )
        )
    # Images outside this page that share a served hash value were disclosed too.
    disclosure_record(partner_id=partner.pk, image_ids=served)
    return records, page


def video_frames(image_ids: Collection[int]) -> dict[int, list[Frame]]:
    """The frames of each video, in time order (registry.services.videos stores only those of
    quality 50 or more, each hash once)."""
    found: dict[int, list[Frame]] = {image_id: [] for image_id in image_ids}
    if not found:
        return found
    rows = (
        ImageHash.objects.filter(image_id__in=list(found), variant=ImageHash.FRAME)
        .order_by("image_id", "frame_at", "pk")
        .values_list("image_id", "value", "frame_quality", "frame_at")
    )
    for image_id, value, quality, frame_at in rows:
        # A frame row always has its time and quality (hash_frame_has_time_and_quality).
        found[image_id].append(
            Frame(value=bytes(value), quality=quality or 0, timestamp=frame_at or 0.0)
        )
    return found


def video_md5s(image_ids: Collection[int]) -> dict[int, bytes]:
    """The file MD5 of each of ``image_ids`` that is a video and still has it (retention deletes
    it with the frames: registry.services.retention)."""
    rows = RegisteredImage.objects.filter(
        pk__in=list(image_ids), kind=RegisteredImage.Kind.VIDEO, md5__isnull=False
    ).values_list("pk", "md5")
    return {image_id: bytes(md5) for image_id, md5 in rows if md5 is not None}


def md5_holders(
    values: Collection[bytes], *, scopes: Collection[str]
) -> dict[bytes, list[HashHolder]]:
    """For each video MD5, the videos in ``scopes`` whose file has it (never ``received``
    ones): hash_holders for the MD5 signal, which lives on the video's row, not among the
    PDQ hashes."""
    found: dict[bytes, list[HashHolder]] = {}
    if not values:
        return found
    rows = (
        RegisteredImage.objects.filter(
            kind=RegisteredImage.Kind.VIDEO, md5__in=list(values), scope__in=list(scopes)
        )
        .exclude(status=RegisteredImage.Status.RECEIVED)
        .order_by("pk")
        .values_list("md5", "pk", "status", "minor_depicted")
    )
    for md5, image_id, status, minor in rows:
        if md5 is None:
            continue
        found.setdefault(bytes(md5), []).append(
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
    """The images holding hash ``value`` whose hashes were served to ``partner_id``.

    A 16-byte value is a video's file MD5 (the StopNCII feed's VideoMD5 signal): the videos
    whose file has it. Any other is a PDQ hash among the images' hashes.
    """
    if len(value) == MD5_BYTES:
        return list(
            RegisteredImage.objects.filter(
                kind=RegisteredImage.Kind.VIDEO,
                md5=value,
                disclosures__partner_id=partner_id,
            )
            .order_by("pk")
            .values_list("pk", flat=True)
            .distinct()
        )
    return list(
        ImageHash.objects.filter(value=value, image__disclosures__partner_id=partner_id)
        .order_by("image_id")
        .values_list("image_id", flat=True)
        .distinct()
    )
