"""The browser's derived views (registry/static/registry/derive.js) against registry.derivatives.

Beside the 8 dihedral hashes, a person's browser registers the hashes of re-framed and masked
versions of each photo. A partner's query views only find them if the browser computed the very
views the specification (registry/derivatives.py) defines: these tests run derive.js in Chromium
and require, on identical pixels, the same views in the same order with the same hashes and
qualities, bit for bit, and the same intermediate pixels (working image, refilled masks).
Then a photo registered through the register page must send those views in its request.

The real photographs of tests/photos.py (from pinned packages) are compared too.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from registry import derivatives
from registry.derivatives import (
    ASPECTS,
    MASKS,
    TILES,
    VIEWS,
    WORKING_SIDE,
    aspect_views,
    pdq,
    refill,
    registered_views,
    view_pixels,
    working_image,
)
from registry.pdq import MIN_QUALITY
from registry.pixels import pdq_pixels
from tests import photos
from tests.browser.conftest import SiteOpener, open_page
from tests.images import photo_like_rgb, to_uint8

pytestmark = pytest.mark.browser

Rgb = NDArray[np.uint8]
View = tuple[str, str, int]  # (view, hash in hex, quality)

# RGBA bytes in base64 -> an image {data, width, height} in the page.
IMAGE_JS = """
const image = ([b64, width, height]) => {
  const bytes = atob(b64);
  const data = new Uint8ClampedArray(bytes.length);
  for (let i = 0; i < bytes.length; i++) data[i] = bytes.charCodeAt(i);
  return { data, width, height };
};
"""


@pytest.fixture(scope="module")
def derive_page(browser: Browser, static_server: str) -> Iterator[Page]:
    """A page where `globalThis.derive` is the imported registry/static/registry/derive.js."""
    page = open_page(browser, static_server)
    page.evaluate("async () => { globalThis.derive = await import('/registry/derive.js'); }")
    try:
        yield page
    finally:
        page.context.close()


def payload(rgb: Rgb, seed: int = 0) -> list[Any]:
    """The image as the page receives it: RGBA, with an alpha channel derive.js must ignore."""
    height, width = rgb.shape[:2]
    alpha = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
    rgba = np.ascontiguousarray(np.dstack([rgb, alpha]))
    return [base64.b64encode(rgba.tobytes()).decode("ascii"), width, height]


def browser_views(page: Page, rgb: Rgb, function: str) -> list[View]:
    result = page.evaluate(
        f"(args) => {{ {IMAGE_JS} return derive.{function}(image(args)); }}", payload(rgb)
    )
    return [(item["view"], item["hash"], item["quality"]) for item in result]


def every_view(rgb: Rgb) -> list[View]:
    """Every derived view of the photo, whatever its quality, in registered_views' order."""
    work = working_image(rgb)
    found = [(view.name, *pdq(view_pixels(work, view))) for view in VIEWS]
    height, width = work.shape[:2]
    for name, (x0, y0, x1, y1) in aspect_views(width, height):
        found.append((name, *pdq(work[y0:y1, x0:x1])))
    return [(name, value.hex(), quality) for name, value, quality in found]


def python_views(rgb: Rgb) -> list[View]:
    return [(item.view, item.value.hex(), item.quality) for item in registered_views(rgb)]


def photo(seed: int, height: int, width: int) -> Rgb:
    return to_uint8(photo_like_rgb(np.random.default_rng(seed), height, width))


# (seed, height, width): the seeds give photos of every kind of quality, so that some views are
# kept and others left out: 641x479 keeps 45 of 76, 900 tall keeps 16, 1500x1100 keeps 57.
PHOTOS = [
    (3, 479, 641),  # odd sides
    (2, 1100, 1500),  # over WORKING_SIDE: a working image half the size, one row dropped
    (9, 900, 600),  # portrait
    (1, 1500, 1100),  # portrait over WORKING_SIDE
    (0, 1024, 1025),  # just over: a factor of 2 and the last column dropped
    (6, 200, 300),
    (7, 2100, 1000),  # a factor of 3, the last partial blocks dropped
]


@pytest.mark.parametrize(
    ("seed", "height", "width"), PHOTOS, ids=[f"{w}x{h}" for _, h, w in PHOTOS]
)
def test_the_views_are_those_of_the_specification(
    derive_page: Page, seed: int, height: int, width: int
) -> None:
    """Every view, whatever its quality, and the registered ones: registered_views' list."""
    rgb = photo(seed, height, width)
    ours = browser_views(derive_page, rgb, "derivedViews")
    assert ours == every_view(rgb)
    registered = [view for view in ours if view[2] >= MIN_QUALITY]
    theirs = python_views(rgb)
    print(f"\n{width}x{height}: {len(registered)} of {len(ours)} views registered")
    assert registered == theirs


def test_registered_views_leave_out_views_of_low_quality(derive_page: Page) -> None:
    rgb = photo(3, 479, 641)
    ours = browser_views(derive_page, rgb, "registeredViews")
    assert ours == python_views(rgb)
    assert 0 < len(ours) < len(every_view(rgb))
    assert min(quality for _, _, quality in ours) >= MIN_QUALITY


@pytest.mark.parametrize(
    ("height", "width"), [(5, 5), (37, 53), (64, 64), (8, 300), (300, 8), (6, 2050)]
)
def test_small_and_narrow_photos_give_the_same_views(
    derive_page: Page, height: int, width: int
) -> None:
    rgb = photo(height * width, height, width)
    assert browser_views(derive_page, rgb, "derivedViews") == every_view(rgb)


def test_the_views_and_constants_are_those_of_the_specification(derive_page: Page) -> None:
    """The same view list, names, boxes and masks: a change of a mask box on one side only
    fails here first, by name."""
    ours = derive_page.evaluate(
        """() => ({
          views: derive.VIEWS.map((v) => [v.name, v.kind, [...v.box], v.mask && [...v.mask]]),
          masks: derive.MASKS, tiles: derive.TILES, aspects: derive.ASPECTS,
          side: derive.WORKING_SIDE, minQuality: derive.MIN_QUALITY,
        })"""
    )
    assert ours["views"] == [
        [view.name, view.kind, list(view.box), list(view.mask) if view.mask else None]
        for view in VIEWS
    ]
    assert ours["masks"] == [list(mask) for mask in MASKS]
    assert ours["tiles"] == [list(tile) for tile in TILES]
    assert ours["aspects"] == [list(aspect) for aspect in ASPECTS]
    assert ours["side"] == WORKING_SIDE
    assert ours["minQuality"] == MIN_QUALITY


@pytest.mark.parametrize(
    ("height", "width"), [(1100, 1500), (1025, 1024), (2047, 1025), (3073, 10), (1024, 1024)]
)
def test_working_image_pixels(derive_page: Page, height: int, width: int) -> None:
    rgb = photo(width, height, width)
    result = derive_page.evaluate(
        f"""(args) => {{ {IMAGE_JS}
          const work = derive.workingImage(image(args));
          let b = ""; for (const v of work.data) b += String.fromCharCode(v);
          return [btoa(b), work.width, work.height];
        }}""",
        payload(rgb),
    )
    expected = working_image(rgb)
    assert (result[2], result[1]) == expected.shape[:2]
    rgba = np.frombuffer(base64.b64decode(result[0]), dtype=np.uint8).reshape(result[2], -1, 4)
    if expected.shape[:2] != rgb.shape[:2]:
        assert (rgba[:, :, 3] == 255).all()
    assert np.array_equal(rgba[:, :, :3], expected)


# The masks of the specification, and boxes on every edge: a missing side takes the opposite
# one's pixels, a box spanning the width (or height) has no horizontal (or vertical) blend.
EDGE_MASKS = [
    *MASKS,
    (0, 0, 500, 500),
    (500, 500, 1000, 1000),
    (0, 200, 1000, 800),
    (200, 0, 800, 1000),
    (0, 0, 1000, 400),
    (0, 0, 300, 1000),
    (0, 0, 1000, 1000),
    (400, 400, 400, 600),  # empty
    (990, 990, 1000, 1000),
]


@pytest.mark.parametrize(("height", "width"), [(48, 64), (7, 5), (2, 3), (101, 1)])
def test_refill_pixels_at_the_edges(derive_page: Page, height: int, width: int) -> None:
    rgb = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    results = derive_page.evaluate(
        f"""([args, masks]) => {{ {IMAGE_JS}
          return masks.map((mask) => {{
            const refilled = derive.refill(image(args), mask);
            let b = ""; for (const v of refilled.data) b += String.fromCharCode(v);
            return btoa(b);
          }});
        }}""",
        [payload(rgb), [list(mask) for mask in EDGE_MASKS]],
    )
    for mask, result in zip(EDGE_MASKS, results, strict=True):
        rgba = np.frombuffer(base64.b64decode(result), dtype=np.uint8).reshape(height, width, 4)
        assert np.array_equal(rgba[:, :, :3], refill(rgb, mask)), mask


def test_aspect_crops(derive_page: Page) -> None:
    sizes = [(w, h) for w in range(1, 1025, 37) for h in range(1, 1025, 41)]
    sizes += [(1024, 768), (768, 1024), (1000, 1000), (1024, 576), (800, 1000), (1000, 750)]
    ours = derive_page.evaluate("(sizes) => sizes.map(([w, h]) => derive.aspectViews(w, h))", sizes)
    theirs = [[[name, list(box)] for name, box in aspect_views(w, h)] for w, h in sizes]
    assert ours == theirs


# A 12-megapixel photo built in integers on both sides (4000x3000 RGBA does not travel to the
# page quickly): the time is printed, not asserted.
TWELVE_MP_JS = """
([width, height]) => {
  const data = new Uint8ClampedArray(4 * width * height);
  for (let y = 0, p = 0; y < height; y++) {
    for (let x = 0; x < width; x++, p += 4) {
      const X = x >> 2, Y = y >> 2, noise = ((x * 37 + y * 91) * (x + 3 * y)) % 11;
      data[p] = (((X * X * 3 + Y * Y * 2 + X * Y) >> 11) & 255) ^ noise;
      data[p + 1] = (((X * 7 + Y * 13) >> 2) & 255) ^ noise;
      data[p + 2] = ((((X >> 5) ^ (Y >> 5)) * 17) & 255) ^ noise;
      data[p + 3] = 255;
    }
  }
  const start = performance.now();
  const views = derive.registeredViews({ data, width, height });
  return { ms: performance.now() - start, views };
}
"""


def twelve_megapixels(width: int, height: int) -> Rgb:
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    big_x, big_y = x >> 2, y >> 2
    noise = ((x * 37 + y * 91) * (x + 3 * y)) % 11
    red = ((big_x * big_x * 3 + big_y * big_y * 2 + big_x * big_y) >> 11) & 255
    green = ((big_x * 7 + big_y * 13) >> 2) & 255
    blue = (((big_x >> 5) ^ (big_y >> 5)) * 17) & 255
    return np.dstack([red ^ noise, green ^ noise, blue ^ noise]).astype(np.uint8)


@pytest.mark.slow
def test_a_12_megapixel_photo(derive_page: Page) -> None:
    result = derive_page.evaluate(TWELVE_MP_JS, [4000, 3000])
    ours = [(item["view"], item["hash"], item["quality"]) for item in result["views"]]
    pixels = twelve_megapixels(4000, 3000)
    start = time.perf_counter()
    theirs = python_views(pixels)
    python_ms = (time.perf_counter() - start) * 1000
    print(
        f"\n4000x3000: derive.js {result['ms']:.0f} ms in Chromium "
        f"(registered_views {python_ms:.0f} ms), {len(ours)} views"
    )
    assert ours == theirs
    assert ours


REAL_PHOTOS = ("aloeL", "astronaut", "building", "chelsea", "coffee", "grace_hopper", "quokka")


@pytest.fixture(scope="module")
def real_photos() -> dict[str, np.ndarray]:
    """A few of the real photographs of tests/photos.py (fetched from package registries)."""
    try:
        corpus = photos.load()
    except photos.PhotosUnavailable as error:
        pytest.skip(f"the photo corpus is unavailable: {error}")
    found = {photo.name: photo.rgb for photo in corpus.photos if photo.name in REAL_PHOTOS}
    assert len(found) >= 5, sorted(found)
    # One over the working side for certain, whichever packages could be fetched.
    name, rgb = next(iter(found.items()))
    found[f"{name} x3"] = np.ascontiguousarray(np.repeat(np.repeat(rgb, 3, axis=0), 3, axis=1))
    return found


def test_real_photos(derive_page: Page, real_photos: dict[str, np.ndarray]) -> None:
    """On real photographs, one larger than the working side among them, the browser's views
    are the client's, bit for bit."""
    assert any(max(rgb.shape[:2]) > WORKING_SIDE for rgb in real_photos.values())
    for name, rgb in real_photos.items():
        assert browser_views(derive_page, rgb, "derivedViews") == every_view(rgb), name


def test_the_register_page_sends_the_views_of_each_photo(site: SiteOpener, tmp_path: Path) -> None:
    """The photo's views, computed in the page's worker from the decoded file, reach the
    registry in the registration's body, beside the dihedral hashes: those registered_views gives
    for the same file's pixels (a PNG, which both sides decode to the same pixels)."""
    path = tmp_path / "portrait.png"
    pixels = photo(1, 1500, 1100)
    Image.fromarray(pixels).save(path)
    page, log = site(locale="en-GB")
    page.goto(log.origin + "/register")
    expect(page.locator("[data-picker][data-ready]")).to_be_attached()
    page.locator("#photos").set_input_files([str(path)])
    expect(page.locator(".photo.ready")).to_have_count(1, timeout=20_000)
    page.locator("#scope-intimate").check()
    page.locator("#depicted").check()
    page.locator("#rights").check()
    page.locator("#minor-no").check()
    with page.expect_request("**/register/submit") as sent:
        page.locator("[data-submit]").click()
    expect(page.locator("[data-case-secret]")).to_be_visible()

    body = sent.value.post_data_json
    assert body is not None
    (image,) = body["images"]
    with Image.open(path) as decoded:
        expected = {item.view: item.value.hex() for item in registered_views(pdq_pixels(decoded))}
    assert sorted(image) == ["hashes", "quality", "views"]
    assert len(image["hashes"]) == 8
    assert list(image["views"].items()) == list(expected.items())
    assert len(expected) > 50
    assert set(expected) <= set(derivatives.VIEW_NAMES) | {f"a{w}x{h}" for w, h in ASPECTS}
    assert log.page_errors == []
