"""Reads of the registry's domain that cross models: case summaries, matchable hashes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from registry.models import Case, RegisteredImage


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


def case_summary(*, case: Case) -> CaseSummary:
    """Return the person-facing summary of ``case``: status, dates, scope and photo counts."""
    images = RegisteredImage.objects.filter(case=case)
    return CaseSummary(
        reference=case.reference,
        status=case.status,
        scope=case.consent.scope,
        created_at=case.created_at,
        withdrawn_at=case.withdrawn_at,
        images=images.count(),
        active_images=images.filter(status=RegisteredImage.Status.ACTIVE).count(),
    )
