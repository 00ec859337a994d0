"""Partners and their keys in the admin: issue, rotate, revoke, the write-only webhook secret,
each partner's activity, and the audit record of every action."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from registry.models import (
    AuditEvent,
    Disclosure,
    Feedback,
    MatchCall,
    Partner,
    PartnerKey,
    WithdrawalAck,
)
from tests.conftest import PartnerPersona, staff_login
from tests.factories import RegisteredCase

KEY = re.compile(r"rmp_[0-9a-z]{10}_[0-9a-z]{40}")
NOW = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)


def _feed(raw_key: str) -> int:
    """The status of a sync feed request with ``raw_key`` (any key with the sync scope)."""
    return (
        Client()
        .get("/api/v1/hashes/changes", headers={"Authorization": f"Bearer {raw_key}"})
        .status_code
    )


def _shown_key(html: str) -> str:
    (raw,) = set(KEY.findall(html))
    return str(raw)


@pytest.fixture
def admin_client(superuser: User) -> Client:
    return staff_login(Client(), superuser)


@pytest.fixture
def partner() -> Partner:
    return Partner.objects.create(name="Platform C")


def _issue(client: Client, partner: Partner, **data: object) -> str:
    response = client.post(
        f"/admin/registry/partner/{partner.pk}/keys/issue/",
        {"scopes": ["match", "sync"], "expires_in_days": "90", **data},
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    return response.content.decode()


def _audit_text() -> str:
    return json.dumps(list(AuditEvent.objects.values("action", "actor", "subject", "details")))


@pytest.mark.django_db
def test_a_key_issued_from_the_admin_is_shown_once_and_works(
    admin_client: Client, superuser: User, partner: Partner
) -> None:
    with time_machine.travel(NOW, tick=False):
        page = _issue(admin_client, partner)
    raw = _shown_key(page)
    key = PartnerKey.objects.get(partner=partner)
    assert raw.split("_")[1] == key.lookup_id
    assert "match, sync" in page
    assert "2027-01-31 09:30 UTC" in page  # the expiry, 90 days on
    assert key.scopes == ["match", "sync"]
    assert key.expires_at == NOW + dt.timedelta(days=90)

    assert _feed(raw) == 200
    again = admin_client.get(f"/admin/registry/partner/{partner.pk}/change/").content.decode()
    assert key.lookup_id in again
    assert raw not in again
    assert raw.split("_")[2] not in again
    event = AuditEvent.objects.get(action="partner.key_issued")
    assert (event.actor, event.subject) == (f"staff:{superuser.pk}", f"key:{key.lookup_id}")
    assert raw.split("_")[2] not in _audit_text()


@pytest.mark.django_db
def test_issuing_refuses_bad_input_with_the_form_again(
    admin_client: Client, partner: Partner
) -> None:
    refused: list[dict[str, object]] = [
        {"scopes": []},
        {"scopes": ["everything"]},
        {"expires_in_days": "0"},
    ]
    for data in refused:
        response = admin_client.post(
            f"/admin/registry/partner/{partner.pk}/keys/issue/",
            {"scopes": ["match"], "expires_in_days": "30", **data},
        )
        assert response.status_code == 400
        assert not KEY.search(response.content.decode())
    assert not PartnerKey.objects.filter(partner=partner).exists()
    assert admin_client.get("/admin/registry/partner/999999/keys/issue/").status_code == 404


@pytest.mark.django_db
def test_rotation_shows_the_new_key_and_the_old_one_expires_after_the_grace_period(
    admin_client: Client, partner_a: PartnerPersona
) -> None:
    partner = partner_a.partner
    with time_machine.travel(NOW, tick=False):
        response = admin_client.post(
            f"/admin/registry/partner/{partner.pk}/keys/{partner_a.key.pk}/rotate/"
        )
        assert response.status_code == 200
        page = response.content.decode()
        new_raw = _shown_key(page)
        assert new_raw != partner_a.raw_key
        old = PartnerKey.objects.get(pk=partner_a.key.pk)
        assert old.expires_at == NOW + dt.timedelta(days=7)
        assert f"{old.lookup_id} it replaces keeps working until 2026-11-09 09:30 UTC" in page
        new = PartnerKey.objects.get(lookup_id=new_raw.split("_")[1])
        assert new.scopes == old.scopes
        assert new.expires_at is None
        assert _feed(partner_a.raw_key) == 200
        assert _feed(new_raw) == 200
    with time_machine.travel(NOW + dt.timedelta(days=7, minutes=1), tick=False):
        assert _feed(partner_a.raw_key) == 401
        assert _feed(new_raw) == 200
    event = AuditEvent.objects.get(action="partner.key_rotated")
    assert event.subject == f"key:{old.lookup_id}"
    assert event.details["replaced_by"] == new.lookup_id
    assert new_raw.split("_")[2] not in _audit_text()


@pytest.mark.django_db
def test_rotation_is_refused_while_the_partner_holds_two_usable_keys(
    admin_client: Client, partner_a: PartnerPersona
) -> None:
    partner = partner_a.partner
    _issue(admin_client, partner)
    response = admin_client.post(
        f"/admin/registry/partner/{partner.pk}/keys/{partner_a.key.pk}/rotate/"
    )
    assert response.status_code == 400
    assert "revoke one first" in response.content.decode()
    assert PartnerKey.objects.filter(partner=partner).count() == 2
    assert PartnerKey.objects.get(pk=partner_a.key.pk).expires_at is None


@pytest.mark.django_db
def test_a_key_revoked_from_the_admin_is_refused_at_once(
    admin_client: Client, superuser: User, partner_a: PartnerPersona
) -> None:
    partner = partner_a.partner
    assert _feed(partner_a.raw_key) == 200
    url = f"/admin/registry/partner/{partner.pk}/keys/{partner_a.key.pk}/revoke/"
    assert admin_client.get(url).status_code == 200  # asks first
    assert PartnerKey.objects.get(pk=partner_a.key.pk).revoked_at is None
    response = admin_client.post(url)
    assert response.status_code == 302
    assert PartnerKey.objects.get(pk=partner_a.key.pk).revoked_at is not None
    assert _feed(partner_a.raw_key) == 401
    event = AuditEvent.objects.get(action="partner.key_revoked")
    assert event.actor == f"staff:{superuser.pk}"
    # A key of another partner is not found under this one.
    other = Partner.objects.create(name="Other")
    assert (
        admin_client.post(
            f"/admin/registry/partner/{other.pk}/keys/{partner_a.key.pk}/revoke/"
        ).status_code
        == 404
    )


def _partner_form(partner: Partner, **data: object) -> dict[str, object]:
    return {
        "name": partner.name,
        "is_active": "on",
        "match_hashes_per_minute": "",
        "sync_scopes": ["intimate"],
        "webhook_url": "https://93.184.215.14/rempart",  # a literal: saving resolves names
        "webhook_secret": "",
        "keys-TOTAL_FORMS": "0",
        "keys-INITIAL_FORMS": "0",
        **data,
    }


@pytest.mark.django_db
def test_a_generated_webhook_secret_is_shown_once_and_never_again(
    admin_client: Client, superuser: User, partner: Partner
) -> None:
    url = f"/admin/registry/partner/{partner.pk}/change/"
    response = admin_client.post(url, _partner_form(partner, generate_webhook_secret="on"))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    partner.refresh_from_db()
    secret = partner.webhook_secret
    assert secret.startswith("whsec_")
    assert secret in response.content.decode()

    page = admin_client.get(url).content.decode()
    assert secret not in page
    assert secret.removeprefix("whsec_") not in page
    assert "set (never shown)" in page
    history = admin_client.get(url + "../history/").content.decode()
    assert secret.removeprefix("whsec_") not in history

    # Saved again with the field left empty, the secret stays as it was.
    response = admin_client.post(url, _partner_form(partner, match_hashes_per_minute="600"))
    assert response.status_code == 302
    partner.refresh_from_db()
    assert (partner.webhook_secret, partner.match_hashes_per_minute) == (secret, 600)

    updates = list(AuditEvent.objects.filter(action="partner.updated").order_by("pk"))
    assert [event.details["fields"] for event in updates] == [
        ["webhook_secret", "webhook_url"],
        ["match_hashes_per_minute"],
    ]
    assert all(event.actor == f"staff:{superuser.pk}" for event in updates)
    assert secret.removeprefix("whsec_") not in _audit_text()


@pytest.mark.django_db
def test_a_partner_created_in_the_admin_is_on_the_audit_record(
    admin_client: Client, superuser: User
) -> None:
    response = admin_client.post(
        "/admin/registry/partner/add/",
        {
            "name": "New Platform",
            "is_active": "on",
            "sync_scopes": ["intimate", "no_sexual_edit"],
            "webhook_url": "",
            "keys-TOTAL_FORMS": "0",
            "keys-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    partner = Partner.objects.get(name="New Platform")
    assert partner.sync_scopes == ["intimate", "no_sexual_edit"]
    event = AuditEvent.objects.get(action="partner.created")
    assert (event.actor, event.subject) == (f"staff:{superuser.pk}", f"partner:{partner.pk}")


@pytest.mark.django_db
def test_the_partner_page_shows_its_activity(
    admin_client: Client,
    partner_a: PartnerPersona,
    partner_b: PartnerPersona,
    person: RegisteredCase,
) -> None:
    partner = partner_a.partner
    image = person.case.images.order_by("pk").first()
    assert image is not None
    now = timezone.now()
    for purpose, hashes, matched in [("publish", 10, 2), ("publish", 5, 0), ("ai_edit", 3, 1)]:
        MatchCall.objects.create(
            partner=partner,
            key=partner_a.key,
            purpose=purpose,
            hashes=hashes,
            matched_hashes=matched,
            matches=matched,
        )
    MatchCall.objects.create(
        partner=partner_b.partner,
        key=partner_b.key,
        purpose="publish",
        hashes=99,
        matched_hashes=50,
        matches=50,
    )
    for verdict in ["blocked", "blocked", "not_blocked"]:
        Feedback.objects.create(partner_id=partner.pk, image=image, verdict=verdict, created_at=now)
    Disclosure.objects.create(
        partner_id=partner.pk,
        image=image,
        first_disclosed_at=now,
        last_disclosed_at=dt.datetime(2026, 11, 1, 8, 15, tzinfo=dt.UTC),
    )
    WithdrawalAck.objects.create(partner_id=partner.pk, image=image, acknowledged_at=now)

    page = admin_client.get(f"/admin/registry/partner/{partner.pk}/change/").content.decode()
    assert "2 calls, 15 hashes, 2 matched" in page  # before publishing
    assert "1 calls, 3 hashes, 1 matched" in page  # before an AI edit
    assert "99 hashes" not in page  # partner B's
    assert re.search(r"Blocked after human review</th><td>2<", page)
    assert re.search(r"Not blocked</th><td>1<", page)
    assert "2026-11-01 08:15 UTC; 1 images received" in page
    assert re.search(r"Withdrawals acknowledged</th><td>1; last", page)
