"""Videos on the partner API: registered with their vPDQ frame lists, matched by frame lists
(the vPDQ rule: registry.videos) and by a single frame as an image, withdrawn at once."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from django.test import Client

from registry.matching.follower import Matcher
from registry.models import Case, ImageHash, MatchCall, RegisteredImage
from registry.services.cases import case_withdraw
from tests.conftest import PartnerPersona
from tests.factories import (
    case_creation_body,
    dihedral_payload,
    near_duplicate,
    random_dihedral,
    random_hash,
)

pytestmark = pytest.mark.django_db


def _frames(values: list[bytes], *, start: float = 0.0, quality: int = 90) -> list[dict[str, Any]]:
    return [
        {"hash": value.hex(), "quality": quality, "timestamp": start + second}
        for second, value in enumerate(values)
    ]


def _video(values: list[bytes], md5: str = "0" * 31 + "1") -> dict[str, Any]:
    return {"frames": _frames(values), "md5": md5, "duration": float(len(values))}


def _register(videos: list[dict[str, Any]], images: int = 0) -> Any:
    body = case_creation_body(images=[dihedral_payload(random_dihedral()) for _ in range(images)])
    body["videos"] = videos
    return Client().post("/api/v1/cases", json.dumps(body), content_type="application/json")


def _match(persona: PartnerPersona, body: dict[str, Any]) -> Any:
    return Client().post(
        "/api/v1/match",
        json.dumps({"purpose": "publish", **body}),
        content_type="application/json",
        headers=persona.auth,
    )


@pytest.fixture
def registered_video() -> list[bytes]:
    rng = random.Random(16)
    frames = [random_hash(rng) for _ in range(20)]
    response = _register([_video(frames)])
    assert response.status_code == 201, response.content
    return frames


def test_a_video_is_stored_as_its_frames_with_md5_and_duration(
    registered_video: list[bytes],
) -> None:
    video = RegisteredImage.objects.get(kind=RegisteredImage.Kind.VIDEO)
    assert bytes(video.md5 or b"") == bytes.fromhex("0" * 31 + "1")
    assert video.duration == 20.0
    rows = list(video.hashes.order_by("frame_at").values_list("variant", "value", "frame_at"))
    assert [(variant, bytes(value), at) for variant, value, at in rows] == [
        ("frame", value, float(second)) for second, value in enumerate(registered_video)
    ]


def test_frames_below_quality_50_and_repeated_hashes_are_left_out() -> None:
    rng = random.Random(3)
    good = [random_hash(rng) for _ in range(3)]
    frames = [
        *_frames([good[0], good[1], good[0]]),
        {"hash": "0" * 64, "quality": 0, "timestamp": 3.0},  # a fade to black
        {"hash": random_hash(rng).hex(), "quality": 49, "timestamp": 4.0},
        {"hash": good[2].hex(), "quality": 50, "timestamp": 5.0},
    ]
    response = _register([{"frames": frames, "md5": "a" * 32, "duration": 6}])
    assert response.status_code == 201, response.content
    stored = ImageHash.objects.filter(variant=ImageHash.FRAME).order_by("frame_at")
    assert [(bytes(row.value), row.frame_at) for row in stored] == [
        (good[0], 0.0),
        (good[1], 1.0),
        (good[2], 5.0),
    ]


@pytest.mark.parametrize(
    ("video", "status", "code"),
    [
        (
            {
                "frames": [{"hash": "0" * 64, "quality": 10, "timestamp": 0}],
                "md5": "a" * 32,
                "duration": 1,
            },
            400,
            "video_quality_too_low",
        ),
        ({"frames": [], "md5": "a" * 32, "duration": 1}, 400, "video_frames_required"),
        (
            {
                "frames": [{"hash": "zz", "quality": 90, "timestamp": 0}],
                "md5": "a" * 32,
                "duration": 1,
            },
            400,
            "video_frame_invalid",
        ),
        (
            {
                "frames": [{"hash": "a" * 64, "quality": 101, "timestamp": 0}],
                "md5": "a" * 32,
                "duration": 1,
            },
            400,
            "video_frame_invalid",
        ),
        (
            {
                "frames": [{"hash": "a" * 64, "quality": 90, "timestamp": 0}],
                "md5": "nope",
                "duration": 1,
            },
            400,
            "video_invalid",
        ),
        (
            {
                "frames": [{"hash": "a" * 64, "quality": 90, "timestamp": 0}],
                "md5": "a" * 32,
                "duration": 31 * 60,
            },
            413,
            "video_too_long",
        ),
        ("a video", 400, "video_invalid"),
    ],
)
def test_a_bad_video_is_refused_with_its_code_and_nothing_is_stored(
    video: Any, status: int, code: str
) -> None:
    response = _register([video], images=1)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert not Case.objects.exists()
    assert not RegisteredImage.objects.exists()


def test_too_many_frames_in_a_video_is_refused() -> None:
    frames = [{"hash": "a" * 64, "quality": 90, "timestamp": 0}] * 1802
    response = _register([{"frames": frames, "md5": "a" * 32, "duration": 10}])
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "video_too_many_frames"
    assert not Case.objects.exists()


def test_a_case_holds_at_most_its_frames(settings: Any) -> None:
    settings.REGISTRY_MAX_VIDEO_FRAMES_PER_CASE = 5
    rng = random.Random(8)
    response = _register([_video([random_hash(rng) for _ in range(6)])])
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_many_frames"
    assert not Case.objects.exists()


def test_a_frame_as_an_image_matches_the_video_with_its_time(
    partner_a: PartnerPersona, registered_video: list[bytes], match_index: Matcher
) -> None:
    match_index.catch_up()
    screenshot = near_duplicate(registered_video[7], 12)
    response = _match(partner_a, {"hashes": [screenshot.hex(), random_hash().hex()]})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [len(result["matches"]) for result in results] == [1, 0]
    match = results[0]["matches"][0]
    assert match["kind"] == "video"
    assert match["timestamp"] == 7.0
    assert "video_results" not in response.json()


def test_a_video_matches_by_the_vpdq_rule(
    partner_a: PartnerPersona, registered_video: list[bytes], match_index: Matcher
) -> None:
    match_index.catch_up()
    rng = random.Random(99)
    # A trimmed, re-encoded copy: 14 of the 20 frames, each a few bits off.
    trimmed = [near_duplicate(value, 10, rng) for value in registered_video[3:17]]
    # 80% of the upload's frames must match: 8 of 10 does, 7 of 10 does not.
    eight = [near_duplicate(v, 8, rng) for v in registered_video[:8]] + [
        random_hash(rng) for _ in range(2)
    ]
    seven = [near_duplicate(v, 8, rng) for v in registered_video[:7]] + [
        random_hash(rng) for _ in range(3)
    ]
    unrelated = [random_hash(rng) for _ in range(10)]
    response = _match(
        partner_a,
        {"videos": [{"frames": _frames(frames)} for frames in (trimmed, eight, seven, unrelated)]},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["results"] == []
    matched = [result["matches"] for result in body["video_results"]]
    assert [len(matches) for matches in matched] == [1, 1, 0, 0]
    first = matched[0][0]
    assert first["kind"] == "video"
    assert first["query_match_percent"] == 100.0
    assert first["registered_match_percent"] == 70.0
    assert 3.0 <= first["timestamp"] <= 16.0
    assert matched[1][0]["query_match_percent"] == 80.0
    assert set(first) == {
        "match_id",
        "scope",
        "minor_depicted",
        "status",
        "kind",
        "timestamp",
        "query_match_percent",
        "registered_match_percent",
    }
    call = MatchCall.objects.get()
    assert call.hashes == 14 + 10 + 10 + 10


def test_a_registered_photo_in_a_frame_of_a_video_is_named(
    partner_a: PartnerPersona, match_index: Matcher
) -> None:
    photo = random_dihedral()
    body = case_creation_body(images=[dihedral_payload(photo)])
    assert (
        Client()
        .post("/api/v1/cases", json.dumps(body), content_type="application/json")
        .status_code
        == 201
    )
    match_index.catch_up()
    rng = random.Random(5)
    frames = [random_hash(rng) for _ in range(5)]
    frames[3] = near_duplicate(photo.hashes[0], 6, rng)
    response = _match(partner_a, {"videos": [{"frames": _frames(frames)}], "hashes": []})
    assert response.status_code == 200
    (match,) = response.json()["video_results"][0]["matches"]
    assert (match["kind"], match["timestamp"]) == ("photo", 3.0)
    assert "query_match_percent" not in match


def test_a_withdrawn_video_never_matches_even_before_the_index_follows(
    partner_a: PartnerPersona, registered_video: list[bytes], match_index: Matcher
) -> None:
    match_index.catch_up()
    case_withdraw(case=Case.objects.get())
    response = _match(
        partner_a,
        {
            "hashes": [registered_video[0].hex()],
            "videos": [{"frames": _frames(registered_video)}],
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["results"] == [{"matches": []}]
    assert body["video_results"] == [{"matches": []}]


@pytest.mark.parametrize(
    ("videos", "status", "code"),
    [
        ("x", 400, "videos_invalid"),
        ([], 400, "videos_invalid"),
        (["x"], 400, "videos_invalid"),
        ([{"frames": "x"}], 400, "video_frames_required"),
        ([{"frames": [{"hash": "a" * 64}]}], 400, "video_frame_invalid"),
        (
            [{"frames": [{"hash": "a" * 64, "quality": 9, "timestamp": 0}]}] * 6,
            413,
            "too_many_videos",
        ),
    ],
)
def test_bad_query_videos_are_refused_with_a_stable_body(
    partner_a: PartnerPersona, videos: Any, status: int, code: str
) -> None:
    response = _match(partner_a, {"videos": videos})
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert not MatchCall.objects.exists()


def test_a_match_only_key_never_receives_a_frame_hash(
    partner_a: PartnerPersona, registered_video: list[bytes], match_index: Matcher
) -> None:
    match_index.catch_up()
    response = _match(partner_a, {"videos": [{"frames": _frames(registered_video)}]})
    text = response.content.decode()
    assert response.status_code == 200
    assert not any(value.hex() in text for value in registered_video)
