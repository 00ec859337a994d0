"""Webhooks: signing, target checks, backoff, the outbox, and withdrawal acknowledgements."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import socket
import time
from typing import Any

import pytest
from django.utils import timezone
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks
from pytest_django.fixtures import Settings as SettingsWrapper

from registry.celery import app as celery_app
from registry.match_ids import match_id_encode
from registry.models import (
    Partner,
    WebhookDelivery,
)
from registry.services import changes
from registry.services.cases import case_withdraw
from registry.services.webhooks import (
    webhook_deliveries_dispatch,
    webhook_deliveries_sweep,
    webhook_delivery_send,
)
from registry.webhooks import outbox
from registry.webhooks.sender import (
    TargetRefused,
    address_is_public,
    payload_body,
    sign,
    target_check,
)
from tests.conftest import PartnerPersona
from tests.factories import register_case
from tests.registry.webhooks.conftest import SECRET, Receiver

# The example of the Standard Webhooks specification (and of its reference libraries),
# checked independently with `openssl dgst -sha256 -mac HMAC`.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


# --- Signing ---------------------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_example() -> None:
    signature = sign(
        secret=SPEC_SECRET, webhook_id=SPEC_ID, timestamp=SPEC_TIMESTAMP, body=SPEC_BODY
    )
    assert signature == SPEC_SIGNATURE


def test_a_secret_without_the_whsec_prefix_is_used_as_its_utf8_bytes() -> None:
    expected = hmac.new(b"plain secret", b"msg_1.1700000000.{}", hashlib.sha256).digest()
    signature = sign(secret="plain secret", webhook_id="msg_1", timestamp=1700000000, body=b"{}")
    assert signature == "v1," + base64.b64encode(expected).decode()


def test_the_signature_covers_id_timestamp_and_body() -> None:
    base = {"secret": SPEC_SECRET, "webhook_id": SPEC_ID, "timestamp": SPEC_TIMESTAMP}
    signature = sign(**base, body=SPEC_BODY)  # type: ignore[arg-type]
    assert sign(**{**base, "webhook_id": "msg_other"}, body=SPEC_BODY) != signature  # type: ignore[arg-type]
    assert sign(**{**base, "timestamp": SPEC_TIMESTAMP + 1}, body=SPEC_BODY) != signature  # type: ignore[arg-type]
    assert sign(**base, body=SPEC_BODY + b" ") != signature  # type: ignore[arg-type]


def test_the_body_is_the_same_bytes_on_every_serialisation() -> None:
    payload = {"type": "image.added", "data": {"scope": "intimate", "id": "m_x"}}
    assert payload_body(payload) == payload_body(json.loads(payload_body(payload)))
    assert payload_body(payload) == b'{"data":{"id":"m_x","scope":"intimate"},"type":"image.added"}'


# --- Target checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/hook",  # not https
        "ftp://93.184.215.14/hook",
        "https://127.0.0.1/hook",  # loopback
        "https://localhost/hook",  # a name that resolves to loopback
        "https://10.0.0.8/hook",  # private
        "https://172.16.5.4/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data",  # link-local: the cloud metadata service
        "https://100.64.0.1/hook",  # shared address space (carrier-grade NAT)
        "https://0.0.0.0/hook",  # unspecified
        "https://224.0.0.1/hook",  # multicast
        "https://192.0.2.10/hook",  # documentation
        "https://[::1]/hook",  # IPv6 loopback
        "https://[fe80::1]/hook",  # IPv6 link-local
        "https://[fc00::1]/hook",  # IPv6 unique local
        "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
        "https://[2002:7f00:1::]/hook",  # 6to4 around 127.0.0.1
        "https://user:pass@93.184.215.14/hook",  # credentials in the URL
        "https:///hook",  # no host
    ],
)
def test_targets_that_are_not_public_https_are_refused(url: str, settings: SettingsWrapper) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(TargetRefused):
        target_check(url)


def test_a_public_https_target_is_accepted_and_pinned_to_its_checked_address(
    settings: SettingsWrapper,
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    target = target_check("https://93.184.215.14:8443/hooks/rempart?x=1")
    assert (target.scheme, target.host, target.port) == ("https", "93.184.215.14", 8443)
    assert (target.path, target.address) == ("/hooks/rempart?x=1", "93.184.215.14")


def test_a_name_with_any_private_address_among_public_ones_is_refused(
    settings: SettingsWrapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False

    def resolve(host: str, port: int, **kwargs: Any) -> list[Any]:
        assert host == "hooks.example.com"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(TargetRefused, match=r"10\.1\.2\.3"):
        target_check("https://hooks.example.com/rempart")


def test_the_development_switch_allows_http_and_loopback(settings: SettingsWrapper) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    target = target_check("http://127.0.0.1:8099/hook")
    assert (target.scheme, target.address, target.port) == ("http", "127.0.0.1", 8099)


def test_address_classification() -> None:
    import ipaddress

    assert address_is_public(ipaddress.ip_address("93.184.215.14"))
    assert address_is_public(ipaddress.ip_address("2606:2800:21f:cb07:6820:80da:af6b:8b2c"))
    assert not address_is_public(ipaddress.ip_address("::ffff:10.0.0.1"))
    assert not address_is_public(ipaddress.ip_address("198.18.0.1"))  # benchmarking


# --- Backoff ---------------------------------------------------------------------------------


def test_retries_back_off_from_thirty_seconds_doubling_to_the_cap(
    settings: SettingsWrapper,
) -> None:
    settings.WEBHOOK_RETRY_BASE_SECONDS = 30
    settings.WEBHOOK_RETRY_CAP_SECONDS = 3600
    delays = [int(outbox.retry_delay(attempts).total_seconds()) for attempts in range(1, 11)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert outbox.retry_delay(500) == dt.timedelta(seconds=3600)


# --- The outbox ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_dispatch_derives_one_delivery_per_image_and_change_and_is_idempotent(
    hooked: PartnerPersona, partner_b: PartnerPersona
) -> None:
    registered = register_case(images=2, minor_depicted=True)
    first = webhook_deliveries_dispatch()
    assert webhook_deliveries_dispatch() == []  # nothing new: nothing written, nothing to send
    rows = list(WebhookDelivery.objects.order_by("change_id"))
    assert len(rows) == 2
    assert first == [row.pk for row in rows]
    assert sorted(webhook_deliveries_sweep()) == first  # both due for their first attempt
    assert {row.partner_id for row in rows} == {hooked.partner.pk}  # B has no webhook
    images = list(registered.case.images.order_by("pk"))
    for row, image in zip(rows, images, strict=True):
        assert row.event_type == "image.added"
        assert row.status == WebhookDelivery.Status.PENDING
        assert row.webhook_id == outbox.webhook_id_for(
            partner_id=hooked.partner.pk, change_id=row.change_id
        )
        assert row.payload == {
            "type": "image.added",
            "timestamp": row.change.created_at.isoformat().replace("+00:00", "Z"),
            "data": {
                "id": match_id_encode(image_id=image.pk, partner_id=hooked.partner.pk),
                "scope": "intimate",
                "minor_depicted": True,
            },
        }
    hashes = [value.hex() for image in registered.images for value in image.hashes]
    assert not any(value in json.dumps(row.payload) for row in rows for value in hashes)

    case_withdraw(case=registered.case)
    webhook_deliveries_dispatch()
    withdrawn = WebhookDelivery.objects.filter(event_type="image.withdrawn")
    assert withdrawn.count() == 2
    assert WebhookDelivery.objects.count() == 4
    assert {row.payload["data"]["id"] for row in withdrawn} == {
        row.payload["data"]["id"] for row in rows
    }


@pytest.mark.django_db
def test_dispatch_keeps_to_the_partners_scopes_and_to_changes_since_it_joined(
    hooked: PartnerPersona,
) -> None:
    register_case(images=1)
    register_case(images=1, scope="no_sexual_edit")
    webhook_deliveries_dispatch()
    assert WebhookDelivery.objects.get().payload["data"]["scope"] == "intimate"

    Partner.objects.filter(pk=hooked.partner.pk).update(sync_scopes=["intimate", "no_sexual_edit"])
    register_case(images=1, scope="no_sexual_edit")
    webhook_deliveries_dispatch()
    scopes = [row.payload["data"]["scope"] for row in WebhookDelivery.objects.order_by("pk")]
    # After an opt-in, the changes of that scope since the partner's last delivery follow.
    assert scopes == ["intimate", "no_sexual_edit", "no_sexual_edit"]

    late = Partner.objects.create(name="Late Platform", webhook_url="https://x", webhook_secret="s")
    webhook_deliveries_dispatch()
    assert not WebhookDelivery.objects.filter(partner=late).exists()


@pytest.mark.django_db
def test_a_delivery_is_sent_signed_and_marked_delivered(
    hooked: PartnerPersona, receiver: Receiver
) -> None:
    register_case(images=1)
    (delivery_id,) = webhook_deliveries_dispatch()
    webhook_delivery_send(delivery_id=delivery_id)

    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert delivery.attempts == 1
    assert delivery.delivered_at is not None
    ((headers, body),) = receiver.received
    assert headers["webhook-id"] == delivery.webhook_id
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    assert abs(int(headers["webhook-timestamp"]) - timezone.now().timestamp()) < 5
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == delivery.payload
    assert webhook_delivery_send(delivery_id=delivery_id) is None  # delivered is final
    assert len(receiver.received) == 1


@pytest.mark.django_db
def test_a_failed_attempt_is_retried_later_with_the_same_id_then_given_up(
    hooked: PartnerPersona, receiver: Receiver, settings: SettingsWrapper
) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    receiver.statuses = [500, 503, 500]
    register_case(images=1)
    (delivery_id,) = webhook_deliveries_dispatch()

    before = timezone.now()
    webhook_delivery_send(delivery_id=delivery_id)
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("pending", 1, "HTTP 500")
    assert delivery.next_attempt_at >= before + dt.timedelta(seconds=30)
    assert webhook_delivery_send(delivery_id=delivery_id) is None  # not due yet
    assert webhook_deliveries_sweep() == []

    for attempt in (2, 3):
        WebhookDelivery.objects.filter(pk=delivery_id).update(next_attempt_at=timezone.now())
        assert webhook_deliveries_sweep() == [delivery_id]
        webhook_delivery_send(delivery_id=delivery_id)
        delivery.refresh_from_db()
        assert delivery.attempts == attempt
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.last_error == "HTTP 500"
    assert {headers["webhook-id"] for headers, _ in receiver.received} == {delivery.webhook_id}
    assert len({headers["webhook-timestamp"] for headers, _ in receiver.received}) >= 1
    assert len(receiver.received) == 3


@pytest.mark.django_db
def test_a_refused_target_is_never_called_and_counts_as_a_failed_attempt(
    hooked: PartnerPersona, receiver: Receiver, settings: SettingsWrapper
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False  # the receiver is http on loopback
    register_case(images=1)
    (delivery_id,) = webhook_deliveries_dispatch()
    webhook_delivery_send(delivery_id=delivery_id)
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert delivery.last_error.startswith("refused: ")
    assert receiver.received == []


@pytest.mark.django_db
def test_an_unreachable_endpoint_is_a_failed_attempt(
    hooked: PartnerPersona, receiver: Receiver
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    Partner.objects.filter(pk=hooked.partner.pk).update(
        webhook_url=f"http://127.0.0.1:{closed_port}/hook"
    )
    register_case(images=1)
    (delivery_id,) = webhook_deliveries_dispatch()
    webhook_delivery_send(delivery_id=delivery_id)
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.last_error == "network error: ConnectionRefusedError"


@pytest.mark.django_db
def test_deliveries_of_a_partner_that_lost_its_webhook_are_given_up(
    hooked: PartnerPersona, receiver: Receiver
) -> None:
    register_case(images=1)
    (delivery_id,) = webhook_deliveries_dispatch()
    Partner.objects.filter(pk=hooked.partner.pk).update(webhook_url="")
    webhook_delivery_send(delivery_id=delivery_id)
    assert WebhookDelivery.objects.get(pk=delivery_id).status == WebhookDelivery.Status.FAILED
    assert receiver.received == []


@pytest.mark.django_db
def test_a_committed_registration_enqueues_the_dispatcher_which_delivers(
    hooked: PartnerPersona,
    receiver: Receiver,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    # Without a broker (the test settings) Celery runs the tasks inline.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        registered = register_case(images=1)
    assert callbacks
    with django_capture_on_commit_callbacks(execute=True):
        case_withdraw(case=registered.case)
    assert [body["type"] for body in (json.loads(b) for _, b in receiver.received)] == [
        "image.added",
        "image.withdrawn",
    ]
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}


@pytest.mark.django_db
def test_an_unreachable_broker_never_fails_the_persons_request(
    hooked: PartnerPersona,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    saved = {name: celery_app.conf[name] for name in ("task_always_eager", "broker_url")}
    celery_app.conf.update(task_always_eager=False, broker_url=f"redis://127.0.0.1:{closed_port}/0")
    try:
        started = time.monotonic()
        with django_capture_on_commit_callbacks(execute=True):
            registered = register_case(images=1)
        elapsed = time.monotonic() - started
    finally:
        celery_app.conf.update(saved)
    assert elapsed < 2  # one connection attempt, no retries (Argon2 included)
    assert registered.case.pk is not None
    assert "could not enqueue the webhook dispatcher" in caplog.text
    assert WebhookDelivery.objects.count() == 0  # left for the sweep
    assert changes.CHANGES_COMMITTED_TASK in celery_app.tasks
