"""Trimming what a platform adds around a photo before its derived views are computed
(registry.derivatives.query_views): uniform borders of any colour (letterbox, pillarbox,
padding) and white or black caption bands, as a repost or a meme adds them.

Only the partner's side trims: a registered photo is hashed as it is. A trim that is wrong
costs a view, never a false match, but it must not eat into the photo itself: a band is trimmed
only when it ends at a clear edge, which a sky or a wall fading into the photo does not have.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Rgb = NDArray[np.uint8]

BORDER_TOLERANCE = 10  # how far (per channel) a border pixel may stray from the border colour
BORDER_SHARE = 0.99  # the share of a row or column that must be border-coloured
CAPTION_SHARE = 0.6  # a caption band's rows are at least this share of its colour
CAPTION_TEXT_ROWS = 3  # and at least this many of them carry text (under BORDER_SHARE)
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
    count = _uniform_lines(edge, colour, share)
    return count if _ends_sharply(lines, count, colour) else 0


EDGE_CONTRAST = 0.2  # the share of the first line past a band that must differ clearly from it
EDGE_DIFFERENCE = 2 * BORDER_TOLERANCE


def _ends_sharply(lines: NDArray[Any], count: int, colour: NDArray[Any]) -> bool:
    """Whether the band of ``count`` lines ends at a clear edge, as a bar or a caption band
    added around a photo does: a share of the next line differs from the band's colour by
    EDGE_DIFFERENCE or more. A sky or a wall fades into the photo instead, and stays."""
    if count == 0 or count >= len(lines):
        return False
    far = np.abs(lines[count].astype(np.int16) - colour.astype(np.int16)).max(axis=1)
    return bool((far >= EDGE_DIFFERENCE).mean() >= EDGE_CONTRAST)


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
    """Rows at the start of ``lines`` that form a caption band: white or black (as meme captions
    are), mostly of that colour, with text on at least CAPTION_TEXT_ROWS rows, ending where the
    photo begins; 0 when there is none. A sky or a dark background is no caption: its rows
    carry no text, or it is not white or black."""
    if limit <= 4:
        return 0
    colour = np.median(lines[0], axis=0)
    if not (colour.min() >= 225 or colour.max() <= 30):
        return 0
    close = np.abs(lines[:limit].astype(np.int16) - colour.astype(np.int16)).max(axis=2)
    fractions = (close <= BORDER_TOLERANCE).mean(axis=1)
    count = text_rows = 0
    for fraction in fractions:
        if fraction < CAPTION_SHARE:
            break
        count += 1
        text_rows += int(fraction < BORDER_SHARE)
    if count < 4 or text_rows < CAPTION_TEXT_ROWS:
        return 0
    return count if _ends_sharply(lines, count, colour) else 0
