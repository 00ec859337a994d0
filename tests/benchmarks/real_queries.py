"""The real-hash benchmark data set: a prefix of the real pool (tests/benchmarks/real_hashes.py),
real edits of its windows as planted near-duplicates and near queries, held-out photos as
unrelated queries.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from tests import photos
from tests.benchmarks.datasets import HASH_BYTES, Dataset
from tests.benchmarks.real_hashes import (
    PLANTED_FRACTION,
    Hashes,
    Pool,
    Rgb,
    Source,
    dihedral_bytes,
    window_pixels,
)

__all__ = [
    "EDITS",
    "PLANTED_FRACTION",
    "NotEnoughRealHashes",
    "edit",
    "edited_hashes",
    "real_dataset",
]

EDITS = ("jpeg", "resize", "crop", "brightness")


def edit(pixels: Rgb, kind: str, rng: np.random.Generator) -> Rgb:
    """A real edit of RGB pixels: JPEG at quality 30-90, resizing to 40-90 %, a crop of 1-4 %
    off each side, or brightness and contrast moved by up to 20 %."""
    height, width = pixels.shape[:2]
    if kind == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=int(rng.integers(30, 91)))
        with Image.open(buffer) as image:
            return photos.to_rgb(image)
    if kind == "resize":
        factor = rng.uniform(0.4, 0.9)
        size = (max(8, round(width * factor)), max(8, round(height * factor)))
        return np.ascontiguousarray(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA))
    if kind == "crop":
        top, bottom = (int(height * rng.uniform(0.01, 0.04)) for _ in range(2))
        left, right = (int(width * rng.uniform(0.01, 0.04)) for _ in range(2))
        return np.ascontiguousarray(pixels[top : height - bottom, left : width - right])
    if kind == "brightness":
        gain, offset = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
        moved = pixels.astype(np.float32) * np.float32(gain) + np.float32(offset)
        return np.clip(np.round(moved), 0, 255).astype(np.uint8)
    raise ValueError(f"unknown edit {kind!r}")


def edited_hashes(
    real: Pool, sources: Sequence[Source], rows: NDArray[np.int64], rng: np.random.Generator
) -> tuple[Hashes, list[str]]:
    """For each pool row, the hash of a random real edit of its window, in the row's variant."""
    by_name = {source.name: source for source in sources}
    out = np.empty((rows.shape[0], HASH_BYTES), np.uint8)
    kinds: list[str] = []
    for k, row in enumerate(rows.tolist()):
        source = by_name[real.names[int(real.source[row])]]
        pixels = window_pixels(source.rgb, real.box[row], real.scaled[row])
        kind = EDITS[int(rng.integers(len(EDITS)))]
        variants, _ = dihedral_bytes(edit(pixels, kind, rng))
        out[k] = variants[int(real.variant[row])]
        kinds.append(kind)
    return out, kinds


class NotEnoughRealHashes(ValueError):  # noqa: N818 - reads as what the caller is told
    """The pool holds fewer hashes than the size asked for."""


def real_dataset(
    n: int, queries: int, seed: int = 0, *, real: Pool, sources: Sequence[Source]
) -> tuple[Dataset, NDArray[np.int64]]:
    """A data set of the first ``n`` pool hashes and its queries, and each near query's
    distance to the hash it is an edit of.

    PLANTED_FRACTION of the stored hashes are replaced by real edits of other stored hashes;
    half the queries are real edits of stored hashes (their distance may exceed 31: an edit that
    PDQ does not survive), the rest hashes of the held-out photos. Raises NotEnoughRealHashes
    when the pool is smaller than ``n`` or has too few held-out hashes.
    """
    near = queries // 2
    if n > len(real) or n < 2:
        raise NotEnoughRealHashes(f"the real pool holds {len(real):,} hashes, not {n:,}")
    if queries - near > real.held_out.shape[0]:
        raise NotEnoughRealHashes(f"only {real.held_out.shape[0]:,} held-out hashes")
    rng = np.random.default_rng([seed, 5])
    hashes = real.hashes[:n].copy()
    planted = int(n * PLANTED_FRACTION)
    order = rng.permutation(n)
    targets, originals = order[:planted], order[planted : 2 * planted]
    hashes[targets], _ = edited_hashes(real, sources, originals, rng)
    untouched = order[2 * planted :] if n > 2 * planted + near else order[planted:]
    near_rows = rng.choice(untouched, size=near, replace=untouched.shape[0] < near)
    near_queries, _ = edited_hashes(real, sources, near_rows, rng)
    unrelated = real.held_out[rng.choice(real.held_out.shape[0], queries - near, replace=False)]
    distances = np.bitwise_count(near_queries ^ real.hashes[near_rows]).sum(axis=1)
    ids = rng.permutation(np.arange(n, dtype=np.int64) * 7 + 1_000_000)
    data = Dataset("real", ids, hashes, np.concatenate([near_queries, unrelated]), near)
    return data, distances.astype(np.int64)
