"""Partner keys: shown once, stored as a peppered digest, scoped, revocable, expiring."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from registry.exceptions import InvalidInput
from registry.keys import key_digest, parse_key
from registry.models import AuditEvent, Partner, PartnerKey
from registry.selectors.partners import partner_key_authenticate
from registry.services.partners import partner_create, partner_key_issue, partner_key_revoke
from tests.conftest import PartnerPersona

pytestmark = pytest.mark.django_db


def test_partner_create_command_prints_the_key_on_its_last_line() -> None:
    out = io.StringIO()
    call_command("partner_create", "Example Social", "--scopes", "match,sync", stdout=out)
    raw = out.getvalue().strip().splitlines()[-1]
    key = partner_key_authenticate(raw)
    assert key is not None
    assert key.partner.name == "Example Social"
    assert key.scopes == ["match", "sync"]


def test_partner_create_command_with_if_absent_prints_no_second_key() -> None:
    call_command("partner_create", "demo", stdout=io.StringIO())
    out = io.StringIO()
    call_command("partner_create", "demo", "--if-absent", stdout=out)
    assert "exists already" in out.getvalue()
    assert PartnerKey.objects.filter(partner__name="demo").count() == 1


def test_partner_create_command_refuses_unknown_scopes_and_creates_nothing() -> None:
    with pytest.raises(CommandError, match="Scopes are"):
        call_command("partner_create", "Typo Inc", "--scopes", "match,synk", stdout=io.StringIO())
    assert not Partner.objects.filter(name="Typo Inc").exists()


def test_only_a_peppered_digest_of_the_key_is_stored(partner_a: PartnerPersona) -> None:
    stored = PartnerKey.objects.get(pk=partner_a.key.pk)
    assert partner_a.raw_key.split("_")[2] not in stored.digest
    assert stored.digest == key_digest(partner_a.raw_key, "test-only-pepper")
    assert stored.digest != key_digest(partner_a.raw_key, "another-pepper")


def test_key_has_a_visible_prefix_and_lookup_id(partner_a: PartnerPersona) -> None:
    parsed = parse_key(partner_a.raw_key)
    assert parsed is not None
    assert partner_a.raw_key.startswith("rmp_")
    assert parsed.lookup_id == partner_a.key.lookup_id


def test_authenticate_refuses_a_tampered_or_malformed_key(partner_a: PartnerPersona) -> None:
    tampered = partner_a.raw_key[:-1] + ("a" if partner_a.raw_key[-1] != "a" else "b")
    assert partner_key_authenticate(partner_a.raw_key) == partner_a.key
    assert partner_key_authenticate(tampered) is None
    assert partner_key_authenticate("rmp_short") is None
    assert partner_key_authenticate("") is None


def test_revoked_key_fails_on_the_next_check(partner_a: PartnerPersona) -> None:
    assert partner_key_authenticate(partner_a.raw_key) is not None
    assert partner_key_revoke(key=partner_a.key) is True
    assert partner_key_authenticate(partner_a.raw_key) is None
    assert partner_key_revoke(key=partner_a.key) is False
    assert AuditEvent.objects.filter(action="partner.key_revoked").count() == 1


def test_revoked_partner_cannot_authenticate(revoked_partner: PartnerPersona) -> None:
    assert partner_key_authenticate(revoked_partner.raw_key) is None


def test_expired_key_fails(partner_a: PartnerPersona) -> None:
    issued = partner_key_issue(
        partner=partner_a.partner,
        scopes=["match"],
        expires_at=timezone.now() + dt.timedelta(hours=1),
    )
    assert partner_key_authenticate(issued.raw) is not None
    PartnerKey.objects.filter(pk=issued.key.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert partner_key_authenticate(issued.raw) is None


def test_a_partner_holds_at_most_two_usable_keys_to_rotate(partner_a: PartnerPersona) -> None:
    second = partner_key_issue(partner=partner_a.partner, scopes=["match"])
    with pytest.raises(InvalidInput) as raised:
        partner_key_issue(partner=partner_a.partner, scopes=["match"])
    assert raised.value.code == "too_many_keys"
    partner_key_revoke(key=partner_a.key)
    third = partner_key_issue(partner=partner_a.partner, scopes=["match"])
    assert partner_key_authenticate(second.raw) is not None
    assert partner_key_authenticate(third.raw) is not None


def test_a_deactivated_partner_cannot_authenticate(partner_a: PartnerPersona) -> None:
    Partner.objects.filter(pk=partner_a.partner.pk).update(is_active=False)
    assert partner_key_authenticate(partner_a.raw_key) is None


def test_partner_names_are_unique() -> None:
    partner_create(name="Unique")
    with pytest.raises(InvalidInput) as raised:
        partner_create(name="Unique")
    assert raised.value.code == "partner_name_taken"
