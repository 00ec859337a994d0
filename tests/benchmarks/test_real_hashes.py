"""The real-hash data set of the index benchmark (tests/benchmarks/real_hashes.py), on a small pool.

Real photographs and video frames, few windows each: the pool's hashes are ones the registry
accepts, every two more than 31 bits apart, the hashes of the windows they are said to be of,
the same for the same seed (and read back from the cache), and in the byte order the index and
the hash's text form use. Skips only when the photo corpus cannot be fetched.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from registry.pdq import (
    MATCH_DISTANCE,
    MIN_BITS_SET,
    MIN_QUALITY,
    check_bits,
    format_hash,
    parse_hash,
)
from tests import photos
from tests.benchmarks import bench_matching, real_hashes, real_queries
from tests.benchmarks.datasets import Hashes, bytes_to_coefficients
from tests.benchmarks.hash_stats import hash_stats, table
from tests.load import prepare

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SEED = 7
CROPS = 8


@pytest.fixture(scope="module")
def sources() -> list[real_hashes.Source]:
    """A dozen photos, the held-out ones among them, and a few video frames."""
    try:
        everything, _ = real_hashes.load_sources(SEED)
    except photos.PhotosUnavailable as error:
        pytest.skip(f"the photo corpus is unavailable: {error}")
    kept = [s for s in everything if s.origin == "photo" and not s.held_out][:12]
    held = [s for s in everything if s.held_out]
    frames = [s for s in everything if s.origin == "video frame"][::20]
    return kept + held + frames


@pytest.fixture(scope="module")
def pool(
    sources: list[real_hashes.Source], tmp_path_factory: pytest.TempPathFactory
) -> real_hashes.Pool:
    return real_hashes.pool(SEED, CROPS, cache=tmp_path_factory.mktemp("real"), sources=sources)


def pairwise_min(hashes: Hashes) -> int:
    """The least Hamming distance between two different rows."""
    least = 256
    for i in range(hashes.shape[0] - 1):
        distances = np.bitwise_count(hashes[i + 1 :] ^ hashes[i]).sum(axis=1)
        least = min(least, int(distances.min()))
    return least


def test_the_pool_holds_distinct_hashes_the_registry_accepts(pool: real_hashes.Pool) -> None:
    assert len(pool) > 300
    counts = np.bitwise_count(pool.hashes).sum(axis=1)
    assert counts.min() >= MIN_BITS_SET
    assert counts.max() <= 128
    for value in pool.hashes[:50]:
        assert parse_hash(format_hash(value.tobytes())) == value.tobytes()
    assert pairwise_min(pool.hashes) > MATCH_DISTANCE
    assert pairwise_min(pool.held_out) > MATCH_DISTANCE
    report = pool.report
    dropped = sum(value for name, value in report.items() if name.startswith("dropped"))
    assert report["hashed"] == dropped + report["kept"]
    assert report["kept"] == len(pool)


def test_every_row_is_the_hash_of_its_window_in_its_variant(
    pool: real_hashes.Pool, sources: list[real_hashes.Source]
) -> None:
    by_name = {source.name: source for source in sources}
    rows = np.linspace(0, len(pool) - 1, 25).astype(int)
    for row in rows:
        source = by_name[pool.names[pool.source[row]]]
        pixels = real_hashes.window_pixels(source.rgb, pool.box[row], pool.scaled[row])
        variants, quality = real_hashes.dihedral_bytes(pixels)
        assert quality >= MIN_QUALITY
        assert variants[pool.variant[row]].tobytes() == pool.hashes[row].tobytes()
    # A window's surviving variants are contiguous, so a prefix holds whole windows.
    starts = np.flatnonzero(np.diff(pool.window) != 0)
    assert np.unique(pool.window).shape[0] == starts.shape[0] + 1


def test_the_same_seed_gives_the_same_pool_and_the_cache_returns_it(
    pool: real_hashes.Pool, sources: list[real_hashes.Source], tmp_path: Path
) -> None:
    again = real_hashes.pool(SEED, CROPS, cache=tmp_path, sources=sources)
    cached = real_hashes.pool(SEED, CROPS, cache=tmp_path, sources=sources)
    other = real_hashes.pool(SEED + 1, CROPS, cache=tmp_path, sources=sources)
    assert len(list(tmp_path.glob("pool-*.npz"))) == 2
    for field in ("hashes", "source", "box", "scaled", "variant", "window", "held_out"):
        assert np.array_equal(getattr(again, field), getattr(pool, field)), field
        assert np.array_equal(getattr(cached, field), getattr(pool, field)), field
    assert cached.report == again.report
    assert not np.array_equal(other.hashes[:100], pool.hashes[:100])


def test_the_bytes_are_the_text_order_of_the_hash(sources: list[real_hashes.Source]) -> None:
    """A left-right mirror negates the DCT coefficients of odd horizontal frequency: in the
    coefficient order of datasets.py (bit 16 i + j, i vertical), the even columns j."""
    rgb = sources[0].rgb
    original, _ = real_hashes.dihedral_bytes(rgb)
    mirrored, _ = real_hashes.dihedral_bytes(np.ascontiguousarray(rgb[:, ::-1]))
    changed = (bytes_to_coefficients(original[:1]) != bytes_to_coefficients(mirrored[:1]))[0]
    grid = changed.reshape(16, 16)
    assert grid[:, 0::2].mean() > 0.8
    assert grid[:, 1::2].mean() < 0.2
    # pdqhash's own mirrored variant (flip left-right, the sixth) is the mirror's hash, nearly.
    assert np.bitwise_count(original[5] ^ mirrored[0]).sum() <= 16
    check_bits(original[0].tobytes())


def test_the_data_set_plants_real_edits_and_asks_held_out_hashes(
    pool: real_hashes.Pool, sources: list[real_hashes.Source]
) -> None:
    n = len(pool) // 2
    data, distances = real_queries.real_dataset(n, 40, seed=3, real=pool, sources=sources)
    assert data.hashes.shape == (n, 32)
    assert data.near_queries == 20
    changed = (data.hashes != pool.hashes[:n]).any(axis=1)
    assert 0 < changed.sum() <= int(n * real_queries.PLANTED_FRACTION)
    # Real edits move the hash, most of them by less than the match distance.
    assert distances.shape == (20,)
    assert np.median(distances) <= MATCH_DISTANCE
    held = {row.tobytes() for row in pool.held_out}
    assert all(query.tobytes() in held for query in data.queries[20:])
    again, _ = real_queries.real_dataset(n, 40, seed=3, real=pool, sources=sources)
    assert np.array_equal(again.queries, data.queries)
    with pytest.raises(real_queries.NotEnoughRealHashes):
        real_queries.real_dataset(len(pool) + 1, 40, real=pool, sources=sources)


def test_video_frames_are_sampled_about_once_a_second(sources: list[real_hashes.Source]) -> None:
    videos = {video.name: video for video in photos.videos()}
    if "vtest" not in videos:
        pytest.skip("the Debian package's sample videos are unavailable")
    frames = list(real_hashes.video_frames(videos["vtest"]))  # 795 frames at 10 a second
    assert len(frames) == 80
    assert frames[0].shape == (576, 768, 3)


def test_the_statistics_see_the_128_bits_and_the_pool_distinct(pool: real_hashes.Pool) -> None:
    rng = np.random.default_rng(0)
    stats = hash_stats("real", pool.hashes, pool.held_out, rng, pairs=20_000)
    assert stats.bits_max <= 128
    assert stats.size == len(pool)
    assert 100 < stats.distance_median < 156
    lines = table([stats, replace(stats, name="pdq")])
    assert lines[0] == "| measure | real | PDQ-shaped |"
    assert len(lines) == 12


def test_the_benchmark_runs_the_real_set_only_up_to_the_pool_size(
    pool: real_hashes.Pool, sources: list[real_hashes.Source]
) -> None:
    real = bench_matching.RealSource(pool, sources, "")
    data, note = bench_matching.generate("real", 200, 20, real)
    assert data.name == "real"
    assert data.hashes.shape == (200, 32)
    assert note.startswith("real 200: near queries are real edits")
    with pytest.raises(real_queries.NotEnoughRealHashes, match="the real pool holds"):
        bench_matching.generate("real", len(pool) + 1, 20, real)
    absent = bench_matching.RealSource(None, [], "photos unavailable: no network")
    with pytest.raises(real_queries.NotEnoughRealHashes, match="photos unavailable"):
        bench_matching.generate("real", 200, 20, absent)


def test_the_load_test_registers_the_pool_and_asks_held_out_hashes(
    pool: real_hashes.Pool,
) -> None:
    rng = np.random.default_rng(0)
    stored, unrelated = prepare.hashes_and_unrelated("real", 100, 50, rng, real=pool)
    assert np.array_equal(stored, pool.hashes[:100])
    assert unrelated.shape == (50, 32)
    held_out = {row.tobytes() for row in pool.held_out}
    assert {row.tobytes() for row in unrelated} <= held_out
    assert not {row.tobytes() for row in unrelated} & {row.tobytes() for row in pool.hashes}
    with pytest.raises(SystemExit, match="the real pool holds"):
        prepare.hashes_and_unrelated("real", len(pool) + 1, 50, rng, real=pool)
    synthetic, others = prepare.hashes_and_unrelated("pdq", 100, 50, rng)
    assert synthetic.shape == (100, 32)
    assert others.shape == (50, 32)
    assert set(np.bitwise_count(synthetic).sum(axis=1).tolist()) == {128}


def test_the_docs_show_every_measure_the_statistics_print() -> None:
    document = (ROOT / "docs" / "matching.md").read_text()
    begin, end = "<!-- hash-stats:begin -->", "<!-- hash-stats:end -->"
    block = document[document.index(begin) + len(begin) : document.index(end)].strip()
    documented = [line.split(" | ")[0] for line in block.splitlines()[2:]]
    stats = [
        hash_stats(name, hashes, hashes, np.random.default_rng(0), matched=0, pairs=100)
        for name in ("uniform", "pdq", "real", "real-original")
        for hashes in [np.random.default_rng(0).integers(0, 256, (64, 32), np.uint8)]
    ]
    printed = table(stats)
    assert block.splitlines()[0] == printed[0]
    assert documented == [line.split(" | ")[0] for line in printed[2:]]
