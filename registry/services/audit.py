"""The audit record's hash chain: each event's digest covers its content and the digest before.

Appends are serialised by a transaction-level lock held until commit, so the chain follows the
order of ids. ``chain_verify`` recomputes every digest and names the first event that does not
fit: one altered in place, one removed, or one inserted outside the application.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from registry.models import AuditEvent

# Any constant will do: it names the lock that orders appends to the audit chain.
_AUDIT_CHAIN_LOCK = 0x41554454  # "AUDT"
GENESIS = "0" * 64


def event_digest(*, previous_digest: str, created_at: Any, action: str, actor: str,
                 subject: str, details: dict[str, Any]) -> str:  # fmt: skip
    """SHA-256 over a canonical JSON of the event's content and the previous digest."""
    canonical = json.dumps(
        {
            "previous": previous_digest,
            "created_at": created_at.isoformat(),
            "action": str(action),
            "actor": actor,
            "subject": subject,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def chain_head() -> str:
    """Lock the chain until this transaction ends and return the digest of its last event."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_CHAIN_LOCK])
    last = AuditEvent.objects.order_by("-id").values_list("digest", flat=True).first()
    return last or GENESIS


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first event whose digest or link does not fit, and why."""

    event_id: int
    reason: str


def chain_verify(events: Iterable[AuditEvent] | None = None) -> tuple[int, ChainBreak | None]:
    """Check the whole chain in id order; return how many events fit and the first break."""
    rows = events if events is not None else AuditEvent.objects.order_by("id").iterator()
    previous = GENESIS
    checked = 0
    for event in rows:
        if event.previous_digest != previous:
            return checked, ChainBreak(event.pk, "its link to the previous event does not match")
        expected = event_digest(
            previous_digest=event.previous_digest,
            created_at=event.created_at,
            action=event.action,
            actor=event.actor,
            subject=event.subject,
            details=event.details,
        )
        if event.digest != expected:
            return checked, ChainBreak(event.pk, "its content does not match its digest")
        previous = event.digest
        checked += 1
    return checked, None


def audit_event_record(
    *, action: str, actor: str, subject: str, details: dict[str, Any] | None = None
) -> AuditEvent:
    """Append one event to the audit record (inside the caller's transaction).

    ``details`` must hold counts, scopes and identifiers only: never a hash, a secret or an IP
    address.
    """
    content: dict[str, Any] = {
        "created_at": timezone.now(),
        "action": action,
        "actor": actor,
        "subject": subject,
        "details": details or {},
    }
    with transaction.atomic():
        previous = chain_head()  # Locks the chain until the outermost transaction ends.
        return AuditEvent.objects.create(
            **content,
            previous_digest=previous,
            digest=event_digest(previous_digest=previous, **content),
        )
