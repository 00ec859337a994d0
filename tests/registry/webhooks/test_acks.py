"""Withdrawal acknowledgements, and the admin's view of partners' webhooks."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from registry.match_ids import match_id_encode
from registry.models import (
    Change,
    Partner,
    PartnerKey,
    RegisteredImage,
    WebhookDelivery,
    WithdrawalAck,
)
from registry.services.cases import case_withdraw
from registry.services.distribution import withdrawal_ack_record
from registry.services.partners import partner_key_issue
from registry.services.webhooks import (
    webhook_deliveries_dispatch,
    webhook_deliveries_sweep,
)
from registry.webhooks import outbox
from registry.webhooks.sender import (
    payload_body,
    sign,
)
from tests.conftest import PartnerPersona, staff_login
from tests.factories import RegisteredCase, register_case
from tests.registry.webhooks.conftest import SECRET

# --- Withdrawal acknowledgements -------------------------------------------------------------


def _ack(persona_headers: dict[str, str], body: Any) -> Any:
    return Client().post(
        "/api/v1/withdrawals/ack",
        json.dumps(body),
        content_type="application/json",
        headers=persona_headers,
    )


@pytest.fixture
def withdrawn_case(db: None) -> RegisteredCase:
    registered = register_case(images=2)
    case_withdraw(case=registered.case)
    return registered


def _ids(registered: RegisteredCase, partner: Partner) -> list[str]:
    return [
        match_id_encode(image_id=pk, partner_id=partner.pk)
        for pk in registered.case.images.order_by("pk").values_list("pk", flat=True)
    ]


@pytest.mark.django_db
def test_a_partner_acknowledges_withdrawals_once(
    partner_a: PartnerPersona, withdrawn_case: RegisteredCase, person: RegisteredCase
) -> None:
    withdrawn_ids = _ids(withdrawn_case, partner_a.partner)
    active_id = _ids(person, partner_a.partner)[0]
    response = _ack(partner_a.auth, {"ids": [*withdrawn_ids, active_id, "m_nonsense"]})
    assert response.status_code == 200
    assert response.json() == {
        "acknowledged": withdrawn_ids,
        "unknown": ["m_nonsense"],
        "not_withdrawn": [active_id],
    }
    acks = list(WithdrawalAck.objects.order_by("image_id"))
    assert [(ack.partner_id, ack.image_id) for ack in acks] == [
        (partner_a.partner.pk, pk)
        for pk in withdrawn_case.case.images.order_by("pk").values_list("pk", flat=True)
    ]
    first_times = [ack.acknowledged_at for ack in acks]

    again = _ack(partner_a.auth, {"ids": withdrawn_ids[:1]})
    assert again.json()["acknowledged"] == withdrawn_ids[:1]
    assert [ack.acknowledged_at for ack in WithdrawalAck.objects.order_by("image_id")] == (
        first_times
    )


@pytest.mark.django_db
def test_an_id_issued_to_another_partner_is_unknown(
    partner_a: PartnerPersona, partner_b: PartnerPersona, withdrawn_case: RegisteredCase
) -> None:
    ids_of_a = _ids(withdrawn_case, partner_a.partner)
    response = _ack(partner_b.auth, {"ids": ids_of_a})
    assert response.json() == {"acknowledged": [], "unknown": ids_of_a, "not_withdrawn": []}
    assert not WithdrawalAck.objects.exists()


@pytest.mark.parametrize(
    ("caller", "status", "code"),
    [
        ("no key", 401, "key_required"),
        ("revoked key", 401, "key_invalid"),
        ("key without sync scope", 403, "scope_missing"),
    ],
)
@pytest.mark.django_db
def test_acknowledgement_authorization_matrix(
    partner_a: PartnerPersona,
    revoked_partner: PartnerPersona,
    withdrawn_case: RegisteredCase,
    caller: str,
    status: int,
    code: str,
) -> None:
    headers = {
        "no key": {},
        "revoked key": revoked_partner.auth,
        "key without sync scope": {},
    }[caller]
    if caller == "key without sync scope":
        PartnerKey.objects.filter(pk=partner_a.key.pk).update(revoked_at=timezone.now())
        issued = partner_key_issue(partner=partner_a.partner, scopes=["match", "feedback"])
        headers = {"Authorization": f"Bearer {issued.raw}"}
    response = _ack(headers, {"ids": _ids(withdrawn_case, partner_a.partner)})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert not WithdrawalAck.objects.exists()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "invalid_request"),
        ({"ids": []}, 400, "invalid_request"),
        ({"ids": "m_x"}, 400, "invalid_request"),
        ({"ids": [7]}, 200, None),  # a number is read as the text "7": an unknown id
        ({"ids": ["m_" + "a" * 26] * 1001}, 413, "too_many_ids"),
        ([1, 2], 400, "invalid_request"),
    ],
)
@pytest.mark.django_db
def test_malformed_acknowledgements_are_refused_never_a_500(
    partner_a: PartnerPersona, body: Any, status: int, code: str | None
) -> None:
    response = _ack(partner_a.auth, body)
    assert response.status_code == status
    if code:
        assert response.json()["error"]["code"] == code
    assert not WithdrawalAck.objects.exists()


@pytest.mark.django_db
def test_acknowledgement_service_reports_each_id(
    partner_a: PartnerPersona, withdrawn_case: RegisteredCase
) -> None:
    ids = _ids(withdrawn_case, partner_a.partner)
    result = withdrawal_ack_record(partner=partner_a.partner, ids=[ids[0], ids[0], "x"])
    assert (result.acknowledged, result.unknown, result.not_withdrawn) == ([ids[0]], ["x"], [])


# --- Admin -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_shows_the_delivery_log_read_only_and_who_confirmed_each_withdrawal(
    hooked: PartnerPersona, withdrawn_case: RegisteredCase
) -> None:
    webhook_deliveries_dispatch()
    delivery = WebhookDelivery.objects.first()
    assert delivery is not None
    image = withdrawn_case.case.images.order_by("pk").first()
    assert image is not None
    withdrawal_ack_record(
        partner=hooked.partner,
        ids=[match_id_encode(image_id=image.pk, partner_id=hooked.partner.pk)],
    )
    admin = User.objects.create_superuser("admin", password="a long admin password")
    client = staff_login(Client(), admin)

    log = client.get("/admin/registry/webhookdelivery/")
    assert log.status_code == 200
    assert delivery.webhook_id in log.content.decode()
    detail = client.get(f"/admin/registry/webhookdelivery/{delivery.pk}/change/")
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()  # nothing to save: read-only

    page = client.get(f"/admin/registry/registeredimage/{image.pk}/change/").content.decode()
    assert "partner confirmations of the withdrawal" in page.lower()
    acks = client.get("/admin/registry/withdrawalack/").content.decode()
    assert hooked.partner.name in acks
    assert Change.objects.filter(image=image, kind="withdrawn").exists()
    assert RegisteredImage.objects.get(pk=image.pk).status == "withdrawn"


@pytest.mark.django_db(transaction=True)
def test_a_claimed_delivery_does_not_block_the_partners_other_deliveries(
    hooked: PartnerPersona,
) -> None:
    register_case(images=2)  # committed: sent at once, inline (no broker in tests)
    WebhookDelivery.objects.update(status="pending", next_attempt_at=timezone.now())
    first, second = sorted(webhook_deliveries_sweep())
    claimed = threading.Event()
    release = threading.Event()

    def hold_first() -> None:
        from django.db import connection, transaction

        try:
            with transaction.atomic():
                locked = (
                    WebhookDelivery.objects.select_for_update()
                    .select_related("partner")
                    .get(pk=first)
                )
                assert locked.partner_id == hooked.partner.pk
                claimed.set()
                release.wait(5)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_first)
    holder.start()
    try:
        assert claimed.wait(5)
        assert outbox.delivery_claim(first) is None  # held elsewhere: skipped
        assert outbox.delivery_claim(second) is not None  # same partner, not blocked
    finally:
        release.set()
        holder.join()


def test_the_verification_snippet_of_the_partner_guide_accepts_ours_and_refuses_a_forgery() -> None:
    guide = (Path(__file__).resolve().parents[3] / "docs" / "partners.md").read_text()
    webhooks = guide[guide.index("webhooks, and confirming withdrawals") :]
    (snippet,) = re.findall(r"```py\n(.*?)```", webhooks, flags=re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # noqa: S102 - our own documentation
    verify = namespace["verify"]

    body = payload_body({"type": "image.added", "data": {"id": "m_x"}})
    timestamp = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(
            secret=SECRET, webhook_id="msg_1", timestamp=timestamp, body=body
        ),
    }
    assert verify(SECRET, headers, body) is True
    assert verify(SECRET, headers, body.replace(b"m_x", b"m_y")) is False
    assert verify(SECRET, {**headers, "webhook-id": "msg_2"}, body) is False
    assert verify("whsec_" + base64.b64encode(b"another").decode(), headers, body) is False
    stale = timestamp - 600
    old = {**headers, "webhook-timestamp": str(stale)}
    old["webhook-signature"] = sign(secret=SECRET, webhook_id="msg_1", timestamp=stale, body=body)
    assert verify(SECRET, old, body) is False


@pytest.mark.parametrize(
    ("url", "secret", "error"),
    [
        # Literal addresses: saving resolves a name, and tests resolve none.
        ("http://93.184.215.14/rempart", SECRET, "A webhook address must be https."),
        ("https://93.184.215.14/rempart", "", "A webhook needs a secret"),
        ("https://93.184.215.14/rempart", "whsec_not base64!", "is base64"),
        ("https://93.184.215.14/rempart", SECRET, None),
    ],
)
@pytest.mark.django_db
def test_the_admin_refuses_a_webhook_it_could_never_call(
    url: str, secret: str, error: str | None, settings: SettingsWrapper
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    admin = User.objects.create_superuser("admin", password="a long admin password")
    client = staff_login(Client(), admin)
    response = client.post(
        "/admin/registry/partner/add/",
        {
            "name": "Hooked Platform",
            "is_active": "on",
            "sync_scopes": ["intimate"],
            "webhook_url": url,
            "webhook_secret": secret,
            "keys-TOTAL_FORMS": "0",
            "keys-INITIAL_FORMS": "0",
        },
    )
    if error is None:
        assert response.status_code == 302
        partner = Partner.objects.get(name="Hooked Platform")
        assert (partner.webhook_url, partner.webhook_secret) == (url, secret)
        # Write-only: the partner's page never shows the secret again.
        page = client.get(f"/admin/registry/partner/{partner.pk}/change/").content.decode()
        assert secret not in page
        assert secret.removeprefix("whsec_") not in page
    else:
        assert error in response.content.decode()
        assert not Partner.objects.filter(name="Hooked Platform").exists()
