"""Writes concerning partners: creating them, issuing, revoking and checking their keys."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from registry.exceptions import InvalidInput
from registry.keys import key_digest, new_key
from registry.models import (
    AuditEvent,
    Partner,
    PartnerKey,
)
from registry.services.audit import audit_event_record

# Two usable keys at once let a partner rotate: issue the new one, deploy it, revoke the old.
MAX_USABLE_KEYS = 2

logger = logging.getLogger(__name__)
ModelT = TypeVar("ModelT", bound=Model)


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
        return partner_save(partner=Partner(name=name), changed=(), actor=actor)


def partner_save(*, partner: Partner, changed: Collection[str], actor: str) -> Partner:
    """Save ``partner``, new or edited (in the admin), with its audit event.

    A new partner is recorded as created; an edited one as updated, naming the fields in
    ``changed`` (names only: the webhook secret's value is never in the record), or not at all
    when nothing changed.
    """
    creating = partner._state.adding
    with transaction.atomic():
        partner.save()
        if creating:
            audit_event_record(
                action=AuditEvent.Action.PARTNER_CREATED,
                actor=actor,
                subject=f"partner:{partner.pk}",
            )
        elif changed:
            audit_event_record(
                action=AuditEvent.Action.PARTNER_UPDATED,
                actor=actor,
                subject=f"partner:{partner.pk}",
                details={"fields": sorted(changed)},
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


# --- Webhooks and withdrawal acknowledgements ----------------------------------------------


# --- Distribution: the sync feeds -----------------------------------------------------------


# After a rotation the old key keeps working this long, for the partner to deploy the new one.
ROTATION_GRACE = dt.timedelta(days=7)


@transaction.atomic
def partner_key_rotate(*, key: PartnerKey, actor: str) -> tuple[KeyIssued, dt.datetime]:
    """Issue ``key``'s successor (same scopes, same lifetime) and make ``key`` expire after
    ROTATION_GRACE (sooner if it already expires sooner). Returns the new key, shown once, and
    the old key's expiry. Raises InvalidInput if ``key`` is not usable, or if the partner
    already holds the most usable keys allowed (revoke one first)."""
    now = timezone.now()
    old = PartnerKey.objects.select_for_update().select_related("partner").get(pk=key.pk)
    if not old.is_usable(now=now):
        raise InvalidInput("key_not_usable", "Only a usable key can be rotated.")
    lifetime = old.expires_at - old.created_at if old.expires_at else None
    issued = partner_key_issue(
        partner=old.partner,
        scopes=old.scopes,
        expires_at=now + lifetime if lifetime else None,
        actor=actor,
    )
    grace_end = now + ROTATION_GRACE
    if old.expires_at is None or old.expires_at > grace_end:
        old.expires_at = grace_end
        old.save(update_fields=["expires_at"])
    assert old.expires_at is not None
    audit_event_record(
        action=AuditEvent.Action.PARTNER_KEY_ROTATED,
        actor=actor,
        subject=f"key:{old.lookup_id}",
        details={
            "partner": old.partner_id,
            "replaced_by": issued.key.lookup_id,
            "old_key_expires_at": old.expires_at.isoformat(),
        },
    )
    return issued, old.expires_at
