"""The video rows of the match benchmark: a 600-frame video against the index, beside 600 hashes.

Run: ``.venv/bin/python -m tests.benchmarks.bench_video [--size 10000000] [--datasets
uniform,pdq]``; ``make bench`` runs it after the index benchmark (tests/benchmarks/
bench_matching.py), at its largest size.

The index is ``registry.matching.HashIndex`` built once over ``size`` hashes of a synthetic
data set (tests/benchmarks/datasets.py), of which ``videos x frames`` are the frames of
registered videos: each video a walk whose consecutive frames are about 16 bits apart (for
PDQ-shaped hashes a walk in the model's own space, so that every frame is PDQ-shaped; for
uniform ones, 16 bits flipped a frame), its frames' ids mapped to the video, as
the registry maps frame hashes to their video. Three calls are timed on that one index:

* ``600 hashes``: ``search`` of 600 unrelated hashes, a plain batch (nothing grouped);
* ``video, a copy``: ``search`` of the 600 frames of a registered video, each re-encoded (a few
  bits flipped), then the grouping of the pairs within 31 bits by registered video and the vPDQ
  decision of each (``registry.videos.video_decide_pairs``): the match;
* ``video, unrelated``: the same for a 600-frame random walk that matches nothing.

Each is timed as one call (both cores, as ``search`` splits a batch), best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from registry.matching.index import HashIndex, Matches
from registry.videos import FRAME_MATCH_DISTANCE, VideoDecision, video_decide_pairs
from tests.benchmarks.datasets import (
    HASH_BITS,
    HASH_BYTES,
    Hashes,
    PdqShape,
    coefficients_to_bytes,
    flip_bits,
    make_dataset,
)

QUERY_FRAMES = 600
# Bits between consecutive frames of a registered video, and bits a re-encoded copy moves.
FRAME_STEP = 16
REENCODE_BITS = 10


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def random_walk(start: Hashes, frames: int, rng: np.random.Generator, *, keep: bool) -> Hashes:
    """``frames`` hashes per start hash, each FRAME_STEP bits from the one before (uniform
    hashes: a uniform walk stays uniform)."""
    walk = np.empty((start.shape[0], frames, start.shape[1]), np.uint8)
    walk[:, 0] = start
    for frame in range(1, frames):
        step = np.full(start.shape[0], FRAME_STEP, np.int64)
        walk[:, frame] = flip_bits(walk[:, frame - 1], step, rng, keep_weight=keep)
    return walk


# A PDQ-shaped frame follows the one before in the model's own space (an AR(1) step of its
# latent and noise parts, thresholded at the median as PdqShape.sample does), so that every frame
# stays PDQ-shaped; this correlation puts consecutive frames about 16 bits apart (measured).
PDQ_FRAME_CORRELATION = 0.978


def pdq_walk(videos: int, frames: int, rng: np.random.Generator) -> Hashes:
    """``videos`` walks of ``frames`` PDQ-shaped hashes (datasets.PdqShape)."""
    shape = PdqShape.create()
    rank = shape.loadings.shape[0]
    fresh = np.float32(np.sqrt(1 - PDQ_FRAME_CORRELATION**2))
    latent = rng.standard_normal((videos, rank), dtype=np.float32)
    noise = rng.standard_normal((videos, HASH_BITS), dtype=np.float32)
    walk = np.empty((videos, frames, HASH_BYTES), np.uint8)
    for frame in range(frames):
        if frame:
            latent = PDQ_FRAME_CORRELATION * latent + fresh * rng.standard_normal(
                latent.shape, dtype=np.float32
            )
            noise = PDQ_FRAME_CORRELATION * noise + fresh * rng.standard_normal(
                noise.shape, dtype=np.float32
            )
        values = noise * np.float32(shape.noise) + shape.bias + latent @ shape.loadings
        median = np.partition(values, 127, axis=1)[:, 127:128]
        walk[:, frame] = coefficients_to_bytes(values > median)
    return walk


def video_walks(kind: str, videos: int, frames: int, rng: np.random.Generator) -> Hashes:
    """Registered (or unrelated) videos' frames, drawn like the data set's hashes."""
    if kind == "pdq":
        return pdq_walk(videos, frames, rng)
    start = rng.integers(0, 256, size=(videos, HASH_BYTES), dtype=np.uint8)
    return random_walk(start, frames, rng, keep=False)


@dataclass
class VideoIndex:
    """The index, and which registered video each frame id belongs to."""

    index: HashIndex
    first_frame_id: int
    frames_per_video: int
    walks: NDArray[np.uint8]  # (videos, frames, 32)

    def decide(self, results: Sequence[Matches]) -> dict[int, VideoDecision]:
        """The vPDQ decision for each registered video some query frame met within 31 bits."""
        pairs: dict[int, list[tuple[int, int, int]]] = {}
        for query, found in enumerate(results):
            ids, distances = found.ids, found.distances
            video_rows = ids >= self.first_frame_id
            if not video_rows.any():
                continue
            offsets = ids[video_rows] - self.first_frame_id
            videos, frames = np.divmod(offsets, self.frames_per_video)
            for video, frame, bits in zip(
                videos.tolist(), frames.tolist(), distances[video_rows].tolist(), strict=True
            ):
                if bits <= FRAME_MATCH_DISTANCE:
                    pairs.setdefault(video, []).append((query, frame, bits))
        timestamps = [float(second) for second in range(self.frames_per_video)]
        decisions = {}
        for video, found_pairs in pairs.items():
            decision = video_decide_pairs(
                found_pairs,
                query_frames=len(results),
                registered_frames=self.frames_per_video,
                registered_timestamps=timestamps,
            )
            if decision is not None:
                decisions[video] = decision
        return decisions


def videos_for(size: int, wanted: int = 1000) -> int:
    """Registered videos for an index of ``size`` hashes: ``wanted``, but their frames at most a
    tenth of the index (at least one video)."""
    return max(1, min(wanted, size // (10 * QUERY_FRAMES)))


def build(kind: str, size: int, videos: int, frames: int, seed: int) -> VideoIndex:
    rng = np.random.default_rng(seed)
    data = make_dataset(kind, size, 0, seed=size)
    walks = video_walks(kind, videos, frames, rng)
    photos = size - videos * frames
    first = int(data.ids[:photos].max()) + 1
    ids = np.concatenate([data.ids[:photos], first + np.arange(videos * frames, dtype=np.int64)])
    hashes = np.concatenate([data.hashes[:photos], walks.reshape(-1, walks.shape[-1])])
    del data
    gc.collect()
    started = time.perf_counter()
    index = HashIndex.build(ids, hashes)
    log(f"{kind} {size:,}: index built in {time.perf_counter() - started:.1f} s")
    return VideoIndex(index, first, frames, walks)


@dataclass
class VideoRow:
    data: str
    size: int
    call: str
    queries: int
    best_ms: float
    search_ms: float
    group_ms: float
    outcome: str

    def line(self) -> str:
        return (
            f"| {self.call} | {self.data} | {self.size:,} | {self.queries} | {self.best_ms:.1f} "
            f"| {self.search_ms:.1f} | {self.group_ms:.2f} | {self.outcome} |"
        )


HEADER = (
    "| call | data | hashes | query hashes | total ms | search ms | grouping and decisions ms "
    "| outcome |"
)


def _time(
    call: str, video: VideoIndex, queries: Hashes, repeats: int, group: bool
) -> tuple[float, float, float, str]:
    best = (float("inf"), 0.0, 0.0)
    outcome = ""
    for _ in range(repeats):
        started = time.perf_counter()
        results = video.index.search(queries)
        searched = time.perf_counter()
        decisions = video.decide(results) if group else {}
        done = time.perf_counter()
        if done - started < best[0]:
            best = (done - started, searched - started, done - searched)
        if group:
            matched = [d for d in decisions.values() if d.is_match]
            outcome = (
                f"{len(matched)} video matched"
                + (f" ({matched[0].query_match_percent:.0f}% of the query)" if matched else "")
                + f", {len(decisions)} met"
            )
        else:
            outcome = f"{sum(1 for r in results if r.ids.shape[0])} hashes met something"
    return best[0] * 1e3, best[1] * 1e3, best[2] * 1e3, outcome


def run(kind: str, size: int, *, videos: int, repeats: int, seed: int = 16) -> list[VideoRow]:
    """The three rows for one data set and size (module docstring)."""
    video = build(kind, size, videos, QUERY_FRAMES, seed)
    rng = np.random.default_rng(seed + 1)
    keep = kind == "pdq"
    copy = flip_bits(
        video.walks[videos // 2], np.full(QUERY_FRAMES, REENCODE_BITS), rng, keep_weight=keep
    )
    unrelated_video = video_walks(kind, 1, QUERY_FRAMES, rng)[0]
    plain = make_dataset(kind, QUERY_FRAMES, 0, seed=seed + 3).hashes
    video.index.search(plain[:8])  # warm the kernels
    rows = []
    for call, queries, group in (
        (f"{QUERY_FRAMES} hashes, a plain batch", plain, False),
        (f"{QUERY_FRAMES}-frame video, a copy of a registered one", copy, True),
        (f"{QUERY_FRAMES}-frame video, unrelated", unrelated_video, True),
    ):
        total, search, grouping, outcome = _time(call, video, queries, repeats, group)
        log(f"  {call}: {total:.1f} ms ({outcome})")
        rows.append(VideoRow(kind, size, call, QUERY_FRAMES, total, search, grouping, outcome))
    del video
    gc.collect()
    return rows


def table(rows: Sequence[VideoRow], videos: int) -> list[str]:
    return [
        f"### A {QUERY_FRAMES}-frame video against the index\n",
        f"- {videos:,} registered videos of {QUERY_FRAMES} frames in the index (walks drawn like "
        f"the data set, about {FRAME_STEP} bits a frame), the rest single hashes; the copy moves "
        "each frame "
        f"{REENCODE_BITS} bits; one call each, both cores, best of the repeats",
        "",
        HEADER,
        "|---|---|---:|---:|---:|---:|---:|---|",
        *(row.line() for row in rows),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--datasets", default="uniform,pdq")
    parser.add_argument("--videos", type=int, default=1000, help="registered videos in the index")
    parser.add_argument("--repeats", type=int, default=5)
    arguments = parser.parse_args(argv)
    rows: list[VideoRow] = []
    videos = videos_for(arguments.size, arguments.videos)
    for kind in [k for k in arguments.datasets.split(",") if k]:
        rows += run(kind, arguments.size, videos=videos, repeats=arguments.repeats)
    print("\n".join(table(rows, videos)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
