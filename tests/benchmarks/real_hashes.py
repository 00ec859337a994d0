"""Real PDQ hashes for the matching benchmark: crops of real photographs and frames of real videos.

The synthetic sets (tests/benchmarks/datasets.py) are uniform or PDQ-shaped; this one is PDQ as
``pdqhash`` computes it on real pixels, so that the index is also measured on the correlations,
biased bits and clusters that real photos give. Its sources are those of tests/photos.py: the
sample photographs shipped in pinned packages and the sample videos of Debian's ``opencv-doc``
(decoded with OpenCV, one frame a second). No network beyond the package clients.

How the pool is made, deterministically from a seed:

1. Every photo, and every sampled video frame of PDQ quality at least MIN_QUALITY, is a source.
   A few photos that belong to no near-identical series are held out (HELD_OUT_PHOTOS): their
   hashes never enter the pool; they are the benchmark's unrelated queries.
2. Each source gives ``crops`` windows (a video frame a quarter as many): the whole image first,
   then windows of random position, size (MIN_SCALE to all of the shorter side) and aspect ratio
   (1:2 to 2:1); half of them are then resampled (INTER_AREA) to 30-100 % of their size. Each
   window is hashed with ``pdqhash.compute_dihedral``: its 8 rotated and mirrored hashes, as the
   registry stores for every image.
3. Hashes of quality under MIN_QUALITY or with fewer than MIN_BITS_SET bits set are dropped (the
   registry refuses them); then, in generation order, every hash within MATCH_DISTANCE bits of
   one already kept: first within its own source, then against the earlier sources. Every two
   hashes of the pool are therefore more than 31 bits apart: distinct content, not
   near-duplicates. The counts dropped at each step are in ``Pool.report``.
4. The survivors are grouped by window (a window's surviving variants stay together, as one
   image's hashes do in the registry) and the windows shuffled, so that any prefix of the pool is
   a sample of all the sources.

The pool is cached in ``.data/real_hashes/`` (git-ignored), keyed by the seed, the crop count
and the sources. Hashes are (n, 32) uint8, the bytes of the hash's text form, as
``registry.matching.HashIndex`` takes them and as ``np.packbits`` of ``pdqhash``'s vector gives
them (registry.derivatives.pdq does the same).

``real_queries.real_dataset`` (tests/benchmarks/real_queries.py) turns a prefix of the pool into
a benchmark data set: 1 % of the stored hashes
replaced by real edits of other stored ones (planted near-duplicates, as the synthetic sets
have), half the queries real edits of stored windows (JPEG re-encoding, resizing, a crop of a few
per cent, brightness and contrast: re-hashed, not bit flips), half hashes of the held-out photos.

``python -m tests.benchmarks.real_hashes [--crops N] [--seed S]`` builds (or reads) the pool and
prints how it was made.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pdqhash
from numba import njit
from numpy.typing import NDArray

from registry.matching.index import HashIndex
from registry.pdq import MATCH_DISTANCE, MIN_BITS_SET, MIN_QUALITY
from tests import photos
from tests.benchmarks.datasets import HASH_BYTES

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".data" / "real_hashes"
GENERATOR_VERSION = 1
DEFAULT_SEED = 2024
DEFAULT_CROPS = 1200  # windows a photo; the default pool holds about a million hashes
FRAME_SHARE = 4  # a video frame gets a quarter of a photo's windows (its neighbours look alike)
FRAMES_PER_SECOND = 1.0
HELD_OUT_PHOTOS = 8
HELD_OUT_SHARE = 4  # a held-out photo gets a quarter of a photo's windows
MIN_SCALE = 0.12  # smallest window side, as a share of the source's shorter side
MIN_CROP_SIDE = 32
MAX_ASPECT = 2.0
RESCALED_SHARE = 0.5
MIN_RESCALE = 0.3
PLANTED_FRACTION = 0.01

Hashes = NDArray[np.uint8]
Rgb = NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Source:
    """One image that windows are cut from: a photo or a video frame."""

    name: str
    rgb: Rgb
    origin: str  # "photo" or "video frame"
    series: str | None
    held_out: bool


@dataclass(frozen=True)
class Pool:
    """Distinct real hashes (every two more than MATCH_DISTANCE bits apart) and where each is from.

    Row ``i`` is variant ``variant[i]`` (pdqhash's dihedral order) of the window ``box[i]``
    (y, x, height, width) of source ``source[i]``, resampled to ``scaled[i]`` (height, width;
    the window's own size when not resampled). ``window`` numbers the windows; rows of one window
    are contiguous. ``held_out`` are hashes of the held-out photos (distinct among themselves,
    never compared with the pool), ``report`` how many candidates each step dropped.
    """

    hashes: Hashes
    source: NDArray[np.int32]
    box: NDArray[np.int32]
    scaled: NDArray[np.int32]
    variant: NDArray[np.int8]
    window: NDArray[np.int32]
    held_out: Hashes
    names: list[str]
    report: dict[str, float]

    def __len__(self) -> int:
        return int(self.hashes.shape[0])


# ---------------------------------------------------------------------------------------------
# Sources


def video_frames(video: photos.Video, per_second: float = FRAMES_PER_SECOND) -> Iterator[Rgb]:
    """The frames of a video, about ``per_second`` a second (the first of each period), as RGB."""
    capture = cv2.VideoCapture(str(video.path))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        step = fps / per_second
        index, wanted = 0, 0.0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index >= wanted:
                wanted += step
                yield np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        capture.release()


def load_sources(seed: int, cache: Path = photos.CACHE) -> tuple[list[Source], dict[str, int]]:
    """The photos (a few held out, chosen by ``seed``) and the sampled video frames.

    Raises photos.PhotosUnavailable when the photos cannot be had; without the videos, the
    photos alone are used. Also returns counts for the report.
    """
    corpus = photos.load(cache)
    standalone = [photo.name for photo in corpus.photos if photo.series is None]
    rng = np.random.default_rng([seed, 1])
    held = set(
        rng.choice(standalone, size=min(HELD_OUT_PHOTOS, len(standalone) // 4), replace=False)
    )
    sources = [
        Source(photo.name, photo.rgb, "photo", photo.series, photo.name in held)
        for photo in corpus.photos
    ]
    frames = low_quality = 0
    for video in photos.videos(cache):
        for second, rgb in enumerate(video_frames(video)):
            frames += 1
            if min(rgb.shape[:2]) < MIN_CROP_SIDE or pdqhash.compute(rgb)[1] < MIN_QUALITY:
                low_quality += 1
                continue
            series = video.series or f"{video.name} video"
            sources.append(Source(f"{video.name}@{second}s", rgb, "video frame", series, False))
    counts = {"photos": len(corpus.photos), "held-out photos": len(held)}
    counts |= {"video frames": frames, "video frames under the minimum quality": low_quality}
    return sources, counts


def _sources_digest(sources: Sequence[Source]) -> str:
    digest = hashlib.sha256()
    for source in sources:
        digest.update(f"{source.name}:{source.rgb.shape}:{source.held_out};".encode())
        digest.update(hashlib.sha256(source.rgb.tobytes()).digest())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Windows and their hashes


@njit(cache=True, inline="always")
def _popcount(x: np.uint64) -> np.uint64:
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(cache=True)
def _greedy_distinct(words: NDArray[np.uint64], max_distance: int) -> NDArray[np.bool_]:
    """In order, keep each row unless it is within ``max_distance`` bits of a row kept before."""
    n = words.shape[0]
    keep = np.zeros(n, np.bool_)
    kept = np.empty(n, np.int64)
    count = 0
    for i in range(n):
        near = False
        for t in range(count):
            j = kept[t]
            d = (
                _popcount(words[i, 0] ^ words[j, 0])
                + _popcount(words[i, 1] ^ words[j, 1])
                + _popcount(words[i, 2] ^ words[j, 2])
                + _popcount(words[i, 3] ^ words[j, 3])
            )
            if d <= max_distance:
                near = True
                break
        if not near:
            keep[i] = True
            kept[count] = i
            count += 1
    return keep


def as_words(hashes: Hashes) -> NDArray[np.uint64]:
    """(n, 32) bytes as (n, 4) uint64 words, as the index views them."""
    return np.ascontiguousarray(hashes).view("<u8").astype(np.uint64)


def windows(
    height: int, width: int, count: int, rng: np.random.Generator
) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """``count`` windows (y, x, h, w) of an image, the whole image first, and the size (h, w)
    each is resampled to (its own size when it is not)."""
    short = min(height, width)
    side = short * np.exp(rng.uniform(np.log(MIN_SCALE), 0.0, count))
    aspect = np.exp(rng.uniform(-np.log(MAX_ASPECT), np.log(MAX_ASPECT), count))
    h = np.clip(np.round(side / np.sqrt(aspect)), min(MIN_CROP_SIDE, height), height).astype(int)
    w = np.clip(np.round(side * np.sqrt(aspect)), min(MIN_CROP_SIDE, width), width).astype(int)
    h[0], w[0] = height, width
    y = (rng.random(count) * (height - h + 1)).astype(int)
    x = (rng.random(count) * (width - w + 1)).astype(int)
    factor = np.where(
        rng.random(count) < RESCALED_SHARE, np.exp(rng.uniform(np.log(MIN_RESCALE), 0.0, count)), 1
    )
    factor[0] = 1.0
    scaled_h = np.maximum(np.minimum(h, MIN_CROP_SIDE), np.round(h * factor)).astype(int)
    scaled_w = np.maximum(np.minimum(w, MIN_CROP_SIDE), np.round(w * factor)).astype(int)
    box = np.stack([y, x, h, w], axis=1).astype(np.int32)
    return box, np.stack([scaled_h, scaled_w], axis=1).astype(np.int32)


def window_pixels(rgb: Rgb, box: Sequence[int], scaled: Sequence[int]) -> Rgb:
    """The pixels of one window, resampled to ``scaled`` when that differs from its size."""
    y, x, h, w = (int(v) for v in box)
    crop = rgb[y : y + h, x : x + w]
    if (int(scaled[0]), int(scaled[1])) != (h, w):
        size = (int(scaled[1]), int(scaled[0]))
        crop = np.asarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return np.ascontiguousarray(crop)


def dihedral_bytes(pixels: Rgb) -> tuple[Hashes, int]:
    """The 8 dihedral hashes of RGB pixels as (8, 32) text-order bytes, and their quality."""
    vectors, quality = pdqhash.compute_dihedral(pixels)
    return np.packbits(np.asarray(vectors, dtype=np.uint8), axis=1), int(quality)


@dataclass(frozen=True)
class _Candidates:
    """The hashes of one source's windows that pass the registry's checks and are distinct
    among themselves, in generation order, with the counts dropped."""

    hashes: Hashes
    box: NDArray[np.int32]
    scaled: NDArray[np.int32]
    variant: NDArray[np.int8]
    window: NDArray[np.int32]  # the window's number within the source
    hashed: int
    low_quality: int
    few_bits: int
    near_in_source: int


_WORKER_SOURCES: list[Source] = []


def _window_count(source: Source, crops: int) -> int:
    if source.held_out:
        return max(1, crops // HELD_OUT_SHARE)
    return max(1, crops // FRAME_SHARE) if source.origin == "video frame" else crops


def _source_candidates(job: tuple[int, int, int]) -> _Candidates:
    """Hash ``count`` windows of source ``index`` (read from the forked parent's list)."""
    seed, index, count = job
    source = _WORKER_SOURCES[index]
    rng = np.random.default_rng([seed, 2, index])
    boxes, scaled = windows(source.rgb.shape[0], source.rgb.shape[1], count, rng)
    hashes = np.empty((count, 8, HASH_BYTES), np.uint8)
    quality = np.empty(count, np.int64)
    for k in range(count):
        hashes[k], quality[k] = dihedral_bytes(window_pixels(source.rgb, boxes[k], scaled[k]))
    bits = np.bitwise_count(hashes).sum(axis=2)
    good_quality = quality >= MIN_QUALITY
    valid = good_quality[:, None] & (bits >= MIN_BITS_SET)
    rows, variants = np.nonzero(valid)  # window-major, variant-minor: generation order
    flat = hashes[rows, variants]
    keep = _greedy_distinct(as_words(flat), MATCH_DISTANCE)
    rows, variants = rows[keep], variants[keep]
    return _Candidates(
        hashes=flat[keep],
        box=boxes[rows],
        scaled=scaled[rows],
        variant=variants.astype(np.int8),
        window=rows.astype(np.int32),
        hashed=count * 8,
        low_quality=int((~good_quality).sum()) * 8,
        few_bits=int((good_quality[:, None] & (bits < MIN_BITS_SET)).sum()),
        near_in_source=int(keep.shape[0] - keep.sum()),
    )


class _DistinctSet:
    """The hashes kept so far, searched with the registry's own index."""

    def __init__(self) -> None:
        self.index = HashIndex()
        self.count = 0

    def near(self, hashes: Hashes) -> NDArray[np.bool_]:
        """Which rows are within MATCH_DISTANCE bits of a kept hash."""
        if self.count == 0 or hashes.shape[0] == 0:
            return np.zeros(hashes.shape[0], bool)
        return np.array([m.ids.shape[0] > 0 for m in self.index.search(hashes, MATCH_DISTANCE)])

    def add(self, hashes: Hashes) -> None:
        ids = np.arange(self.count, self.count + hashes.shape[0], dtype=np.int64)
        self.index.add(ids, hashes)
        self.count += hashes.shape[0]


def build_pool(
    sources: Sequence[Source], seed: int, crops: int, processes: int | None = None
) -> Pool:
    """The pool of distinct real hashes (module docstring), computed now; see ``pool``."""
    started = time.perf_counter()
    jobs = [(seed, index, _window_count(source, crops)) for index, source in enumerate(sources)]
    # A module global, so that forked workers read the pixels without pickling them.
    global _WORKER_SOURCES
    _WORKER_SOURCES = list(sources)
    workers = processes or len(os.sched_getaffinity(0))
    kept, held = _DistinctSet(), _DistinctSet()
    parts: list[tuple[int, _Candidates, NDArray[np.bool_]]] = []
    held_parts: list[Hashes] = []
    report = {
        "sources": float(len(sources)),
        "hashed": 0.0,
        "dropped: quality under the minimum": 0.0,
        f"dropped: under {MIN_BITS_SET} bits set": 0.0,
        "dropped: near one of its own source": 0.0,
        "dropped: near one of an earlier source": 0.0,
    }
    try:
        with multiprocessing.get_context("fork").Pool(workers) as workers_pool:
            for (_, index, _), found in zip(
                jobs, workers_pool.imap(_source_candidates, jobs), strict=True
            ):
                if index % 25 == 0:
                    print(
                        f"[{time.strftime('%H:%M:%S')}] real pool: source {index + 1} of "
                        f"{len(sources)}, {kept.count:,} hashes kept",
                        file=sys.stderr,
                        flush=True,
                    )
                target = held if sources[index].held_out else kept
                near = target.near(found.hashes)
                target.add(found.hashes[~near])
                if sources[index].held_out:
                    held_parts.append(found.hashes[~near])
                    continue
                parts.append((index, found, ~near))
                report["hashed"] += found.hashed
                report["dropped: quality under the minimum"] += found.low_quality
                report[f"dropped: under {MIN_BITS_SET} bits set"] += found.few_bits
                report["dropped: near one of its own source"] += found.near_in_source
                report["dropped: near one of an earlier source"] += int(near.sum())
    finally:
        _WORKER_SOURCES = []
    hashes = np.concatenate([found.hashes[mask] for _, found, mask in parts])
    source = np.concatenate([np.full(int(mask.sum()), index, np.int32) for index, _, mask in parts])
    box = np.concatenate([found.box[mask] for _, found, mask in parts])
    scaled = np.concatenate([found.scaled[mask] for _, found, mask in parts])
    variant = np.concatenate([found.variant[mask] for _, found, mask in parts])
    local = np.concatenate([found.window[mask] for _, found, mask in parts]).astype(np.int64)
    # Number the windows globally, then shuffle whole windows.
    window_key = source.astype(np.int64) * (crops + 1) + local
    _, window = np.unique(window_key, return_inverse=True)
    rng = np.random.default_rng([seed, 3])
    rank = rng.permutation(int(window.max()) + 1 if window.size else 0)[window]
    order = np.lexsort((variant, rank))
    report["kept"] = float(hashes.shape[0])
    report["windows kept"] = float(np.unique(window).shape[0])
    held_out = np.concatenate(held_parts) if held_parts else np.empty((0, HASH_BYTES), np.uint8)
    held_out = held_out[np.random.default_rng([seed, 4]).permutation(held_out.shape[0])]
    report["held-out hashes"] = float(held_out.shape[0])
    report["seconds"] = time.perf_counter() - started
    report["processes"] = float(workers)
    return Pool(
        hashes=hashes[order],
        source=source[order],
        box=box[order],
        scaled=scaled[order],
        variant=variant[order],
        window=rank[order].astype(np.int32),
        held_out=held_out,
        names=[s.name for s in sources],
        report=report,
    )


def pool(
    seed: int = DEFAULT_SEED,
    crops: int = DEFAULT_CROPS,
    *,
    cache: Path = CACHE,
    sources: Sequence[Source] | None = None,
) -> Pool:
    """The pool for ``seed`` and ``crops``, read from ``cache`` or built and written there.

    ``sources`` defaults to ``load_sources(seed)``. Raises photos.PhotosUnavailable when the
    photos cannot be had.
    """
    if sources is None:
        sources, _ = load_sources(seed)
    digest = _sources_digest(sources)
    path = cache / f"pool-v{GENERATOR_VERSION}-seed{seed}-crops{crops}-{digest}.npz"
    with photos.locked(cache):
        if path.exists():
            with np.load(path) as stored:
                meta = json.loads(str(stored["meta"]))
                arrays = {name: stored[name] for name in stored.files if name != "meta"}
            return Pool(**arrays, names=meta["names"], report=meta["report"])
        built = build_pool(sources, seed, crops)
        meta_text = json.dumps({"names": built.names, "report": built.report})
        partial = path.with_suffix(".partial.npz")
        np.savez(
            partial,
            hashes=built.hashes,
            source=built.source,
            box=built.box,
            scaled=built.scaled,
            variant=built.variant,
            window=built.window,
            held_out=built.held_out,
            meta=np.array(meta_text),
        )
        partial.replace(path)
        return built


def describe(real: Pool) -> list[str]:
    """How the pool was made, one line a count."""
    lines = [f"- {name}: {value:,.0f}" for name, value in real.report.items() if name != "seconds"]
    lines.append(f"- built in {real.report['seconds']:.0f} s (read from the cache when present)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--crops", type=int, default=DEFAULT_CROPS, help="windows a photo")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    try:
        sources, counts = load_sources(args.seed)
    except photos.PhotosUnavailable as error:
        print(f"photos unavailable: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    real = pool(args.seed, args.crops, sources=sources)
    print(f"## Real PDQ hashes (seed {args.seed}, {args.crops} windows a photo)\n")
    print("\n".join(f"- {name}: {value:,}" for name, value in counts.items()))
    print("\n".join(describe(real)))
    print(f"- this call took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
