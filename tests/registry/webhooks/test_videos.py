"""Webhooks of videos: the same events as a photo's (``image.added``, ``image.withdrawn``),
their data marked ``"media": "video"``, never a frame or an MD5, signed as every delivery."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from registry.match_ids import match_id_encode
from registry.models import WebhookDelivery
from registry.services.cases import case_withdraw
from registry.services.webhooks import (
    webhook_deliveries_dispatch,
    webhook_deliveries_sweep,
    webhook_delivery_send,
)
from tests.conftest import PartnerPersona
from tests.factories import register_case
from tests.registry.webhooks.conftest import SECRET, Receiver


@pytest.mark.django_db
def test_a_videos_events_say_video_and_carry_no_hash(
    hooked: PartnerPersona, receiver: Receiver
) -> None:
    registered = register_case(images=1, videos=1)
    photo, video = registered.case.images.order_by("pk")
    webhook_deliveries_dispatch()
    case_withdraw(case=registered.case)
    webhook_deliveries_dispatch()
    for delivery_id in webhook_deliveries_sweep():
        webhook_delivery_send(delivery_id=delivery_id)

    rows = list(WebhookDelivery.objects.select_related("change").order_by("change_id"))
    events = {(row.change.image_id, row.event_type): row.payload["data"] for row in rows}
    photo_data = {
        "id": match_id_encode(image_id=photo.pk, partner_id=hooked.partner.pk),
        "scope": "intimate",
        "minor_depicted": False,
    }
    video_data = {
        "id": match_id_encode(image_id=video.pk, partner_id=hooked.partner.pk),
        "scope": "intimate",
        "minor_depicted": False,
        "media": "video",
    }
    # A photo's event is exactly what it was before videos.
    assert events == {
        (photo.pk, "image.added"): photo_data,
        (video.pk, "image.added"): video_data,
        (photo.pk, "image.withdrawn"): photo_data,
        (video.pk, "image.withdrawn"): video_data,
    }
    text = json.dumps([row.payload for row in rows])
    assert (registered.videos[0].md5 or b"").hex() not in text
    assert not any(frame.value.hex() in text for frame in registered.videos[0].frames)

    assert all(row.status == WebhookDelivery.Status.DELIVERED for row in rows)
    assert len(receiver.received) == 4
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    received = []
    for headers, body in receiver.received:
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        assert headers["webhook-signature"] == f"v1,{expected}"
        received.append(json.loads(body))
    assert sorted((body["type"], body["data"].get("media", "photo")) for body in received) == [
        ("image.added", "photo"),
        ("image.added", "video"),
        ("image.withdrawn", "photo"),
        ("image.withdrawn", "video"),
    ]
