"""Every registered hash against every query hash, vectorised, and the rule on what is close.

Hashes are rows of 32 bytes, viewed as 4 uint64 words; a distance is the popcount of the XOR
(``np.bitwise_count``). For each (query image, registered photo) the benchmark keeps three
distances, the margins of the rule's three ways to match, and hands the pairs within
MATCH_DISTANCE to ``registry.derivatives.decide``, the rule itself:

- ``whole``: the upload's own hash to the closest of the photo's 8 dihedral hashes;
- ``frame``: the closest full-frame query view (its own hash, trimmed, mirrored, a rotation
  undone, an edge cut) to a dihedral or re-framed view;
- ``regions``: the second-closest masked view, each compared with the same mask registered
  (the rule wants two of them).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from registry import derivatives
from registry.pdq import DIHEDRAL_VARIANTS, MATCH_DISTANCE

FAR = 256
Hashes = list[tuple[str, bytes]]  # (view name, 32 bytes)


def pack(rows: Sequence[bytes]) -> NDArray[np.uint64]:
    array = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), 32)
    return np.ascontiguousarray(array).view(np.uint64)


def distances(queries: NDArray[np.uint64], registered: NDArray[np.uint64]) -> NDArray[np.uint16]:
    out = np.zeros((len(queries), len(registered)), np.uint16)
    for word in range(4):
        out += np.bitwise_count(queries[:, word, None] ^ registered[None, :, word])
    return out


@dataclass(frozen=True, slots=True)
class Side:
    """Hash rows of several images (or photos), grouped: ``owner[i]`` is row i's image."""

    words: NDArray[np.uint64]
    owner: NDArray[np.intp]
    views: tuple[str, ...]
    count: int  # how many images

    @classmethod
    def of(cls, images: Sequence[Hashes]) -> Side:
        views, values, owner = [], [], []
        for index, hashes in enumerate(images):
            for view, value in hashes:
                views.append(view)
                values.append(value)
                owner.append(index)
        return cls(pack(values), np.array(owner, np.intp), tuple(views), len(images))


def registered_hashes(
    dihedral: Sequence[bytes], derived: Sequence[derivatives.DerivedHash]
) -> Hashes:
    return [
        *zip(DIHEDRAL_VARIANTS, dihedral, strict=True),
        *((item.view, item.value) for item in derived),
    ]


def _group_min(
    matrix: NDArray[np.uint16],
    rows: NDArray[np.intp],
    cols: NDArray[np.intp],
    shape: tuple[int, int],
) -> NDArray[np.uint16]:
    """The minimum of ``matrix`` over each (row owner, column owner) block; owners sorted."""
    out = np.full(shape, FAR, np.uint16)
    if matrix.size == 0:
        return out
    row_starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    col_starts = np.flatnonzero(np.r_[True, cols[1:] != cols[:-1]])
    reduced = np.minimum.reduceat(
        np.minimum.reduceat(matrix, row_starts, axis=0), col_starts, axis=1
    )
    out[np.ix_(rows[row_starts], cols[col_starts])] = reduced
    return out


@dataclass(frozen=True, slots=True)
class Margins:
    whole: NDArray[np.uint16]  # (images, photos)
    frame: NDArray[np.uint16]
    regions: NDArray[np.uint16]  # the second-closest same-mask distance


@dataclass(frozen=True, slots=True)
class Outcome:
    margins: Margins
    decisions: dict[tuple[int, int], derivatives.Decision]  # (image, photo) -> a match
    closest: dict[tuple[int, int], tuple[str, str, int]]  # the closest pair of its kind


def compare(queries: Side, registered: Side, *, chunk_rows: int = 2400) -> Outcome:
    """Every query image against every registered photo, in chunks of query rows."""
    shape = (queries.count, registered.count)
    whole = np.full(shape, FAR, np.uint16)
    frame = np.full(shape, FAR, np.uint16)
    masks = np.full((len(derivatives.MASK_NAMES), *shape), FAR, np.uint16)
    registered_views = np.array(registered.views)
    registered_kind = np.array(
        [derivatives.DERIVED_VIEW_KINDS.get(view, derivatives.WHOLE) for view in registered.views]
    )
    whole_cols = np.flatnonzero(registered_kind == derivatives.WHOLE)
    frame_cols = np.flatnonzero(registered_kind != derivatives.REGIONS)
    query_views = np.array(queries.views)
    pairs: dict[tuple[int, int], list[tuple[str, str, int]]] = defaultdict(list)
    # Chunks end at an image's last row, so that no image is split.
    bounds = [0]
    while bounds[-1] < len(query_views):
        end = min(bounds[-1] + chunk_rows, len(query_views))
        while end < len(query_views) and queries.owner[end] == queries.owner[end - 1]:
            end += 1
        bounds.append(end)
    for start, end in itertools.pairwise(bounds):
        block = distances(queries.words[start:end], registered.words)
        owner = queries.owner[start:end]
        views = query_views[start:end]
        is_whole = np.flatnonzero(views == derivatives.WHOLE)
        is_frame = np.flatnonzero(~np.isin(views, REGION_QUERY_VIEWS))
        whole = np.minimum(
            whole,
            _group_min(
                block[np.ix_(is_whole, whole_cols)],
                owner[is_whole],
                registered.owner[whole_cols],
                shape,
            ),
        )
        frame = np.minimum(
            frame,
            _group_min(
                block[np.ix_(is_frame, frame_cols)],
                owner[is_frame],
                registered.owner[frame_cols],
                shape,
            ),
        )
        for index, mask in enumerate(derivatives.MASK_NAMES):
            rows = np.flatnonzero(views == mask)
            cols = np.flatnonzero(registered_views == mask)
            if len(rows) and len(cols):
                masks[index][np.ix_(owner[rows], registered.owner[cols])] = block[
                    np.ix_(rows, cols)
                ]
        for row, col in zip(*np.nonzero(block <= MATCH_DISTANCE), strict=True):
            key = (int(owner[row]), int(registered.owner[col]))
            pairs[key].append((str(views[row]), str(registered_views[col]), int(block[row, col])))
    regions = np.sort(masks, axis=0)[1]
    decisions = {}
    closest = {}
    held = registered_region_counts(registered)
    for key, found in pairs.items():
        masks_held, tiles_held = held[key[1]]
        decision = derivatives.decide(
            found, registered_masks=masks_held, registered_tiles=tiles_held
        )
        if decision is not None:
            decisions[key] = decision
            closest[key] = min(
                (pair for pair in found if _of_kind(pair, decision.kind)), key=lambda pair: pair[2]
            )
    return Outcome(Margins(whole, frame, regions), decisions, closest)


REGION_QUERY_VIEWS = [
    name for name in derivatives.QUERY_VIEW_NAMES if derivatives.region_of(name)[1] is not None
]


def registered_region_counts(registered: Side) -> list[tuple[int, int]]:
    """For each registered photo, how many masked views and guard tiles it holds."""
    counts = [[0, 0] for _ in range(registered.count)]
    for view, owner in zip(registered.views, registered.owner.tolist(), strict=True):
        if view in derivatives.MASK_NAMES:
            counts[owner][0] += 1
        elif view in derivatives.TILE_NAMES:
            counts[owner][1] += 1
    return [(masks, tiles) for masks, tiles in counts]


def _of_kind(pair: tuple[str, str, int], kind: str) -> bool:
    """Whether a (query view, registered view, distance) pair can make a decision of ``kind``."""
    query_view, registered_view, _ = pair
    registered_kind = derivatives.DERIVED_VIEW_KINDS.get(registered_view, derivatives.WHOLE)
    region = derivatives.region_of(query_view)[1]
    if kind == derivatives.REGIONS:
        return registered_kind == derivatives.REGIONS and region == registered_view
    if region is not None or registered_kind == derivatives.REGIONS:
        return False
    return kind != derivatives.WHOLE or (
        query_view == derivatives.WHOLE and registered_kind == derivatives.WHOLE
    )
