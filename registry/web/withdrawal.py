"""The signed receipt of a withdrawal: which photos it ended, when, and when their hashes go.

A person who withdraws gets a receipt like the registration's (registry/receipts.py), signed,
checkable on the verify page: the case reference, when matching stopped (partners' matching
stopped at that moment, and the sync feeds and webhooks told them), the photos it ended, each
by its short fingerprint, and the date after which the registry deletes their hash values
(TOMBSTONE_RETENTION_DAYS after the withdrawal, registry/services/retention.py).

The fingerprints are computed from the photos' original hashes, which stay stored until then;
once retention has deleted them, no withdrawal receipt can be signed any more.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings

from registry import receipts
from registry.models import Case, ImageHash, RegisteredImage


def hashes_deleted_after(withdrawn_at: dt.datetime) -> dt.datetime:
    """When retention may delete the hash values of photos withdrawn at ``withdrawn_at``."""
    return withdrawn_at + dt.timedelta(days=settings.TOMBSTONE_RETENTION_DAYS)


def withdrawal_receipt(*, case: Case) -> receipts.Receipt | None:
    """The signed receipt of ``case``'s withdrawal, or None.

    None when the case is active, or when its photos' hash values are already deleted. The
    photos are those its withdrawal ended (withdrawn at the case's withdrawal time), in the
    order they were registered. Nothing is written.
    """
    if case.withdrawn_at is None:
        return None
    rows = list(
        RegisteredImage.objects.filter(
            case=case, status=RegisteredImage.Status.WITHDRAWN, withdrawn_at=case.withdrawn_at
        )
        .order_by("pk")
        .values_list("pk", "md5")
    )
    images = [pk for pk, _md5 in rows]
    originals = dict(
        ImageHash.objects.filter(
            image_id__in=images, variant=ImageHash.Variant.ORIGINAL
        ).values_list("image_id", "value")
    )
    # A video is named by its file's MD5, as on the registration's receipt (registry.web.views).
    originals.update({pk: bytes(md5) for pk, md5 in rows if md5 is not None})
    if not images or len(originals) != len(images):
        return None
    return receipts.receipt_sign(
        reference=case.reference,
        event=receipts.ReceiptEvent.WITHDRAWN,
        issued_at=case.withdrawn_at,
        scope=case.consent.scope,
        hashes=[bytes(originals[pk]) for pk in images],
        hashes_deleted_after=hashes_deleted_after(case.withdrawn_at),
    )
