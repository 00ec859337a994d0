"""A photo registered through the page is caught re-framed and edited, by a partner's
`rempart match`, in a real Chromium and through the real HTTP API.

The person registers one photo; the page computes its dihedral hashes and its derived views on
the device. A partner then runs `rempart match` on copies of it as a platform would receive them:
a 10% crop, a letterboxed copy, a captioned copy and a copy whose body region was regenerated.
Each matches with the kind that says what matched; another photo of the same room (the person
elsewhere) does not; after the person withdraws, none does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect

from registry import client
from registry.matching import follower as matcher_module
from registry.matching.follower import Matcher
from registry.models import Case, ImageHash
from registry.pdq import DIHEDRAL_VARIANTS
from tests.browser.conftest import SiteOpener
from tests.browser.test_journey import ENGLISH, FRENCH, Words, assert_private
from tests.conftest import PartnerPersona
from tests.images import scene_rgb

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def live_index(transactional_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Matcher]:
    """The live server's match index (it runs in this process); catch_up() after writes."""
    fresh = Matcher()
    monkeypatch.setattr(matcher_module, "_matcher", fresh)
    fresh.load()
    yield fresh
    fresh.stop()


def _save(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(np.ascontiguousarray(pixels)).save(path)
    return path


def copies(photo: np.ndarray, folder: Path) -> dict[str, Path]:
    """What a platform might receive: re-framed and edited copies, and another photo."""
    height, width = photo.shape[:2]
    boxed = np.zeros((height + 140, width, 3), dtype=np.uint8)
    boxed[70 : 70 + height] = photo
    captioned = Image.new("RGB", (width, height + 90), "white")
    captioned.paste(Image.fromarray(photo), (0, 90))
    ImageDraw.Draw(captioned).text((30, 22), "SHE DOESN'T KNOW", fill="black", font_size=42)
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[int(height * 0.3) : int(height * 0.85), int(width * 0.33) : int(width * 0.67)] = 255
    inpainted = cv2.inpaint(photo, mask, 5, cv2.INPAINT_TELEA)
    captioned.save(folder / "captioned.jpg", quality=90)
    return {
        "cropped": _save(folder / "cropped.png", photo[24:-24, 32:-32]),
        "letterboxed": _save(folder / "letterboxed.png", boxed),
        "captioned": folder / "captioned.jpg",
        "inpainted": _save(folder / "inpainted.png", inpainted),
        "same room": _save(folder / "room.png", scene_rgb(0, figure_x=0.3, figure_seed=77)),
    }


def rempart_match(
    paths: dict[str, Path], url: str, key: str, capsys: pytest.CaptureFixture[str]
) -> dict[str, str]:
    """Run `rempart match` on the copies; the output's last field of each line, by copy."""
    capsys.readouterr()
    client.main(["--url", url, "match", *map(str, paths.values()), "--key", key])
    lines = capsys.readouterr().out.splitlines()
    by_path = {path: name for name, path in ((name, str(path)) for name, path in paths.items())}
    found: dict[str, str] = {}
    for line in lines:
        path, answer = line.split("\t")
        found[by_path[path]] = "no match" if answer == "no match" else answer.split(" ", 4)[-1]
    return found


def register(page: Page, words: Words, photo: Path) -> str:
    page.get_by_role("link", name=words.protect).first.click()
    expect(page.locator("[data-picker][data-ready]")).to_be_attached()
    page.locator("#photos").set_input_files([str(photo)])
    expect(page.locator(".photo.ready")).to_have_count(1, timeout=30_000)
    page.get_by_label(words.intimate).check()
    page.get_by_label(words.depicted).check()
    page.get_by_label(words.rights).check()
    page.locator("#minor").get_by_label(words.minor_no, exact=True).check()
    page.get_by_role("button", name=words.register).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(words.registered)
    secret = page.locator("[data-case-secret]").get_attribute("data-case-secret")
    reference = page.locator("[data-case-reference]").get_attribute("data-case-reference")
    assert secret
    assert reference
    page.get_by_label(words.saved).check()
    page.get_by_role("navigation").get_by_role("link", name=words.my_case).click()
    page.locator("#case-reference-input").fill(reference)
    page.locator("#case-secret-input").fill(secret)
    page.get_by_role("button", name=words.show_case).click()
    return secret


@pytest.mark.parametrize("words", [ENGLISH, FRENCH], ids=["english", "french"])
def test_a_registered_photo_is_caught_reframed_and_edited_until_withdrawn(
    site: SiteOpener,
    live_index: Matcher,
    partner_a: PartnerPersona,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    words: Words,
) -> None:
    photo = scene_rgb(0)
    path = _save(tmp_path / "photo.png", photo)
    page, log = site(locale=words.locale)
    page.goto(log.origin + "/")
    secret = register(page, words, path)
    # The page sent the photo's derived views: the same as the client computes from the file.
    stored = dict(
        ImageHash.objects.exclude(variant__in=DIHEDRAL_VARIANTS).values_list("variant", "value")
    )
    expected = client.hash_file(path, views=True).views
    assert {name: bytes(value).hex() for name, value in stored.items()} == dict(expected)
    live_index.catch_up()

    found = rempart_match(copies(photo, tmp_path), log.origin, partner_a.raw_key, capsys)
    assert {
        name: answer.removesuffix(" match").split(" ")[0] for name, answer in found.items()
    } == {
        "cropped": "reframed",
        "letterboxed": "reframed",
        "captioned": "reframed",
        "inpainted": "regions",
        "same room": "no",
    }
    assert found["inpainted"].split(" ")[1] in {f"{n}/10" for n in range(4, 11)}

    page.get_by_role("button", name=words.withdraw).click()
    page.get_by_role("button", name=words.confirm_withdraw).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(words.stopped)
    assert Case.objects.get().status == Case.Status.WITHDRAWN
    found = rempart_match(copies(photo, tmp_path), log.origin, partner_a.raw_key, capsys)
    assert set(found.values()) == {"no match"}
    assert_private(log, secret)
