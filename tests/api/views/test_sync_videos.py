"""Videos on the native sync feed (GET /api/v1/hashes/changes): a video travels as its frames
and its file's MD5, marked ``"media": "video"``; a photo's entry is exactly what it was before
videos; a withdrawal is a tombstone with no frame and no MD5."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from registry.match_ids import match_id_encode
from registry.models import Disclosure, PartnerKey, RegisteredImage
from registry.services.cases import case_add_images, case_withdraw
from registry.services.partners import partner_key_issue
from tests.conftest import PartnerPersona
from tests.factories import RegisteredCase, random_video, register_case

pytestmark = pytest.mark.django_db

URL = "/api/v1/hashes/changes"
PHOTO_ADDED_KEYS = ["id", "kind", "status", "scope", "minor_depicted", "changed_at", "hashes"]
TOMBSTONE_KEYS = ["id", "kind", "status", "scope", "minor_depicted", "changed_at"]


def _entries(persona: PartnerPersona, cursor: str = "") -> tuple[list[dict[str, Any]], str]:
    body = Client().get(URL, {"cursor": cursor}, headers=persona.auth).json()
    return body["entries"], body["next_cursor"]


def _ids(persona: PartnerPersona, registered: RegisteredCase) -> list[str]:
    return [
        match_id_encode(image_id=pk, partner_id=persona.partner.pk)
        for pk in registered.case.images.order_by("pk").values_list("pk", flat=True)
    ]


def test_a_video_arrives_with_its_frames_in_time_order_and_its_md5(
    partner_a: PartnerPersona,
) -> None:
    registered = register_case(images=1, videos=1)
    (video,) = registered.videos

    entries, _ = _entries(partner_a)

    photo_entry, video_entry = entries
    assert [entry["id"] for entry in entries] == _ids(partner_a, registered)
    assert video_entry["kind"] == "added"
    assert video_entry["media"] == "video"
    assert video_entry["status"] == "active"
    assert video_entry["hashes"] == []
    assert video_entry["md5"] == (video.md5 or b"").hex()
    assert video_entry["frames"] == [
        {"hash": frame.value.hex(), "quality": frame.quality, "timestamp": frame.timestamp}
        for frame in video.frames
    ]
    assert [frame["timestamp"] for frame in video_entry["frames"]] == sorted(
        frame["timestamp"] for frame in video_entry["frames"]
    )
    # The photo's entry is exactly what it was before videos: the same keys, no frame, no MD5.
    assert list(photo_entry) == PHOTO_ADDED_KEYS
    assert [item["hash"] for item in photo_entry["hashes"]] == [
        value.hex() for value in registered.images[0].hashes
    ]
    assert {item["kind"] for item in photo_entry["hashes"]} == {"whole"}
    # Serving the frames is a disclosure of the video, as serving hashes is of a photo.
    assert Disclosure.objects.filter(partner_id=partner_a.partner.pk).count() == 2


def test_frames_come_in_time_order_whatever_order_they_were_stored_in(
    partner_a: PartnerPersona,
) -> None:
    registered = register_case(images=0, videos=1)
    video = RegisteredImage.objects.get(case=registered.case)
    # Store the frames backwards: the feed orders them by time, not by row.
    rows = list(video.hashes.order_by("pk"))
    for row, late in zip(rows, reversed([row.frame_at for row in rows]), strict=True):
        type(row).objects.filter(pk=row.pk).update(frame_at=(late or 0) + 100)

    (entry,), _ = _entries(partner_a)

    times = [frame["timestamp"] for frame in entry["frames"]]
    assert times == sorted(times)
    assert len(times) == len(registered.videos[0].frames)


def test_a_withdrawn_video_is_a_tombstone_without_frames_or_md5(
    partner_a: PartnerPersona,
) -> None:
    registered = register_case(images=1, videos=1)
    _, cursor = _entries(partner_a)
    case_withdraw(case=registered.case)

    later, _ = _entries(partner_a, cursor)
    replay, _ = _entries(partner_a)

    # After the withdrawal, and from the start (the addition is a tombstone too).
    assert len(later) == 2
    assert len(replay) == 4
    for photo_entry, video_entry in (later, replay[:2], replay[2:]):
        assert photo_entry["kind"] == video_entry["kind"] == "withdrawn"
        assert list(photo_entry) == TOMBSTONE_KEYS
        assert list(video_entry) == [*TOMBSTONE_KEYS, "media"]
        assert video_entry["media"] == "video"
        assert video_entry["status"] == "withdrawn"
    text = json.dumps(replay)
    assert (registered.videos[0].md5 or b"").hex() not in text
    assert not any(frame.value.hex() in text for frame in registered.videos[0].frames)


def test_a_video_added_to_a_case_later_follows_in_the_feed(partner_a: PartnerPersona) -> None:
    registered = register_case(images=1)
    _, cursor = _entries(partner_a)
    clip = random_video(frames=3)
    case_add_images(case=registered.case, images=[], videos=[clip])

    (entry,), _ = _entries(partner_a, cursor)

    assert entry["media"] == "video"
    assert entry["md5"] == (clip.md5 or b"").hex()
    assert [frame["hash"] for frame in entry["frames"]] == [f.value.hex() for f in clip.frames]


def test_only_a_key_with_the_sync_scope_gets_a_videos_frames(partner_a: PartnerPersona) -> None:
    registered = register_case(images=0, videos=1)
    issued = partner_key_issue(partner=partner_a.partner, scopes=[PartnerKey.Scope.MATCH])

    response = Client().get(URL, headers={"Authorization": f"Bearer {issued.raw}"})

    assert response.status_code == 403
    assert (registered.videos[0].md5 or b"").hex() not in response.content.decode()
    assert not Disclosure.objects.exists()


def test_the_schema_describes_a_videos_frames_and_md5(client: Client) -> None:
    schema = client.get("/api/schema/", {"format": "json"}).json()
    components = schema["components"]["schemas"]
    entry = components["HashChangesApiEntry"]["properties"]
    media = entry["media"]["allOf"][0]["$ref"].rsplit("/", 1)[1]
    assert components[media]["enum"] == ["video"]
    assert entry["md5"]["type"] == "string"
    frames = entry["frames"]["items"]["$ref"].rsplit("/", 1)[1]
    assert set(components[frames]["properties"]) == {"hash", "quality", "timestamp"}
