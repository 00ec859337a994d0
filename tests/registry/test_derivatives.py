"""The derived views of a photo and the rule that decides on them (registry.derivatives)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from registry import derivatives
from registry.borders import trim_borders
from registry.derivatives import (
    DERIVED_VIEW_NAMES,
    MASK_NAMES,
    MAX_QUERY_VIEWS,
    QUERY_VIEW_NAMES,
    REFRAMED,
    REGIONS,
    TILE_NAMES,
    WHOLE,
    Decision,
    decide,
    query_views,
    refill,
    registered_views,
    working_image,
)
from registry.pdq import DIHEDRAL_VARIANTS, MIN_QUALITY, distance
from tests.images import scene_rgb


def test_the_quality_bar_is_the_registry_s() -> None:
    assert derivatives.MIN_QUALITY == MIN_QUALITY


def test_view_names_are_unique_and_distinct_from_the_dihedral_variants() -> None:
    assert len(set(DERIVED_VIEW_NAMES)) == len(DERIVED_VIEW_NAMES)
    assert not set(DERIVED_VIEW_NAMES) & set(DIHEDRAL_VARIANTS)
    assert len(set(QUERY_VIEW_NAMES)) == len(QUERY_VIEW_NAMES)
    assert WHOLE not in QUERY_VIEW_NAMES


def test_a_photo_registers_at_most_96_hashes_and_an_upload_asks_at_most_64() -> None:
    photo = scene_rgb(0)
    views = registered_views(photo)
    assert len(views) + len(DIHEDRAL_VARIANTS) <= 96
    assert all(view.quality >= MIN_QUALITY for view in views)
    assert [view.view for view in views] == [
        name for name in DERIVED_VIEW_NAMES if name in {view.view for view in views}
    ]
    asked = query_views(photo)
    assert asked[0].view == WHOLE
    assert len(asked) <= 1 + MAX_QUERY_VIEWS
    assert {item.view for item in asked[1:]} <= set(QUERY_VIEW_NAMES)


def test_a_flat_region_is_not_registered() -> None:
    photo = scene_rgb(0)
    photo[: photo.shape[0] // 3] = 128  # a flat wall over the top third
    names = {view.view for view in registered_views(photo)}
    assert not names & {"g1", "g2", "g3"}  # the top guard tiles are flat: quality 0
    assert "c10" in names


def test_the_working_image_is_the_rounded_mean_of_whole_blocks() -> None:
    rng = np.random.default_rng(4)
    photo = rng.integers(0, 256, (2100, 1030, 3), dtype=np.uint8)
    work = working_image(photo)
    assert work.shape == (700, 343, 3)  # factor 3: 2100 / 3, 1030 // 3 (the last column dropped)
    block = photo[3:6, 6:9].astype(np.int64).sum(axis=(0, 1))
    assert work[1, 2].tolist() == ((block + 4) // 9).tolist()
    small = photo[:1024, :1000]
    assert working_image(small) is not None
    assert working_image(small).shape == small.shape


def test_refill_changes_only_the_mask_and_blends_its_edges() -> None:
    photo = np.zeros((10, 10, 3), dtype=np.uint8)
    photo[:, :5] = 100
    photo[:, 5:] = 200
    out = refill(photo, (200, 200, 800, 800))  # pixels 2..7 on both axes
    outside = np.ones((10, 10), dtype=bool)
    outside[2:8, 2:8] = False
    assert (out[outside] == photo[outside]).all()
    # Left neighbour 100, right 200 across 6 pixels; above and below are the columns' own.
    row = out[4, 2:8, 0].tolist()
    assert row == sorted(row)
    assert row[0] > 100
    assert row[-1] < 200


@pytest.mark.parametrize(
    ("colour", "sides"),
    [((0, 0, 0), "tb"), ((255, 255, 255), "tb"), ((20, 40, 200), "lr"), ((128, 128, 128), "all")],
)
def test_uniform_borders_of_any_colour_are_trimmed(
    colour: tuple[int, int, int], sides: str
) -> None:
    photo = scene_rgb(2)
    height, width = photo.shape[:2]
    pad_y = 50 if sides in {"tb", "all"} else 0
    pad_x = 70 if sides in {"lr", "all"} else 0
    framed = np.empty((height + 2 * pad_y, width + 2 * pad_x, 3), dtype=np.uint8)
    framed[:] = colour
    framed[pad_y : pad_y + height, pad_x : pad_x + width] = photo
    trimmed = trim_borders(framed)
    assert abs(trimmed.shape[0] - height) <= 2
    assert abs(trimmed.shape[1] - width) <= 2


def test_a_caption_band_is_trimmed_but_not_a_plain_sky() -> None:
    from PIL import ImageDraw

    photo = scene_rgb(3)
    height, width = photo.shape[:2]
    captioned = Image.new("RGB", (width, height + 80), "white")
    captioned.paste(Image.fromarray(photo), (0, 80))
    ImageDraw.Draw(captioned).text((40, 20), "WHEN SHE SEES IT", fill="black", font_size=40)
    trimmed = trim_borders(np.asarray(captioned))
    assert abs(trimmed.shape[0] - height) <= 2
    sky = photo.copy()
    sky[:120] = np.linspace(150, 190, 120, dtype=np.uint8)[:, None, None]  # a smooth blue-ish sky
    assert trim_borders(sky).shape[0] >= height - 10


def _pairs(registered: list[tuple[str, bytes]], upload: np.ndarray) -> list[tuple[str, str, int]]:
    found = []
    for item in query_views(upload):
        for name, value in registered:
            bits = distance(item.value, value)
            if bits <= 31:
                found.append((item.view, name, bits))
    return found


def _registered(photo: np.ndarray) -> list[tuple[str, bytes]]:
    import pdqhash

    vectors, _ = pdqhash.compute_dihedral(np.ascontiguousarray(photo))
    dihedral = [
        (name, np.packbits(vector.astype(np.uint8)).tobytes())
        for name, vector in zip(DIHEDRAL_VARIANTS, vectors, strict=True)
    ]
    return dihedral + [(view.view, view.value) for view in registered_views(photo)]


def _decide(registered: list[tuple[str, bytes]], upload: np.ndarray) -> Decision | None:
    names = {name for name, _ in registered}
    return decide(
        _pairs(registered, upload),
        registered_masks=len(names & set(MASK_NAMES)),
        registered_tiles=len(names & set(TILE_NAMES)),
    )


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, list[tuple[str, bytes]]]:
    photo = scene_rgb(0)
    return photo, _registered(photo)


def test_the_photo_itself_matches_whole(scene: tuple[np.ndarray, list[tuple[str, bytes]]]) -> None:
    photo, registered = scene
    decision = _decide(registered, photo)
    assert decision is not None
    assert decision.kind == WHOLE


def test_a_crop_and_a_letterbox_match_reframed(
    scene: tuple[np.ndarray, list[tuple[str, bytes]]],
) -> None:
    photo, registered = scene
    height, width = photo.shape[:2]
    cropped = photo[height // 20 : height - height // 20, width // 20 : width - width // 20]
    boxed = np.zeros((height + 120, width, 3), dtype=np.uint8)
    boxed[60 : 60 + height] = photo
    for upload in (cropped, boxed):
        decision = _decide(registered, np.ascontiguousarray(upload))
        assert decision is not None
        assert decision.kind == REFRAMED


def test_a_regenerated_body_matches_regions_and_another_room_photo_does_not(
    scene: tuple[np.ndarray, list[tuple[str, bytes]]],
) -> None:
    import cv2

    photo, registered = scene
    height, width = photo.shape[:2]
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[int(height * 0.3) : int(height * 0.85), int(width * 0.33) : int(width * 0.67)] = 255
    edited = cv2.inpaint(photo, mask, 5, cv2.INPAINT_TELEA)
    decision = _decide(registered, edited)
    assert decision is not None
    assert decision.kind == REGIONS
    assert 2 <= decision.regions <= decision.regions_of
    # The same room, the person elsewhere and dressed otherwise: another photo.
    for figure_x, figure_seed in ((0.3, 77), (0.42, 5), (0.7, None)):
        other = scene_rgb(0, figure_x=figure_x, figure_seed=figure_seed)
        assert _decide(registered, other) is None
    assert _decide(registered, scene_rgb(1)) is None


def test_the_rule_needs_two_masks_and_every_guard_tile() -> None:
    masks = [("m1", "m1", 4), ("m3", "m3", 6)]
    tiles = [("g1", "g1", 2), ("g4", "g4", 8)]
    assert decide(masks + tiles, registered_masks=5, registered_tiles=2) == Decision(
        REGIONS, 4, 4, 7
    )
    assert decide(masks[:1] + tiles, registered_masks=5, registered_tiles=2) is None
    assert decide(masks + tiles[:1], registered_masks=5, registered_tiles=2) is None
    # Too few guard tiles to check (a photo with a flat top and sides): no regions match.
    assert decide(masks + tiles[:1], registered_masks=5, registered_tiles=1) is None
    # Another mask's or tile's view never counts: the regions must sit at the same place.
    assert decide([("m1", "m2", 0), ("m3", "m4", 0), *tiles], 5, 2) is None
    # A trimmed family and a plain family are not mixed.
    assert decide([("m1", "m1", 0), ("tm3", "m3", 0), *tiles], 5, 2) is None
    assert decide([("tm1", "m1", 0), ("tm3", "m3", 0), ("tg1", "g1", 0), ("tg4", "g4", 0)], 5, 2)


def test_whole_comes_first_and_a_derived_pair_is_reframed() -> None:
    assert decide([("whole", "original", 30), ("trimmed", "original", 2)]) == Decision(WHOLE, 30)
    assert decide([("whole", "c10", 12)]) == Decision(REFRAMED, 12)
    assert decide([("rot+2c", "rot90", 20)]) == Decision(REFRAMED, 20)
    assert decide([("whole", "original", 32)]) is None
