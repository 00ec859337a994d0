"""Reads of the change sequence: pages of it, and positions by time."""

from __future__ import annotations

import datetime as dt

from registry.models import Change


def change_page(*, after_id: int, limit: int) -> list[Change]:
    """The next ``limit`` changes of the sequence after ``after_id``, in sequence order, with
    their images.

    One statement, so it sees a prefix of the sequence: writers append under a lock held until
    commit (services.changes_append), so no change below the last one returned can commit
    later. Callers filter by scope and status themselves and resume after the last change
    *returned*, never after the last one they kept.
    """
    return list(
        Change.objects.filter(id__gt=after_id).select_related("image").order_by("id")[:limit]
    )


def change_created_at_or_before(change_id: int) -> dt.datetime | None:
    """When the last change at or below ``change_id`` was appended; None if there is none."""
    return (
        Change.objects.filter(id__lte=change_id)
        .order_by("-id")
        .values_list("created_at", flat=True)
        .first()
    )


def change_last_before(moment: dt.datetime) -> int:
    """The id of the last change appended before ``moment`` (0 if none).

    Change times are taken under the sequence lock, so they do not decrease along the sequence:
    every change after this id was appended at or after ``moment``.
    """
    last = (
        Change.objects.filter(created_at__lt=moment)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    return last or 0
