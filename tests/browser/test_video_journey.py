"""A person registers a photo and a video in one case, in a real Chromium, in English and in
French; a partner then matches copies of the video through the API, until the person withdraws.

The video is hashed on the device (registry/static/registry/video.js): the network log must
carry its frame list, never a frame or a byte of the file. The partner hashes what it receives
with Meta's reference `vpdq.computeHash`, as a platform would: the same video re-encoded at a
lower bitrate and half the resolution matches, and so does the video trimmed by two seconds at
each end; one frame saved as a JPEG, hashed as a photo, matches the video (kind "video"); an
unrelated video does not. After the withdrawal, none does.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import vpdq
from django.test import Client
from playwright.sync_api import Page, expect

from registry import client
from registry.matching import follower as matcher_module
from registry.matching.follower import Matcher
from registry.models import Case, RegisteredImage
from tests.browser.conftest import BrowsingLog, SiteOpener
from tests.browser.test_journey import ENGLISH, FRENCH, Words, assert_private
from tests.browser.videos import LIFE, SCENES, ffmpeg, make_video, reencode
from tests.conftest import PartnerPersona
from tests.images import write_photo

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The bytes that open an MP4 box, a WebM (EBML) file and a JPEG: none may be sent.
FILE_MAGIC = (b"ftyp", b"moov", b"mdat", b"\x1a\x45\xdf\xa3", b"\xff\xd8\xff")


@pytest.fixture
def live_index(transactional_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Matcher]:
    """The live server's match index (it runs in this process); catch_up() after writes."""
    fresh = Matcher()
    monkeypatch.setattr(matcher_module, "_matcher", fresh)
    fresh.load()
    yield fresh
    fresh.stop()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The person's photo and video, and what a partner receives later."""
    folder = tmp_path_factory.mktemp("journey")
    video = make_video(folder, SCENES)
    frame = folder / "frame.jpg"
    subprocess.run(
        [ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-ss", "7", "-i", str(video),
         "-frames:v", "1", "-q:v", "3", str(frame)],
        check=True,
    )  # fmt: skip
    return {
        "photo": write_photo(folder / "beach.jpg", seed=877),
        "video": video,
        "smaller": reencode(
            video,
            folder / "smaller.mp4",
            arguments=["-vf", "scale=160:120", "-c:v", "libx264", "-b:v", "80k"],
        ),
        "trimmed": reencode(
            video, folder / "trimmed.mp4", arguments=["-ss", "2", "-t", "9", "-c:v", "libx264"]
        ),
        "frame": frame,
        "unrelated": make_video(folder, LIFE),
    }


def register_photo_and_video(page: Page, words: Words, files: dict[str, Path]) -> tuple[str, str]:
    """From the home page to a registration of the photo and the video; the reference, secret."""
    page.get_by_role("link", name=words.protect).first.click()
    expect(page.locator("[data-picker][data-ready]")).to_be_attached()
    page.locator("#photos").set_input_files([str(files["photo"]), str(files["video"])])
    expect(page.locator(".photo.ready")).to_have_count(2, timeout=60_000)
    expect(page.locator(".photo.ready.video")).to_have_count(1)
    page.get_by_label(words.intimate).check()
    page.get_by_label(words.depicted).check()
    page.get_by_label(words.rights).check()
    page.locator("#minor").get_by_label(words.minor_no, exact=True).check()
    expect(page.locator("[data-summary-photos]")).to_have_text("1")
    expect(page.locator("[data-summary-videos]")).to_have_text("1")
    page.get_by_role("button", name=words.register).click()
    expect(page.locator("[data-case-secret]")).to_be_visible()
    reference = page.locator("[data-case-reference]").get_attribute("data-case-reference")
    secret = page.locator("[data-case-secret]").get_attribute("data-case-secret")
    assert reference
    assert secret
    page.get_by_label(words.saved).check()
    return reference, secret


def vpdq_frames(path: Path) -> list[dict[str, Any]]:
    return [
        {"hash": feature.hex, "quality": feature.quality, "timestamp": feature.timestamp}
        for feature in vpdq.computeHash(str(path))
    ]


def partner_match(partner: PartnerPersona, files: dict[str, Path]) -> dict[str, Any]:
    """The partner's one match call: three videos hashed with vpdq, and the frame as a photo."""
    body = {
        "purpose": "publish",
        "hashes": [client.hash_file(files["frame"]).original],
        "videos": [
            {"frames": vpdq_frames(files[name])} for name in ("smaller", "trimmed", "unrelated")
        ],
    }
    response = Client().post(
        "/api/v1/match", json.dumps(body), content_type="application/json", headers=partner.auth
    )
    assert response.status_code == 200, response.content
    answer: dict[str, Any] = response.json()
    return answer


def assert_no_file_was_sent(log: BrowsingLog) -> None:
    for request in log.requests:
        body = request.post_data_buffer or b""
        for magic in FILE_MAGIC:
            assert magic not in body, (request.url, magic)


@pytest.mark.parametrize("words", [ENGLISH, FRENCH], ids=["english", "french"])
def test_a_video_registered_on_the_page_is_matched_by_a_partner_until_withdrawn(
    site: SiteOpener,
    live_index: Matcher,
    partner_a: PartnerPersona,
    files: dict[str, Path],
    words: Words,
) -> None:
    page, log = site(locale=words.locale)
    page.goto(log.origin + "/")
    reference, secret = register_photo_and_video(page, words, files)

    case = Case.objects.get(reference=reference)
    video = case.images.get(kind=RegisteredImage.Kind.VIDEO)
    digest = hashlib.md5(files["video"].read_bytes(), usedforsecurity=False).digest()
    assert bytes(video.md5 or b"") == digest
    assert video.duration == pytest.approx(13.0, abs=0.05)
    assert case.images.filter(kind=RegisteredImage.Kind.PHOTO).count() == 1
    live_index.catch_up()

    answer = partner_match(partner_a, files)
    (frame_result,) = answer["results"]
    assert [match["kind"] for match in frame_result["matches"]] == ["video"]
    assert frame_result["matches"][0]["timestamp"] == pytest.approx(7.0, abs=1.0)
    smaller, trimmed, unrelated = (result["matches"] for result in answer["video_results"])
    assert len(smaller) == 1
    assert smaller[0]["kind"] == "video"
    assert smaller[0]["query_match_percent"] >= 80.0
    assert len(trimmed) == 1
    assert trimmed[0]["query_match_percent"] >= 80.0
    assert unrelated == []

    page.get_by_role("navigation").get_by_role("link", name=words.my_case).click()
    page.locator("#case-reference-input").fill(reference)
    page.locator("#case-secret-input").fill(secret)
    page.get_by_role("button", name=words.show_case).click()
    page.get_by_role("button", name=words.withdraw).click()
    page.get_by_role("button", name=words.confirm_withdraw).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(words.stopped)
    live_index.catch_up()

    answer = partner_match(partner_a, files)
    assert [result["matches"] for result in answer["results"]] == [[]]
    assert [result["matches"] for result in answer["video_results"]] == [[], [], []]

    # Only hashes and JSON went out: no frame, no byte of the video or the photo.
    submitted = [r for r in log.requests if r.url.endswith("/register/submit")]
    assert len(submitted) == 1
    sent = json.loads(submitted[0].post_data or "{}")
    assert set(sent["videos"][0]) == {"frames", "md5", "duration"}
    assert sent["videos"][0]["md5"] == digest.hex()
    assert_no_file_was_sent(log)
    assert_private(log, secret)
