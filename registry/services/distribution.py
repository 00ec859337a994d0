"""Writes of distribution: what partners received, their feedback and their acknowledgements."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from django.utils import timezone

from registry.exceptions import InvalidInput
from registry.match_ids import match_id_decode
from registry.models import Disclosure, Feedback, Partner, RegisteredImage, WithdrawalAck
from registry.services import review


def disclosure_record(*, partner_id: int, image_ids: Collection[int]) -> None:
    """Record that ``partner_id`` received the hashes of ``image_ids`` now.

    One statement: a new row per (partner, image) with its first time, or the last time moved
    on for a row that exists. Call it in the request that serves the hashes, before answering.
    """
    if not image_ids:
        return
    now = timezone.now()
    Disclosure.objects.bulk_create(
        [
            Disclosure(
                partner_id=partner_id,
                image_id=image_id,
                first_disclosed_at=now,
                last_disclosed_at=now,
            )
            for image_id in sorted(set(image_ids))
        ],
        update_conflicts=True,
        unique_fields=["partner_id", "image"],
        update_fields=["last_disclosed_at"],
    )


def feedback_record(
    *, partner_id: int, image_ids: Collection[int], verdict: str, tags: Sequence[str] = ()
) -> list[Feedback]:
    """Record ``partner_id``'s ``verdict`` on each of ``image_ids`` (one row per image).

    The rows are themselves the record of what the partner said (no audit event). A ``not_blocked``
    verdict may dispute the image (registry.services.review.images_dispute_on_feedback). Raises
    InvalidInput for an unknown verdict. The caller has checked that the partner may speak of these
    images (a match id issued to it, or hashes disclosed to it)."""
    if verdict not in Feedback.Verdict.values:
        raise InvalidInput(
            "verdict_invalid", f"A verdict is one of: {', '.join(Feedback.Verdict.values)}."
        )
    now = timezone.now()
    rows = Feedback.objects.bulk_create(
        [
            Feedback(
                partner_id=partner_id,
                image_id=image_id,
                verdict=verdict,
                tags=list(tags),
                created_at=now,
            )
            for image_id in sorted(set(image_ids))
        ]
    )
    if verdict == Feedback.Verdict.NOT_BLOCKED:
        # Enough distinct partners not blocking an image puts it in the review queue.
        review.images_dispute_on_feedback(image_ids=image_ids)
    return rows


@dataclass(frozen=True, slots=True)
class WithdrawalAcks:
    """The answer to an acknowledgement: ids recorded (now or before), and ids refused."""

    acknowledged: list[str]
    unknown: list[str]
    not_withdrawn: list[str]


def withdrawal_ack_record(*, partner: Partner, ids: Sequence[str]) -> WithdrawalAcks:
    """Record that ``partner`` applied the withdrawal of the images named by ``ids``.

    ``ids`` are the opaque image ids issued to this partner (match ids, webhook and feed ids).
    An id not issued to it, or naming no image, is reported ``unknown``; an image that is not
    withdrawn is reported ``not_withdrawn``. Idempotent: acknowledging again keeps the first
    time. The WithdrawalAck rows are themselves the record (no audit event).
    """
    decoded: dict[str, int | None] = {
        text: match_id_decode(text, partner_id=partner.pk) for text in dict.fromkeys(ids)
    }
    image_ids = {image_id for image_id in decoded.values() if image_id is not None}
    statuses = dict(RegisteredImage.objects.filter(pk__in=image_ids).values_list("pk", "status"))
    acknowledged: list[str] = []
    unknown: list[str] = []
    not_withdrawn: list[str] = []
    withdrawn: list[int] = []
    for text, image_id in decoded.items():
        if image_id is None or image_id not in statuses:
            unknown.append(text)
        elif statuses[image_id] != RegisteredImage.Status.WITHDRAWN:
            not_withdrawn.append(text)
        else:
            acknowledged.append(text)
            withdrawn.append(image_id)
    now = timezone.now()
    WithdrawalAck.objects.bulk_create(
        [
            WithdrawalAck(partner_id=partner.pk, image_id=image_id, acknowledged_at=now)
            for image_id in sorted(set(withdrawn))
        ],
        ignore_conflicts=True,
    )
    return WithdrawalAcks(acknowledged=acknowledged, unknown=unknown, not_withdrawn=not_withdrawn)
