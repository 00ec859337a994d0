"""The people's pages take videos beside photos: the register and add-photos calls carry their
frame lists (hashed in the browser), and every refusal reads in the person's language."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from django.test import Client

from registry import receipts
from registry.models import AuditEvent, Case, ImageHash, RegisteredImage
from registry.pdq import fingerprint
from tests.factories import RegisteredCase, random_hash
from tests.registry.web.test_views import ENGLISH, FRENCH, credentials, post_json, registration

pytestmark = pytest.mark.django_db


def video(seed: int, count: int = 8, **changes: Any) -> dict[str, Any]:
    rng = random.Random(seed)
    body: dict[str, Any] = {
        "frames": [
            {"hash": random_hash(rng).hex(), "quality": 80, "timestamp": float(second)}
            for second in range(count)
        ],
        "md5": f"{seed:032x}",
        "duration": float(count),
    }
    body.update(changes)
    return body


def test_a_person_registers_a_photo_and_a_video_in_one_case(client: Client) -> None:
    response = post_json(client, "/register/submit", registration(1, videos=[video(1)]))
    assert response.status_code == 201, response.content
    case = Case.objects.get()
    kinds = sorted(case.images.values_list("kind", flat=True))
    assert kinds == ["photo", "video"]
    assert ImageHash.objects.filter(image__case=case, variant="frame").count() == 8
    event = AuditEvent.objects.get(action=AuditEvent.Action.CASE_CREATED)
    assert (event.details["images"], event.details["videos"]) == (1, 1)
    # The receipt names the video by its file's MD5, which the person can recompute.
    receipt = receipts.receipt_verify(json.loads(response.content)["receipt"]).receipt
    assert receipt is not None
    assert fingerprint(bytes.fromhex(f"{1:032x}")) in receipt.fingerprints
    assert len(receipt.fingerprints) == 2


def test_a_video_alone_is_enough_to_open_a_case(client: Client) -> None:
    response = post_json(client, "/register/submit", registration(0, videos=[video(2)]))
    assert response.status_code == 201, response.content
    assert RegisteredImage.objects.get().kind == "video"


def test_nothing_to_register_is_refused(client: Client) -> None:
    response = post_json(client, "/register/submit", registration(0, videos=[]))
    assert response.status_code == 400
    assert json.loads(response.content)["error"]["code"] == "images_required"


@pytest.mark.parametrize(
    ("changes", "code", "english", "french"),
    [
        (
            {"frames": [{"hash": "0" * 64, "quality": 3, "timestamp": 0.0}]},
            "video_quality_too_low",
            "too dark or too plain",
            "trop sombre ou trop uniforme",
        ),
        ({"duration": 3600.0}, "video_too_long", "longer than 30 minutes", "plus de 30 minutes"),
        ({"md5": "x"}, "video_invalid", "could not read", "pas pu lire"),
    ],
)
def test_a_refused_video_is_explained_in_both_languages_and_nothing_is_stored(
    client: Client, changes: dict[str, Any], code: str, english: str, french: str
) -> None:
    body = registration(1, videos=[video(3, **changes)])
    for headers, text in ((ENGLISH, english), (FRENCH, french)):
        response = post_json(client, "/register/submit", body, headers=headers)
        assert response.status_code in (400, 413)
        error = json.loads(response.content)["error"]
        assert error["code"] == code
        assert text in error["message"]
    assert not Case.objects.exists()


def test_videos_are_added_once_to_a_case(client: Client, person: RegisteredCase) -> None:
    body = {**credentials(person), "images": [], "videos": [video(4), video(4)]}
    response = post_json(client, "/status/photos", body)
    assert response.status_code == 201, response.content
    assert json.loads(response.content)["case_reference"] == person.case.reference
    assert person.case.images.filter(kind="video").count() == 1
    again = post_json(client, "/status/photos", body)
    assert again.status_code == 409


def test_the_frames_of_a_case_are_limited(
    client: Client, person: RegisteredCase, settings: Any
) -> None:
    settings.REGISTRY_MAX_VIDEO_FRAMES_PER_CASE = 10
    assert (
        post_json(
            client, "/status/photos", {**credentials(person), "videos": [video(5, count=6)]}
        ).status_code
        == 201
    )
    refused = post_json(
        client,
        "/status/photos",
        {**credentials(person), "videos": [video(6, count=6)]},
        headers=FRENCH,
    )
    assert refused.status_code == 413
    error = json.loads(refused.content)["error"]
    assert error["code"] == "too_many_frames"
    assert "trop longues ensemble" in error["message"]
    assert person.case.images.filter(kind="video").count() == 1


def test_the_status_page_counts_videos_apart_from_photos(
    client: Client, person: RegisteredCase
) -> None:
    added = post_json(client, "/status/photos", {**credentials(person), "videos": [video(7)]})
    assert added.status_code == 201
    html = client.post("/status", credentials(person), headers=FRENCH).content.decode()
    assert 'data-case-photos="2"' in html
    assert 'data-case-videos="1"' in html
    assert "1 vidéo protégée" in html
