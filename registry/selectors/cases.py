"""Reads of cases: what a person sees of their case, and what partners did with it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from registry.models import Case, Disclosure, Feedback, RegisteredImage


@dataclass(frozen=True, slots=True)
class CaseSummary:
    """What a person may see of their own case (never its hashes)."""

    reference: str
    status: str
    scope: str
    created_at: dt.datetime
    withdrawn_at: dt.datetime | None
    images: int
    active_images: int
    # Of ``images``, how many are videos (registry.videos).
    videos: int = 0
    # Distinct partners that received the case's hashes, and that confirmed blocking a match.
    partners_received: int = 0
    partners_blocked: int = 0

    @property
    def photos(self) -> int:
        return self.images - self.videos


def case_summary(*, case: Case) -> CaseSummary:
    """Return the person-facing summary of ``case``: status, dates, scope, photo and video
    counts."""
    images = RegisteredImage.objects.filter(case=case)
    partners = case_partner_counts(case=case)
    return CaseSummary(
        reference=case.reference,
        status=case.status,
        scope=case.consent.scope,
        created_at=case.created_at,
        withdrawn_at=case.withdrawn_at,
        images=images.count(),
        # A disputed photo still matches, so it is still protected.
        active_images=images.filter(status__in=RegisteredImage.MATCHABLE).count(),
        videos=images.filter(kind=RegisteredImage.Kind.VIDEO).count(),
        partners_received=partners.received,
        partners_blocked=partners.blocked,
    )


# --- Distribution to partners: the change feed, disclosures, feedback -----------------------


@dataclass(frozen=True, slots=True)
class CasePartnerCounts:
    """How many distinct partners received a case's hashes, and how many confirmed blocking."""

    received: int
    blocked: int


def case_partner_counts(*, case: Case) -> CasePartnerCounts:
    """Count the distinct partners in the disclosure ledger for ``case``'s images, and those
    that reported a ``blocked`` verdict on one of them. Never says which partners."""
    received = Disclosure.objects.filter(image__case=case).values("partner_id").distinct().count()
    blocked = (
        Feedback.objects.filter(image__case=case, verdict=Feedback.Verdict.BLOCKED)
        .values("partner_id")
        .distinct()
        .count()
    )
    return CasePartnerCounts(received=received, blocked=blocked)
