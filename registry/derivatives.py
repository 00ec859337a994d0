"""Derived PDQ views of a photo: what is registered beside the 8 dihedral hashes, and what a
partner's query adds to its upload's own hash.

A PDQ hash describes the whole frame, so a registered photo that is cropped by a few percent,
letterboxed, captioned or edited in part moves past the match distance. The registry therefore
registers more *views* of each photo, computed on the person's device from the same pixels:

- **re-framings** (kind ``reframed``): centred crops in 2% steps up to 30% of each side, the
  common aspect-ratio crops, corner crops, and cuts of a band at the top, bottom, left or right
  (where a caption or a sticker usually goes);
- **masked views** (kind ``regions``): the photo with one fixed region refilled smoothly from the
  pixels around it. An edit inside the region (a regenerated body) changes nothing the masked view
  sees, so the same mask applied to the edited copy gives nearly the same hash;
- **guard tiles** (kind ``regions`` too): small crops of the top band, where the face is, and of
  the far sides, where a body edit does not reach. A regions match needs every guard tile to
  agree as well, so that another photo of the same place, with the person elsewhere, does not
  match through masks that hide the difference.

A partner hashes an upload, then adds a few views of its own: the upload with uniform borders
and caption bands trimmed (registry.borders), that mirrored, small rotations undone, edge cuts,
and the same masks and tiles (``query_views``). ``registry.derivatives.decide`` (also in the
client) is the rule that turns the distances into a decision.

Every registered view is defined in integer arithmetic on a *working image* (the photo reduced
by a whole factor to at most WORKING_SIDE pixels a side, by averaging blocks), so the browser's
module (registry/static/registry/derive.js) computes exactly the same pixels and, with the
project's PDQ port, the same bits. Query views need no such care: only the partner computes them.
Views of PDQ quality under MIN_QUALITY are not registered (a flat wall, a sky).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pdqhash
from numpy.typing import NDArray
from PIL import Image

from registry.borders import trim_borders

Rgb = NDArray[np.uint8]

WORKING_SIDE = 1024
# Views of lower PDQ quality are not registered: registry.pdq.MIN_QUALITY, the bar for a photo
# (not imported: registry.pdq validates view names from this module).
MIN_QUALITY = 50

REFRAMED = "reframed"
REGIONS = "regions"
WHOLE = "whole"
# What a match says matched, in /match answers and the sync feed's hashes.
MATCH_KINDS = (WHOLE, REFRAMED, REGIONS)


@dataclass(frozen=True, slots=True)
class View:
    """One registered view: a crop box and an optional masked region, in thousandths of the
    working image's width and height (left, top, right, bottom). The mask box is relative to the
    crop."""

    name: str
    kind: str
    box: tuple[int, int, int, int]
    mask: tuple[int, int, int, int] | None = None


def _views() -> tuple[View, ...]:
    views: list[View] = []
    for percent in range(2, 31, 2):
        half = percent * 5  # thousandths removed from each side
        views.append(View(f"c{percent:02d}", REFRAMED, (half, half, 1000 - half, 1000 - half)))
    for percent in range(2, 21, 2):
        cut = percent * 10
        views.append(View(f"tl{percent:02d}", REFRAMED, (cut, cut, 1000, 1000)))
        views.append(View(f"tr{percent:02d}", REFRAMED, (0, cut, 1000 - cut, 1000)))
        views.append(View(f"bl{percent:02d}", REFRAMED, (cut, 0, 1000, 1000 - cut)))
        views.append(View(f"br{percent:02d}", REFRAMED, (0, 0, 1000 - cut, 1000 - cut)))
    for percent in (6, 12, 18, 24):
        cut = percent * 10
        views.append(View(f"t{percent:02d}", REFRAMED, (0, cut, 1000, 1000)))
        views.append(View(f"b{percent:02d}", REFRAMED, (0, 0, 1000, 1000 - cut)))
    for percent in (8, 16):
        cut = percent * 10
        views.append(View(f"l{percent:02d}", REFRAMED, (cut, 0, 1000, 1000)))
        views.append(View(f"r{percent:02d}", REFRAMED, (0, 0, 1000 - cut, 1000)))
    for index, mask in enumerate(MASKS, start=1):
        views.append(View(f"m{index}", REGIONS, (0, 0, 1000, 1000), mask))
    for index, tile in enumerate(TILES, start=1):
        views.append(View(f"g{index}", REGIONS, tile))
    return tuple(views)


# The masked regions: where an edit of the body usually falls in a portrait or a full-length
# photo (centre, lower centre, a tall central band, a wide one).
MASKS: tuple[tuple[int, int, int, int], ...] = (
    (170, 170, 830, 830),
    (240, 100, 760, 940),
    (150, 100, 850, 950),
    (200, 60, 800, 1000),
    (100, 150, 900, 900),
)
MASK_NAMES = tuple(f"m{index}" for index in range(1, len(MASKS) + 1))

# The guard tiles: small regions where a body edit does not reach (the top band, with the face,
# and the far sides). A masked view is blind to what its mask covers and PDQ is coarse, so two
# photos of one room with the person elsewhere can agree on every mask; a tile sees the head or
# the arm that moved. A regions match needs every guard tile of the photo to agree.
TILES: tuple[tuple[int, int, int, int], ...] = (
    (0, 0, 400, 230),
    (300, 0, 700, 230),
    (600, 0, 1000, 230),
    (0, 250, 190, 800),
    (810, 250, 1000, 800),
)
TILE_NAMES = tuple(f"g{index}" for index in range(1, len(TILES) + 1))

VIEWS = _views()
VIEW_NAMES = tuple(view.name for view in VIEWS)
VIEW_KINDS = {view.name: view.kind for view in VIEWS}

# Centred aspect-ratio crops (width:height), registered when they remove 3-45% of a side.
ASPECTS: tuple[tuple[int, int], ...] = ((1, 1), (4, 5), (9, 16), (16, 9), (4, 3), (3, 4))
ASPECT_NAMES = tuple(f"a{width}x{height}" for width, height in ASPECTS)

# Every derived view a photo may register, and its kind.
DERIVED_VIEW_NAMES: tuple[str, ...] = VIEW_NAMES + ASPECT_NAMES
DERIVED_VIEW_KINDS: dict[str, str] = {**VIEW_KINDS, **dict.fromkeys(ASPECT_NAMES, REFRAMED)}


def working_image(rgb: Rgb) -> Rgb:
    """The photo reduced by the smallest whole factor that brings both sides to WORKING_SIDE or
    less, each output pixel the rounded mean of a factor-by-factor block (the last partial
    blocks are dropped)."""
    height, width = rgb.shape[:2]
    factor = max(1, -(-max(height, width) // WORKING_SIDE))
    if factor == 1:
        return np.ascontiguousarray(rgb)
    rows, cols = height // factor, width // factor
    blocks = rgb[: rows * factor, : cols * factor].astype(np.uint32)
    sums = blocks.reshape(rows, factor, cols, factor, 3).sum(axis=(1, 3))
    area = factor * factor
    return np.ascontiguousarray(((sums + area // 2) // area).astype(np.uint8))


def crop_bounds(size: int, start: int, end: int) -> tuple[int, int]:
    """Pixel bounds [first, last) of the span start..end (thousandths) of ``size`` pixels."""
    return size * start // 1000, size * end // 1000


def refill(rgb: Rgb, mask: tuple[int, int, int, int]) -> Rgb:
    """A copy with the mask box refilled from the pixels around it: each pixel the mean of a
    horizontal blend of the pixels just left and right of the box on its row and a vertical blend
    of those just above and below on its column (an edge of the image stands in for a missing
    side), in integer arithmetic."""
    height, width = rgb.shape[:2]
    x0, x1 = crop_bounds(width, mask[0], mask[2])
    y0, y1 = crop_bounds(height, mask[1], mask[3])
    out = rgb.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    source = rgb.astype(np.int64)
    left = source[y0:y1, x0 - 1] if x0 > 0 else source[y0:y1, x1] if x1 < width else None
    right = source[y0:y1, x1] if x1 < width else left
    top = source[y0 - 1, x0:x1] if y0 > 0 else source[y1, x0:x1] if y1 < height else None
    bottom = source[y1, x0:x1] if y1 < height else top
    span_x, span_y = x1 - x0 + 1, y1 - y0 + 1
    wx = np.arange(1, x1 - x0 + 1, dtype=np.int64)[None, :, None]
    wy = np.arange(1, y1 - y0 + 1, dtype=np.int64)[:, None, None]
    parts = []
    if left is not None and right is not None:
        parts.append((left[:, None, :] * (span_x - wx) + right[:, None, :] * wx) // span_x)
    if top is not None and bottom is not None:
        parts.append((top[None, :, :] * (span_y - wy) + bottom[None, :, :] * wy) // span_y)
    if not parts:
        return out
    fill = parts[0] if len(parts) == 1 else (parts[0] + parts[1]) // 2
    out[y0:y1, x0:x1] = fill.astype(np.uint8)
    return out


def view_pixels(work: Rgb, view: View) -> Rgb:
    height, width = work.shape[:2]
    x0, x1 = crop_bounds(width, view.box[0], view.box[2])
    y0, y1 = crop_bounds(height, view.box[1], view.box[3])
    pixels = work[y0:y1, x0:x1]
    if view.mask is not None:
        pixels = refill(pixels, view.mask)
    return np.ascontiguousarray(pixels)


def aspect_views(width: int, height: int) -> list[tuple[str, tuple[int, int, int, int]]]:
    """The centred aspect-ratio crops of a working image of this size, as pixel boxes."""
    found = []
    for aw, ah in ASPECTS:
        if width * ah > height * aw:  # too wide: cut the sides
            keep = height * aw // ah
            removed = (width - keep) * 1000 // width
            x0 = (width - keep) // 2
            box = (x0, 0, x0 + keep, height)
        else:
            keep = width * ah // aw
            removed = (height - keep) * 1000 // height
            y0 = (height - keep) // 2
            box = (0, y0, width, y0 + keep)
        if 30 <= removed <= 450:
            found.append((f"a{aw}x{ah}", box))
    return found


def pdq(pixels: Rgb) -> tuple[bytes, int]:
    """The PDQ hash (32 bytes) and quality of RGB pixels; an empty view's is zero, quality 0."""
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        return bytes(32), 0
    vector, quality = pdqhash.compute(np.ascontiguousarray(pixels))
    return np.packbits(vector.astype(np.uint8)).tobytes(), int(quality)


@dataclass(frozen=True, slots=True)
class DerivedHash:
    view: str
    kind: str
    value: bytes
    quality: int


def registered_views(rgb: Rgb) -> list[DerivedHash]:
    """The derived hashes registered for a photo (beside its dihedral hashes), those of quality
    MIN_QUALITY or more, in VIEWS order then the aspect crops."""
    work = working_image(rgb)
    found = []
    for view in VIEWS:
        value, quality = pdq(view_pixels(work, view))
        if quality >= MIN_QUALITY:
            found.append(DerivedHash(view.name, view.kind, value, quality))
    height, width = work.shape[:2]
    for name, (x0, y0, x1, y1) in aspect_views(width, height):
        value, quality = pdq(work[y0:y1, x0:x1])
        if quality >= MIN_QUALITY:
            found.append(DerivedHash(name, REFRAMED, value, quality))
    return found


# ---- the partner's side -------------------------------------------------------------------

ROTATIONS = (-6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6)
EDGE_CUTS = (("t", 12), ("b", 12), ("t", 24), ("b", 24))
MAX_QUERY_VIEWS = 63  # beside the upload's own hash: 64 hashes an upload at most

# Every view a partner's query may carry beside the upload's own hash.
QUERY_VIEW_NAMES: tuple[str, ...] = (
    "trimmed",
    "mirror",
    *(f"rot{degrees:+d}{form}" for degrees in ROTATIONS for form in ("c", "e")),
    *(f"cut-{side}{percent:02d}" for side, percent in EDGE_CUTS),
    *MASK_NAMES,
    *TILE_NAMES,
    *(f"t{name}" for name in (*MASK_NAMES, *TILE_NAMES)),
)


def inner_scale(width: int, height: int, degrees: float) -> float:
    """The scale of the largest centred box of the image's aspect ratio that a rotation by
    ``degrees`` keeps free of empty corners."""
    angle = math.radians(abs(degrees))
    cos, sin = math.cos(angle), math.sin(angle)
    return min(width / (width * cos + height * sin), height / (width * sin + height * cos))


def centred_box(width: int, height: int, scale: float) -> tuple[int, int, int, int]:
    keep_w, keep_h = round(width * scale), round(height * scale)
    x0, y0 = (width - keep_w) // 2, (height - keep_h) // 2
    return x0, y0, x0 + keep_w, y0 + keep_h


def ladder_scale(scale: float) -> float:
    """The largest scale of the registered centred-crop ladder (2% steps) at or under ``scale``."""
    percent = max(2, min(30, 2 * math.ceil((1 - scale) * 50 - 1e-9)))
    return 1 - percent / 100


def unrotated(rgb: Rgb, degrees: float, *, corners_cropped: bool) -> Rgb:
    """The upload turned back by ``degrees`` and cut to a rung of the registered crop ladder,
    under one of two hypotheses: the upload was rotated and cut to the box without empty corners
    (``corners_cropped``), or rotated with its corners left empty."""
    height, width = rgb.shape[:2]
    turned = np.asarray(Image.fromarray(rgb).rotate(-degrees, resample=Image.Resampling.BICUBIC))
    inner = inner_scale(width, height, degrees)
    # What the turned-back upload still holds of the photo, as a share of the photo's side.
    held = inner * inner if corners_cropped else inner
    # The upload is a share `inner` of the photo when its corners were cropped.
    frame = inner if corners_cropped else 1.0
    x0, y0, x1, y1 = centred_box(width, height, ladder_scale(held) / frame)
    return np.ascontiguousarray(turned[y0:y1, x0:x1])


@dataclass(frozen=True, slots=True)
class QueryHash:
    view: str
    value: bytes
    quality: int


def query_views(rgb: Rgb) -> list[QueryHash]:
    """A partner's hashes of one upload: its own hash (view ``whole``) first, then the views the
    rule compares with registered views, at most 64 in all. Views of quality 0 are dropped."""
    found = [QueryHash(WHOLE, *pdq(rgb))]
    work = working_image(rgb)
    trimmed = trim_borders(work)
    base = trimmed
    if trimmed.shape != work.shape:
        found.append(QueryHash("trimmed", *pdq(trimmed)))
    found.append(QueryHash("mirror", *pdq(base[:, ::-1])))
    for degrees in ROTATIONS:
        for cropped in (True, False):
            pixels = unrotated(base, degrees, corners_cropped=cropped)
            found.append(QueryHash(f"rot{degrees:+d}{'c' if cropped else 'e'}", *pdq(pixels)))
    for side, percent in EDGE_CUTS:
        cut = percent * 10
        box = {"t": (0, cut, 1000, 1000), "b": (0, 0, 1000, 1000 - cut)}[side]
        view = View(f"{side}{percent:02d}", REFRAMED, box)
        found.append(QueryHash(f"cut-{view.name}", *pdq(view_pixels(base, view))))
    # The regions, of the working image as it is and, when borders were trimmed, of the rest.
    for prefix, image in (("", work), ("t", trimmed if trimmed.shape != work.shape else None)):
        if image is None:
            continue
        for name, mask in zip(MASK_NAMES, MASKS, strict=True):
            found.append(QueryHash(prefix + name, *pdq(refill(image, mask))))
        for name, tile in zip(TILE_NAMES, TILES, strict=True):
            view = View(name, REGIONS, tile)
            found.append(QueryHash(prefix + name, *pdq(view_pixels(image, view))))
    return [item for item in found if item.quality > 0]


# ---- the decision rule --------------------------------------------------------------------

WHOLE_DISTANCE = 31
REFRAMED_DISTANCE = 31
REGION_DISTANCE = 31
TILE_DISTANCE = 31
REGIONS_NEEDED = 2
TILES_NEEDED = 2


@dataclass(frozen=True, slots=True)
class Decision:
    kind: str
    distance: int
    regions: int = 0
    regions_of: int = 0


def decide(
    pairs: Iterable[tuple[str, str, int]],
    registered_masks: int = len(MASKS),
    registered_tiles: int = len(TILES),
) -> Decision | None:
    """The decision for one registered photo against one upload, from (query view, registered
    view, distance) pairs within 31 bits, and how many masked views and guard tiles the photo
    holds. None means no match.

    - ``whole``: the upload's own hash is within WHOLE_DISTANCE of a dihedral hash;
    - ``reframed``: a full-frame view of the upload (its own hash, trimmed, mirrored, a rotation
      undone, an edge cut) is within REFRAMED_DISTANCE of a dihedral or re-framed view;
    - ``regions``: at least REGIONS_NEEDED masked views agree, each with the same mask on both
      sides, and so does every guard tile the photo holds (at least TILES_NEEDED), each with the
      same tile: the geometric check, the matched regions sit where the photo's regions sit.
      ``regions`` counts the masks and tiles that agreed, of the photo's masks and tiles.
    """
    best_whole: int | None = None
    best_reframed: int | None = None
    # Region evidence per family: the upload as it is (""), and with its borders trimmed ("t").
    masks: dict[str, dict[str, int]] = {"": {}, "t": {}}
    tiles: dict[str, dict[str, int]] = {"": {}, "t": {}}
    for query_view, registered_view, distance in pairs:
        registered_kind = DERIVED_VIEW_KINDS.get(registered_view, WHOLE)
        family, region = region_of(query_view)
        if registered_kind == REGIONS:
            if region != registered_view:
                continue
            found = masks if region in MASK_NAMES else tiles
            limit = REGION_DISTANCE if region in MASK_NAMES else TILE_DISTANCE
            if distance <= limit:
                found[family][region] = min(distance, found[family].get(region, 256))
            continue
        if region is not None:
            continue
        if query_view == WHOLE and registered_kind == WHOLE and distance <= WHOLE_DISTANCE:
            best_whole = distance if best_whole is None else min(best_whole, distance)
        elif distance <= REFRAMED_DISTANCE:
            best_reframed = distance if best_reframed is None else min(best_reframed, distance)
    if best_whole is not None:
        return Decision(WHOLE, best_whole)
    if best_reframed is not None:
        return Decision(REFRAMED, best_reframed)
    best: Decision | None = None
    for family in ("", "t"):
        agreed_masks, agreed_tiles = masks[family], tiles[family]
        if (
            len(agreed_masks) >= REGIONS_NEEDED
            and registered_tiles >= TILES_NEEDED
            and len(agreed_tiles) >= registered_tiles
        ):
            decision = Decision(
                REGIONS,
                min(agreed_masks.values()),
                len(agreed_masks) + len(agreed_tiles),
                registered_masks + registered_tiles,
            )
            if best is None or decision.regions > best.regions:
                best = decision
    return best


_REGION_NAMES = frozenset((*MASK_NAMES, *TILE_NAMES))


def region_of(query_view: str) -> tuple[str, str | None]:
    """A query view's family ("" or "t" for trimmed) and region name, or region None."""
    if query_view in _REGION_NAMES:
        return "", query_view
    if query_view.startswith("t") and query_view[1:] in _REGION_NAMES:
        return "t", query_view[1:]
    return "", None
