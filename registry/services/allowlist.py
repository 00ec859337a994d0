"""The allow-list: known benign or collision-prone hashes that no submission may come near.

A blank image, a common meme or a known PDQ collision would match far too much if someone
registered it. Every submission (a person's registration or added photos, on the pages or the
public API, and a partner's submitted hashes) is checked before anything is written: if any of
its hashes, any dihedral variant, is within the match distance (31 bits) of an allow-listed
hash, it is refused with ``hash_allow_listed`` and nothing is stored; a derived view (a crop, a
masked view) that is near one is left out and the photo registered without it.

The list is small (hundreds of entries), so each process keeps it as a numpy array and scans it;
one cheap aggregate query per submission tells whether it changed since it was loaded. Entries
are added and removed by superusers in the admin, through the services below.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from registry.models import AllowListedHash, AuditEvent
from registry.pdq import HASH_BYTES, MATCH_DISTANCE, DihedralHashes, HashError, InvalidHash
from registry.services.audit import audit_event_record

_WORDS = HASH_BYTES // 8


@dataclass(frozen=True, slots=True)
class _Loaded:
    stamp: tuple[int, int]
    words: npt.NDArray[np.uint64]  # (n, 4): each allow-listed hash as four 64-bit words


_loaded: _Loaded | None = None
_load_lock = threading.Lock()


def _as_words(values: Sequence[bytes]) -> npt.NDArray[np.uint64]:
    if not values:
        return np.zeros((0, _WORDS), dtype=np.uint64)
    return np.frombuffer(b"".join(values), dtype=np.uint64).reshape(-1, _WORDS)


def _allow_listed() -> npt.NDArray[np.uint64]:
    """The allow-list as words, reloaded when its row count or last id changed.

    Entries are never edited in place (the admin only adds and removes them), so the count and
    the last id together change whenever the list does.
    """
    global _loaded  # one copy per process, by design
    row = AllowListedHash.objects.aggregate(count=Count("id"), last=Max("id"))
    stamp = (int(row["count"] or 0), int(row["last"] or 0))
    loaded = _loaded
    if loaded is not None and loaded.stamp == stamp:
        return loaded.words
    with _load_lock:
        values = [bytes(value) for value in AllowListedHash.objects.values_list("value", flat=True)]
        _loaded = _Loaded(stamp=stamp, words=_as_words(values))
        return _loaded.words


def allow_listed_positions(values: Sequence[bytes]) -> list[int]:
    """The positions in ``values`` of the hashes within MATCH_DISTANCE of an allow-listed one."""
    listed = _allow_listed()
    if not values or listed.shape[0] == 0:
        return []
    queries = _as_words(values)
    distances = np.bitwise_count(queries[:, None, :] ^ listed[None, :, :]).sum(axis=2)
    return [int(position) for position in np.flatnonzero((distances <= MATCH_DISTANCE).any(axis=1))]


def hashes_check(values: Sequence[bytes]) -> None:
    """Raise InvalidHash(hash_allow_listed), ``index`` the first offender, if any is listed."""
    positions = allow_listed_positions(values)
    if positions:
        raise InvalidHash(HashError.ALLOW_LISTED, index=positions[0])


def images_check(images: Sequence[DihedralHashes]) -> list[DihedralHashes]:
    """Raise InvalidHash(hash_allow_listed) if any dihedral variant of any image is allow-listed;
    return the images without the derived views that are.

    The error's ``index`` is the variant and its ``image`` the image, as for a malformed hash.
    A derived view (a crop, a masked view: registry.derivatives) near an allow-listed hash is a
    part of the photo that looks like something common (a logo, a blank wall): the photo is
    still registered, without that view, so the common thing never matches it.
    """
    flat = [value for image in images for value in image.hashes]
    positions = allow_listed_positions(flat)
    if positions:
        image, variant = divmod(positions[0], len(images[0].hashes))
        raise InvalidHash(HashError.ALLOW_LISTED, index=variant, image=image)
    views = [(position, view) for position, image in enumerate(images) for view in image.views]
    listed = set(allow_listed_positions([value for _, (_, value) in views]))
    if not listed:
        return list(images)
    kept: list[list[tuple[str, bytes]]] = [[] for _ in images]
    for index, (position, view) in enumerate(views):
        if index not in listed:
            kept[position].append(view)
    return [
        dataclasses.replace(image, views=tuple(kept[position]))
        for position, image in enumerate(images)
    ]


def parse_allow_list_value(text: str) -> bytes:
    """Parse 64 hex digits into 32 bytes. Unlike registry.pdq.parse_hash, a degenerate hash
    (all zero, few bits set) is accepted: those are exactly what blank images produce."""
    cleaned = text.strip()
    if len(cleaned) != HASH_BYTES * 2:
        raise InvalidHash(HashError.MALFORMED)
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise InvalidHash(HashError.MALFORMED) from None


@transaction.atomic
def allow_list_add(*, value: bytes, label: str, added_by_id: int) -> AllowListedHash:
    """Add ``value`` to the allow-list under ``label``; audit event ``allow_list.added``.

    The event names the entry and the staff member, never the hash.
    """
    entry = AllowListedHash.objects.create(
        value=value, label=label, added_by_id=added_by_id, created_at=timezone.now()
    )
    audit_event_record(
        action=AuditEvent.Action.ALLOW_LIST_ADDED,
        actor=f"staff:{added_by_id}",
        subject=f"allow_list:{entry.pk}",
        details={"label": label[:200]},
    )
    return entry


@transaction.atomic
def allow_list_remove(*, entry: AllowListedHash, removed_by_id: int) -> None:
    """Remove ``entry`` from the allow-list; audit event ``allow_list.removed``."""
    subject = f"allow_list:{entry.pk}"
    label = entry.label
    entry.delete()
    audit_event_record(
        action=AuditEvent.Action.ALLOW_LIST_REMOVED,
        actor=f"staff:{removed_by_id}",
        subject=subject,
        details={"label": label[:200]},
    )
