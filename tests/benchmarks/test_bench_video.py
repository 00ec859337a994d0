"""The video rows of the benchmark (tests/benchmarks/bench_video.py) decide as the registry's
rule does: the copy of a registered video matches it, an unrelated video matches nothing."""

from __future__ import annotations

import itertools

import numpy as np

from registry.pdq import distance
from tests.benchmarks import bench_video


def test_a_copy_matches_its_video_and_an_unrelated_video_nothing() -> None:
    rows = bench_video.run("pdq", 30_000, videos=4, repeats=1)
    plain, copy, unrelated = rows
    assert plain.call.startswith("600 hashes")
    assert copy.outcome.startswith("1 video matched (100% of the query)")
    assert unrelated.outcome.startswith("0 video matched")
    assert all(row.size == 30_000 and row.queries == 600 for row in rows)
    lines = bench_video.table(rows, 4)
    assert bench_video.HEADER in lines
    assert len([line for line in lines if line.startswith("| 600")]) == 3


def test_a_registered_video_walks_a_few_bits_a_frame() -> None:
    rng = np.random.default_rng(1)
    start = rng.integers(0, 256, size=(2, 32), dtype=np.uint8)
    walk = bench_video.random_walk(start, 5, rng, keep=False)
    assert walk.shape == (2, 5, 32)
    for video in walk:
        steps = [distance(a.tobytes(), b.tobytes()) for a, b in itertools.pairwise(video)]
        assert steps == [bench_video.FRAME_STEP] * 4


def test_a_pdq_shaped_video_keeps_128_bits_set_and_walks_about_16_a_frame() -> None:
    walk = bench_video.pdq_walk(20, 6, np.random.default_rng(2))
    assert (np.unpackbits(walk, axis=2).sum(axis=2) == 128).all()
    steps = [
        distance(a.tobytes(), b.tobytes()) for video in walk for a, b in itertools.pairwise(video)
    ]
    assert 12 <= np.mean(steps) <= 20
