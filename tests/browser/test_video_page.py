"""Videos on the register page, in a real Chromium, in English and in French.

The picker takes a photo and videos together; what cannot be protected is refused, named, with
a reason in the person's language, and the rest of the batch is kept: a file that is no video,
a video of flat frames only, a video past the longest accepted, a video that would take the
case past its frames. What is sent is the frame list of the videos kept, never a byte of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import expect
from pytest_django.fixtures import Settings

from tests.browser.conftest import SiteOpener
from tests.browser.videos import LIFE, NTSC, SCENES, flat_video, make_video
from tests.images import write_photo

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The limits the test gives the page: the 13-second video is too long, the 12-second ones are
# not; the two of them together take more frames than the case may hold.
MAX_SECONDS = 12.5
MAX_FRAMES = 14


@dataclass(frozen=True)
class Words:
    locale: str
    never_leaves: str
    not_a_video: str
    too_plain: str
    too_long: str
    too_many_frames: str
    ready: str
    no_photos: str
    intimate: str
    minor_no: str
    register: str


ENGLISH = Words(
    locale="en-GB",
    never_leaves="The video never leaves this device.",
    not_a_video="Your browser cannot read “clip.mp4” as a video.",
    too_plain="no moment of this video is detailed enough",
    too_long="This video is too long to protect",
    too_many_frames=f"more than the {MAX_FRAMES} one case can hold",
    ready="fingerprints for",
    no_photos="Add at least one photo that is ready.",
    intimate="Intimate image: never publish it",
    minor_no="No",
    register="Register my photos",
)
FRENCH = Words(
    locale="fr-FR",
    never_leaves="La vidéo ne quitte jamais cet appareil.",
    not_a_video="Votre navigateur ne peut pas lire « clip.mp4 » comme une vidéo.",
    too_plain="aucun moment de cette vidéo n\u2019est assez détaillé",
    too_long="Cette vidéo est trop longue pour être protégée",
    too_many_frames=f"plus que les {MAX_FRAMES} qu\u2019un dossier peut contenir",
    ready="empreintes pour",
    no_photos="Ajoutez au moins une photo prête.",
    intimate="Image intime : ne jamais la publier",
    minor_no="Non",
    register="Enregistrer mes photos",
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    broken = folder / "clip.mp4"
    broken.write_bytes(bytes(range(256)) * 400)
    return {
        "photo": write_photo(folder / "beach.jpg", seed=731),
        "broken": broken,
        "flat": flat_video(folder),
        "long": make_video(folder, SCENES),
        "life": make_video(folder, LIFE),
        "ntsc": make_video(folder, NTSC),
    }


@pytest.fixture
def limits(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("registry.web.views.MAX_VIDEO_SECONDS", MAX_SECONDS)
    settings.REGISTRY_MAX_VIDEO_FRAMES_PER_CASE = MAX_FRAMES


@pytest.mark.parametrize("words", [ENGLISH, FRENCH], ids=["english", "french"])
def test_what_cannot_be_protected_is_refused_by_name_and_the_rest_is_sent_as_hashes(
    site: SiteOpener, files: dict[str, Path], limits: None, words: Words
) -> None:
    page, log = site(locale=words.locale)
    page.goto(log.origin + "/register")
    expect(page.locator("[data-picker][data-ready]")).to_be_attached()
    expect(page.locator("[data-video-hint]")).to_contain_text(words.never_leaves)

    order = ["photo", "broken", "flat", "long", "life", "ntsc"]
    page.locator("#photos").set_input_files([str(files[name]) for name in order])
    items = page.locator(".photo")
    expect(items).to_have_count(6)
    expect(page.locator(".photo.ready")).to_have_count(2, timeout=60_000)
    expect(page.locator(".photo.refused")).to_have_count(4, timeout=60_000)

    expect(items.nth(0)).to_have_class("photo ready")
    expect(items.nth(1)).to_contain_text(words.not_a_video)
    expect(items.nth(2)).to_contain_text(words.too_plain)
    expect(items.nth(3)).to_contain_text(words.too_long)
    expect(items.nth(4)).to_have_class("photo ready video")
    expect(items.nth(4)).to_contain_text(words.ready)
    expect(items.nth(5)).to_contain_text(words.too_many_frames)
    expect(page.locator("[data-summary-photos]")).to_have_text("1")
    expect(page.locator("[data-summary-videos]")).to_have_text("1")

    page.get_by_label(words.intimate).check()
    page.locator("#depicted").check()
    page.locator("#rights").check()
    page.locator("#minor").get_by_label(words.minor_no, exact=True).check()
    with page.expect_response("**/register/submit") as answered:
        page.get_by_role("button", name=words.register).click()
    sent = answered.value.request

    body = json.loads(sent.post_data or "{}")
    assert len(body["images"]) == 1
    (video,) = body["videos"]
    assert set(video) == {"frames", "md5", "duration"}
    assert 1 <= len(video["frames"]) <= MAX_FRAMES
    assert all(set(frame) == {"hash", "quality", "timestamp"} for frame in video["frames"])
    assert video["duration"] == pytest.approx(12.0, abs=0.05)
    # Hashes and numbers only: a few kilobytes, where the video is hundreds.
    assert len(sent.post_data_buffer or b"") < 16_384
    assert log.foreign_requests() == []
    assert log.page_errors == []


@pytest.mark.parametrize("words", [ENGLISH, FRENCH], ids=["english", "french"])
def test_a_video_of_flat_frames_alone_is_refused_and_nothing_is_sent(
    site: SiteOpener, files: dict[str, Path], words: Words
) -> None:
    page, log = site(locale=words.locale)
    page.goto(log.origin + "/register")
    expect(page.locator("[data-picker][data-ready]")).to_be_attached()
    page.locator("#photos").set_input_files(str(files["flat"]))
    expect(page.locator(".photo.refused")).to_contain_text(words.too_plain, timeout=30_000)

    page.get_by_label(words.intimate).check()
    page.locator("#depicted").check()
    page.locator("#rights").check()
    page.locator("#minor").get_by_label(words.minor_no, exact=True).check()
    page.get_by_role("button", name=words.register).click()

    expect(page.locator("[data-error-summary]")).to_contain_text(words.no_photos)
    assert [request.url for request in log.requests if request.method == "POST"] == []
    assert log.page_errors == []
