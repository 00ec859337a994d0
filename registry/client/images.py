"""Photos on the partner's side: decode as the registry's pages do, compute the PDQ hashes.

A registration carries, beside the 8 dihedral hashes, the photo's derived views (crops, cuts and
masked views: registry.derivatives.registered_views), the same bits as the registry's pages
compute. A match sends each upload's own hash with its query views (borders and caption bands
trimmed, a mirror, small rotations undone, edge cuts, masked regions:
registry.derivatives.query_views).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pdqhash
from PIL import Image

from registry import derivatives
from registry.pdq import InvalidHash, check_bits
from registry.pixels import pdq_pixels


def _sendable(views: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The query views a registry accepts: those whose hash a real image can have."""
    sendable = {}
    for name, value in views:
        try:
            check_bits(bytes.fromhex(value))
        except InvalidHash:
            continue
        sendable[name] = value
    return sendable


@dataclass(frozen=True, slots=True)
class ImageHashes:
    """The PDQ hashes of one image file: its 8 dihedral variants, original first."""

    path: str
    hashes: tuple[str, ...]
    quality: int
    # The derived views registered with the photo (name, hex), when computed.
    views: tuple[tuple[str, str], ...] = ()
    # The views a match call sends beside the original (name, hex), when computed.
    query: tuple[tuple[str, str], ...] = ()

    @property
    def original(self) -> str:
        return self.hashes[0]

    @property
    def unmatchable_reason(self) -> str | None:
        """Why this image cannot be matched (a flat, blank or tiny image), or None if it can.

        The registry refuses such a hash (registry.pdq), and a flat image's hash (quality 0) is
        rounding noise. An image of low but non-zero quality is still matched: a blurred copy of
        a registered photo can be.
        """
        if self.quality == 0:
            return "a flat or tiny image has no PDQ hash worth matching (quality 0)"
        try:
            check_bits(bytes.fromhex(self.original))
        except InvalidHash as error:
            return error.message
        return None


def _hex(vector: np.ndarray[Any, Any]) -> str:
    return np.packbits(vector.astype(np.uint8)).tobytes().hex()


def hash_file(path: str | Path, *, views: bool = False, query: bool = False) -> ImageHashes:
    """Decode an image as the registry's pages do (registry.pixels) and compute its dihedral
    PDQ hashes; with ``views``, the derived views a registration carries; with ``query``, the
    views a match call sends."""
    with Image.open(path) as image:
        pixels = pdq_pixels(image)
    vectors, quality = pdqhash.compute_dihedral(pixels)
    registered = (
        tuple((item.view, item.value.hex()) for item in derivatives.registered_views(pixels))
        if views
        else ()
    )
    asked = (
        tuple(
            (item.view, item.value.hex())
            for item in derivatives.query_views(pixels)
            if item.view != derivatives.WHOLE
        )
        if query
        else ()
    )
    return ImageHashes(
        path=str(path),
        hashes=tuple(_hex(vector) for vector in vectors),
        quality=int(quality),
        views=registered,
        query=asked,
    )
