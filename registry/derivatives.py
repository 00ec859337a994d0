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
  sees, so the same mask applied to the edited copy gives nearly the same hash.

A partner hashes an upload, then adds a few views of its own: the upload with uniform borders
and caption bands trimmed, that mirrored, small rotations undone, edge cuts, and the same masks
(``query_views``). ``registry.derivatives.decide`` (also in the client) is the rule that turns
the distances into a decision.

Every registered view is defined in integer arithmetic on a *working image* (the photo reduced
by a whole factor to at most WORKING_SIDE pixels a side, by averaging blocks), so the browser's
module (registry/static/registry/derive.js) computes exactly the same pixels and, with the
project's PDQ port, the same bits. Query views need no such care: only the partner computes them.
Views of PDQ quality under MIN_QUALITY are not registered (a flat wall, a sky).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pdqhash
from numpy.typing import NDArray
from PIL import Image

from registry.pdq import MIN_QUALITY

Rgb = NDArray[np.uint8]

WORKING_SIDE = 1024

REFRAMED = "reframed"
REGIONS = "regions"
WHOLE = "whole"


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

VIEWS = _views()
VIEW_NAMES = tuple(view.name for view in VIEWS)
VIEW_KINDS = {view.name: view.kind for view in VIEWS}

# Centred aspect-ratio crops (width:height), registered when they remove 3-45% of a side.
ASPECTS: tuple[tuple[int, int], ...] = ((1, 1), (4, 5), (9, 16), (16, 9), (4, 3), (3, 4))


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

BORDER_TOLERANCE = 16  # how far (per channel) a border pixel may stray from the border colour
BORDER_SHARE = 0.98  # the share of a row or column that must be border-coloured
CAPTION_SHARE = 0.6  # a caption band's rows are at least this share of one colour
MAX_TRIM = 0.45


def _uniform_lines(lines: NDArray[Any], colour: NDArray[Any], share: float) -> int:
    """How many leading lines (rows of ``lines``) are mostly ``colour``."""
    close = np.abs(lines.astype(np.int16) - colour.astype(np.int16)).max(axis=2) <= BORDER_TOLERANCE
    fractions = close.mean(axis=1)
    count = 0
    for fraction in fractions:
        if fraction < share:
            break
        count += 1
    return count


def _band(lines: NDArray[Any], limit: int, share: float) -> int:
    if limit <= 0:
        return 0
    edge = lines[:limit]
    colour = np.median(edge[0], axis=0)
    return _uniform_lines(edge, colour, share)


def trim_borders(rgb: Rgb) -> Rgb:
    """The image without its uniform borders (letterbox, pillarbox, padding of any colour) and
    caption bands (a band of mostly one colour with text on it, at the top or the bottom)."""
    image = rgb
    for _ in range(4):
        height, width = image.shape[:2]
        top = _band(image, int(height * MAX_TRIM), BORDER_SHARE)
        bottom = _band(image[::-1], int(height * MAX_TRIM), BORDER_SHARE)
        left = _band(image.transpose(1, 0, 2), int(width * MAX_TRIM), BORDER_SHARE)
        right = _band(image.transpose(1, 0, 2)[::-1], int(width * MAX_TRIM), BORDER_SHARE)
        # A caption band: its rows are mostly its background colour; the text is the rest.
        if top == 0:
            top = _caption_band(image, int(height * MAX_TRIM))
        if bottom == 0:
            bottom = _caption_band(image[::-1], int(height * MAX_TRIM))
        if top + bottom + left + right == 0:
            break
        image = image[top : height - bottom, left : width - right]
        if min(image.shape[:2]) < 16:
            return rgb
    return np.ascontiguousarray(image)


def _caption_band(lines: Rgb, limit: int) -> int:
    """Rows at the start of ``lines`` that form a caption band: mostly one colour, with at least
    some text rows, ending where the photo begins; 0 when there is none."""
    if limit <= 4:
        return 0
    colour = np.median(lines[0], axis=0)
    close = np.abs(lines[:limit].astype(np.int16) - colour.astype(np.int16)).max(axis=2)
    fractions = (close <= BORDER_TOLERANCE).mean(axis=1)
    count = 0
    for fraction in fractions:
        if fraction < CAPTION_SHARE:
            break
        count += 1
    return count if count >= 4 else 0


ROTATIONS = (-6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6)
EDGE_CUTS = (("t", 12), ("b", 12), ("t", 24), ("b", 24))


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
    for index, mask in enumerate(MASKS, start=1):
        found.append(QueryHash(f"m{index}", *pdq(refill(base, mask))))
    return [item for item in found if item.quality > 0]


# ---- the decision rule --------------------------------------------------------------------

WHOLE_DISTANCE = 31
REFRAMED_DISTANCE = 31
REGION_DISTANCE = 31
REGIONS_NEEDED = 2


@dataclass(frozen=True, slots=True)
class Decision:
    kind: str
    distance: int
    regions: int = 0
    regions_of: int = 0


def decide(
    pairs: Iterable[tuple[str, str, int]], registered_masks: int = len(MASKS)
) -> Decision | None:
    """The decision for one registered photo against one upload, from (query view, registered
    view, distance) pairs within 31 bits. None means no match.

    - ``whole``: the upload's own hash is within WHOLE_DISTANCE of a dihedral hash;
    - ``reframed``: a full-frame view of the upload (its own hash, trimmed, mirrored, a rotation
      undone, an edge cut) is within REFRAMED_DISTANCE of a dihedral or re-framed view;
    - ``regions``: at least REGIONS_NEEDED masked views agree, each with the same mask on both
      sides (the geometric check: the regions sit at the same place).
    """
    best_whole: int | None = None
    best_reframed: int | None = None
    masks: dict[str, int] = {}
    for query_view, registered_view, distance in pairs:
        registered_kind = VIEW_KINDS.get(registered_view, WHOLE)
        if registered_kind == REGIONS:
            if query_view == registered_view and distance <= REGION_DISTANCE:
                masks[query_view] = min(distance, masks.get(query_view, 256))
            continue
        if query_view in MASK_NAMES:
            continue
        if query_view == WHOLE and registered_kind == WHOLE and distance <= WHOLE_DISTANCE:
            best_whole = distance if best_whole is None else min(best_whole, distance)
        elif distance <= REFRAMED_DISTANCE:
            best_reframed = distance if best_reframed is None else min(best_reframed, distance)
    if best_whole is not None:
        return Decision(WHOLE, best_whole)
    if best_reframed is not None:
        return Decision(REFRAMED, best_reframed)
    if len(masks) >= REGIONS_NEEDED:
        return Decision(REGIONS, min(masks.values()), len(masks), registered_masks)
    return None


def names(items: Sequence[DerivedHash]) -> list[str]:
    return [item.view for item in items]
