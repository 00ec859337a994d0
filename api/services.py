"""Writes concerning partners: creating them, issuing, revoking and checking their keys."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from api.keys import digests_equal, key_digest, new_key, parse_key
from api.models import MatchCall, Partner, PartnerKey
from api.throttling import limit_partner_hashes
from registry.exceptions import InvalidInput
from registry.models import AuditEvent
from registry.selectors import ImageMatch, hash_match
from registry.services import audit_event_record

# Two usable keys at once let a partner rotate: issue the new one, deploy it, revoke the old.
MAX_USABLE_KEYS = 2


@dataclass(frozen=True, slots=True)
class KeyIssued:
    """A new key row and the key text, shown to the partner this once."""

    key: PartnerKey
    raw: str


def _check_scopes(scopes: Iterable[str]) -> list[str]:
    chosen = sorted(set(scopes))
    unknown = [scope for scope in chosen if scope not in PartnerKey.Scope.values]
    if unknown or not chosen:
        raise InvalidInput(
            "scopes_invalid",
            f"Scopes are one or more of: {', '.join(PartnerKey.Scope.values)}.",
            details={"unknown": unknown},
        )
    return chosen


def partner_create(*, name: str, actor: str = "system") -> Partner:
    """Create a partner (no key yet). Raises InvalidInput for an empty or taken name."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("partner_name_invalid", "A partner name is 1 to 100 characters.")
    with transaction.atomic():
        if Partner.objects.filter(name=name).exists():
            raise InvalidInput("partner_name_taken", "A partner with this name exists.")
        partner = Partner.objects.create(name=name)
        audit_event_record(
            action=AuditEvent.Action.PARTNER_CREATED, actor=actor, subject=f"partner:{partner.pk}"
        )
    return partner


def partner_key_issue(
    *,
    partner: Partner,
    scopes: Iterable[str],
    expires_at: dt.datetime | None = None,
    actor: str = "system",
) -> KeyIssued:
    """Issue a new key for ``partner`` with ``scopes``; return it with its text, shown once.

    Raises InvalidInput for unknown scopes, a past expiry, or when the partner already holds
    MAX_USABLE_KEYS usable keys (revoke one first).
    """
    chosen = _check_scopes(scopes)
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("expiry_in_past", "A key's expiry must be in the future.")
    with transaction.atomic():
        Partner.objects.select_for_update().get(pk=partner.pk)
        if PartnerKey.objects.usable().filter(partner=partner).count() >= MAX_USABLE_KEYS:
            raise InvalidInput(
                "too_many_keys",
                f"A partner holds at most {MAX_USABLE_KEYS} usable keys: revoke one first.",
            )
        parsed = new_key()
        key = PartnerKey.objects.create(
            partner=partner,
            lookup_id=parsed.lookup_id,
            digest=key_digest(parsed.raw, settings.KEY_PEPPER),
            scopes=chosen,
            expires_at=expires_at,
        )
        audit_event_record(
            action=AuditEvent.Action.PARTNER_KEY_ISSUED,
            actor=actor,
            subject=f"key:{key.lookup_id}",
            details={"partner": partner.pk, "scopes": chosen},
        )
    return KeyIssued(key=key, raw=parsed.raw)


def partner_key_revoke(*, key: PartnerKey, actor: str = "system") -> bool:
    """Revoke ``key``: it fails from the very next request. Idempotent; True if it changed."""
    with transaction.atomic():
        updated = PartnerKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            audit_event_record(
                action=AuditEvent.Action.PARTNER_KEY_REVOKED,
                actor=actor,
                subject=f"key:{key.lookup_id}",
                details={"partner": key.partner_id},
            )
    key.refresh_from_db()
    return bool(updated)


def partner_key_authenticate(raw: str) -> PartnerKey | None:
    """Return the usable key whose text is ``raw``, or None. One indexed read and one HMAC."""
    parsed = parse_key(raw)
    if parsed is None:
        return None
    key = (
        PartnerKey.objects.usable()
        .select_related("partner")
        .filter(lookup_id=parsed.lookup_id)
        .first()
    )
    if key is None or not digests_equal(key.digest, key_digest(parsed.raw, settings.KEY_PEPPER)):
        return None
    return key


def partner_match(
    *, key: PartnerKey, hashes: Sequence[bytes], purpose: str, max_distance: int
) -> list[list[ImageMatch]]:
    """Match ``hashes`` for the partner holding ``key`` and record the call.

    Counts each hash against the partner's rate limit (raises RateLimited), matches through
    registry.selectors.hash_match, and writes one MatchCall row: partner, time, counts and
    purpose, never the hashes.
    """
    limit_partner_hashes(key.partner, len(hashes))
    results = hash_match(hashes, max_distance=max_distance)
    MatchCall.objects.create(
        partner_id=key.partner_id,
        key=key,
        purpose=purpose,
        hashes=len(hashes),
        matched_hashes=sum(1 for matches in results if matches),
        matches=sum(len(matches) for matches in results),
    )
    return results
