"""Keeping the list honest: the review queue, reviewers' decisions and the dispute triggers.

An image enters the review queue in two ways:

- a partner submitted its hash (status ``received``): a reviewer accepts it (``active``, it
  starts matching and enters the feeds) or rejects it (``rejected``, it never matches);
- it became ``disputed``: at least REVIEW_DISPUTE_PARTNERS distinct partners reported
  ``not_blocked`` for it, or its matches over 24 hours far exceed the usual (a hash that
  suddenly matches everything is suspicious). A disputed image keeps matching, flagged
  ``disputed`` in match results; a reviewer suspends it (``suspended``: it stops matching and
  partners receive a removal), reinstates it or dismisses the dispute (back to ``active``).

A suspended image can be reinstated (partners receive an addition). A withdrawn image is never
reinstated: the person's withdrawal is final. Each decision is a ReviewDecision row (who, when,
why) and an audit event; a refused transition raises InvalidInput with a stable code.

The match-spike rule (``images_dispute_on_match_spikes``, run by Celery beat): each image's
matches are counted per hour in Redis (a hash per hour, image id to count: never a hash value),
and an active image is disputed when its count over the last 24 hours is above
REVIEW_SPIKE_FLOOR and above REVIEW_SPIKE_MULTIPLE times the typical count, the median 24-hour
count of the images matched at least once in those 24 hours. The median, not the mean, so that
the spikes themselves do not raise the bar; the floor, so that a quiet registry where every
image matched once or twice does not dispute an image for matching a dozen times.
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from registry import roles
from registry.exceptions import InvalidInput
from registry.matching.counters import image_match_counts
from registry.models import (
    AuditEvent,
    Change,
    ConsentRecord,
    Feedback,
    ImageHash,
    RegisteredImage,
    ReviewDecision,
)
from registry.redaction import redact
from registry.services import allowlist
from registry.services.audit import audit_event_record
from registry.services.changes import changes_append

logger = logging.getLogger(__name__)

Status = RegisteredImage.Status
Decision = ReviewDecision.Decision

REASON_MAX = 2000


@dataclass(frozen=True, slots=True)
class Transition:
    """What a decision may start from, where it leads, and what partners must hear of it."""

    sources: frozenset[str]
    target: str
    # The change appended for partners (feeds, webhooks, every process's index), if any: only a
    # change of matchability is one.
    change: dict[str, str | None]


TRANSITIONS: dict[str, Transition] = {
    Decision.SUSPEND: Transition(
        frozenset({Status.DISPUTED}), Status.SUSPENDED, {Status.DISPUTED: Change.Kind.SUSPENDED}
    ),
    Decision.REINSTATE: Transition(
        frozenset({Status.SUSPENDED, Status.DISPUTED}),
        Status.ACTIVE,
        {Status.SUSPENDED: Change.Kind.ADDED, Status.DISPUTED: None},
    ),
    Decision.DISMISS: Transition(
        frozenset({Status.DISPUTED}), Status.ACTIVE, {Status.DISPUTED: None}
    ),
    Decision.ACCEPT: Transition(
        frozenset({Status.RECEIVED}), Status.ACTIVE, {Status.RECEIVED: Change.Kind.ADDED}
    ),
    Decision.REJECT: Transition(
        frozenset({Status.RECEIVED}), Status.REJECTED, {Status.RECEIVED: None}
    ),
}


def decision_allowed(*, decision: str, status: str) -> bool:
    """Whether ``decision`` may be taken on an image in ``status``."""
    transition = TRANSITIONS.get(decision)
    return transition is not None and status in transition.sources


def image_review_decide(
    *, image: RegisteredImage, decision: str, reviewer: Any, reason: str
) -> ReviewDecision:
    """Take a reviewer's ``decision`` on ``image``, with the ``reason`` for it.

    In one transaction: moves the image to its new status (see TRANSITIONS), writes a
    ReviewDecision and a ``review.decided`` audit event, and appends a change when the image
    starts or stops matching (suspend: ``suspended``, a removal; reinstate from suspended and
    accept: ``added``). The reason is kept with hashes, secrets and addresses redacted.

    Raises InvalidInput: ``review_not_allowed`` unless ``reviewer`` is a reviewer,
    ``review_reason_required`` for an empty reason, ``review_decision_unknown``, and
    ``review_transition_invalid`` when the image's status does not allow the decision (a
    withdrawn image is never reinstated).
    """
    if not roles.is_reviewer(reviewer):
        raise InvalidInput("review_not_allowed", "Only a reviewer may decide on images.")
    cleaned = redact(reason.strip())[:REASON_MAX] if isinstance(reason, str) else ""
    if not cleaned:
        raise InvalidInput("review_reason_required", "Give the reason for this decision.")
    transition = TRANSITIONS.get(decision)
    if transition is None:
        raise InvalidInput(
            "review_decision_unknown",
            f"A decision is one of: {', '.join(Decision.values)}.",
        )
    with transaction.atomic():
        locked = RegisteredImage.objects.select_for_update().get(pk=image.pk)
        source = locked.status
        if source not in transition.sources:
            raise InvalidInput(
                "review_transition_invalid",
                f"An image that is {source} cannot be given the decision '{decision}'.",
                details={"status": source, "decision": decision},
            )
        locked.status = transition.target
        fields = ["status"]
        if transition.target == Status.ACTIVE:
            locked.disputed_at = None
            locked.dispute_reason = ""
            fields += ["disputed_at", "dispute_reason"]
        locked.save(update_fields=fields)
        now = timezone.now()
        record = ReviewDecision.objects.create(
            image=locked,
            decision=decision,
            from_status=source,
            to_status=transition.target,
            reviewer=reviewer,
            reason=cleaned,
            created_at=now,
        )
        audit_event_record(
            action=AuditEvent.Action.REVIEW_DECIDED,
            actor=f"staff:{reviewer.pk}",
            subject=f"image:{locked.pk}",
            details={
                "decision": decision,
                "from": source,
                "to": transition.target,
                "reason": cleaned,
            },
        )
        kind = transition.change.get(source)
        if kind is not None:
            changes_append(image_ids=[locked.pk], kind=kind)
    image.refresh_from_db()
    logger.info(
        "review decision %s on image %s: %s -> %s", decision, image.pk, source, image.status
    )
    return record


def image_suspend(*, image: RegisteredImage, reviewer: Any, reason: str) -> ReviewDecision:
    """Stop a disputed image matching; partners receive a removal (see image_review_decide)."""
    return image_review_decide(
        image=image, decision=Decision.SUSPEND, reviewer=reviewer, reason=reason
    )


def image_reinstate(*, image: RegisteredImage, reviewer: Any, reason: str) -> ReviewDecision:
    """Return a suspended or disputed image to active (see image_review_decide)."""
    return image_review_decide(
        image=image, decision=Decision.REINSTATE, reviewer=reviewer, reason=reason
    )


def image_dispute_dismiss(*, image: RegisteredImage, reviewer: Any, reason: str) -> ReviewDecision:
    """Close a dispute: the image is active again (see image_review_decide)."""
    return image_review_decide(
        image=image, decision=Decision.DISMISS, reviewer=reviewer, reason=reason
    )


def image_submission_accept(
    *, image: RegisteredImage, reviewer: Any, reason: str
) -> ReviewDecision:
    """Accept a partner's submitted hash: it matches and enters the feeds."""
    return image_review_decide(
        image=image, decision=Decision.ACCEPT, reviewer=reviewer, reason=reason
    )


def image_submission_reject(
    *, image: RegisteredImage, reviewer: Any, reason: str
) -> ReviewDecision:
    """Reject a partner's submitted hash: it never matches."""
    return image_review_decide(
        image=image, decision=Decision.REJECT, reviewer=reviewer, reason=reason
    )


# --- Entering the queue ----------------------------------------------------------------------


def images_dispute(
    *, image_ids: Collection[int], reason: str, details: dict[int, dict[str, int]] | None = None
) -> list[int]:
    """Mark the active images among ``image_ids`` disputed, for ``reason``; return their ids.

    They keep matching: match results show ``disputed`` from this commit on (the match path
    reads each candidate's status from the database). One ``image.disputed`` audit event per
    image, with ``details`` (counts only). No change is appended: matchability is unchanged,
    and the feeds show each image's present status when they serve it.
    """
    if not image_ids:
        return []
    with transaction.atomic():
        ids = list(
            RegisteredImage.objects.select_for_update()
            .filter(pk__in=list(image_ids), status=Status.ACTIVE)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if not ids:
            return []
        RegisteredImage.objects.filter(pk__in=ids).update(
            status=Status.DISPUTED, disputed_at=timezone.now(), dispute_reason=reason
        )
        for image_id in ids:
            audit_event_record(
                action=AuditEvent.Action.IMAGE_DISPUTED,
                actor="system",
                subject=f"image:{image_id}",
                details={"reason": reason, **((details or {}).get(image_id, {}))},
            )
    logger.info("images disputed (%s): %d", reason, len(ids))
    return ids


def not_blocked_partner_counts(image_ids: Collection[int]) -> dict[int, int]:
    """How many distinct partners reported ``not_blocked`` for each of ``image_ids``."""
    rows = (
        Feedback.objects.filter(image_id__in=list(image_ids), verdict=Feedback.Verdict.NOT_BLOCKED)
        .values("image_id")
        .annotate(partners=Count("partner_id", distinct=True))
        .values_list("image_id", "partners")
    )
    return dict(rows)


def images_dispute_on_feedback(*, image_ids: Collection[int]) -> list[int]:
    """Dispute the images among ``image_ids`` that REVIEW_DISPUTE_PARTNERS or more distinct
    partners reported ``not_blocked``; called after such feedback is recorded."""
    counts = not_blocked_partner_counts(image_ids)
    reported = {
        image_id: {"partners_not_blocked": partners}
        for image_id, partners in counts.items()
        if partners >= settings.REVIEW_DISPUTE_PARTNERS
    }
    return images_dispute(
        image_ids=list(reported),
        reason=RegisteredImage.DisputeReason.PARTNER_REPORTS,
        details=reported,
    )


def match_spike_threshold(counts: Collection[int]) -> float:
    """The 24-hour count above which an image is disputed: the floor, or the multiple of the
    median count of the images that matched, whichever is higher."""
    typical = statistics.median(counts) if counts else 1
    return float(max(settings.REVIEW_SPIKE_FLOOR, settings.REVIEW_SPIKE_MULTIPLE * typical))


def images_dispute_on_match_spikes(*, moment: float | None = None) -> list[int]:
    """Dispute the active images whose 24-hour match count is far above the usual (see the
    module's docstring for the rule); return their ids."""
    counts = image_match_counts(moment=moment)
    if not counts:
        return []
    threshold = match_spike_threshold(list(counts.values()))
    spiking = {
        image_id: {"matches_24h": count, "threshold": int(threshold)}
        for image_id, count in counts.items()
        if count > threshold
    }
    return images_dispute(
        image_ids=list(spiking),
        reason=RegisteredImage.DisputeReason.MATCH_SPIKE,
        details=spiking,
    )


def review_queue_since(image: RegisteredImage) -> dt.datetime:
    """When ``image`` entered the review queue (its dispute, or its submission)."""
    return image.disputed_at or image.created_at


# A partner's submission carries no PDQ quality; the hash passed the bit-count checks of
# registry.pdq, and a reviewer accepts or refuses it before it matches anything.
PARTNER_SUBMISSION_QUALITY = 100


@transaction.atomic
def image_submit_by_partner(*, partner_id: int, hashes: Sequence[bytes]) -> list[RegisteredImage]:
    """Record hashes a partner submitted, each as one image awaiting review.

    Each new image has no case (never a person's), ``submitted_by_partner=partner_id``, status
    ``received``, scope ``intimate`` and one ``original`` hash. No change is appended: the image
    is in no feed and matches nothing until a reviewer accepts it. A hash this partner already
    submitted is not recorded twice. Appends one ``partner.hashes_submitted`` audit event with
    the counts. Returns the images, new or already there, in the order of ``hashes``. Raises
    InvalidHash (``hash_allow_listed``, ``index`` the first offender) and stores nothing when a
    hash is near an allow-listed one.
    """
    allowlist.hashes_check(hashes)  # Raises InvalidHash(hash_allow_listed); nothing stored.
    unique = list(dict.fromkeys(hashes))
    existing = {
        bytes(value): image_id
        for value, image_id in ImageHash.objects.filter(
            variant=ImageHash.Variant.ORIGINAL,
            value__in=unique,
            image__submitted_by_partner_id=partner_id,
        ).values_list("value", "image_id")
    }
    fresh = [value for value in unique if value not in existing]
    now = timezone.now()
    created = RegisteredImage.objects.bulk_create(
        [
            RegisteredImage(
                case=None,
                submitted_by_partner_id=partner_id,
                scope=ConsentRecord.Scope.INTIMATE,
                minor_depicted=False,
                quality=PARTNER_SUBMISSION_QUALITY,
                status=RegisteredImage.Status.RECEIVED,
                created_at=now,
            )
            for _ in fresh
        ]
    )
    ImageHash.objects.bulk_create(
        [
            ImageHash(image=row, variant=ImageHash.Variant.ORIGINAL, value=value)
            for row, value in zip(created, fresh, strict=True)
        ]
    )
    existing.update({value: row.pk for row, value in zip(created, fresh, strict=True)})
    audit_event_record(
        action=AuditEvent.Action.PARTNER_HASHES_SUBMITTED,
        actor=f"partner:{partner_id}",
        subject=f"partner:{partner_id}",
        details={"hashes": len(hashes), "new_images": len(created)},
    )
    images = RegisteredImage.objects.in_bulk([existing[value] for value in unique])
    return [images[existing[value]] for value in hashes]
