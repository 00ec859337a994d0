"""The exact PDQ index (registry.matching.HashIndex) against a brute-force reference.

No Django here: run with ``-p no:django --noconftest`` to skip the project's database fixtures.
Both search paths are covered: the chunk probes (forced on small indexes, where the index would
otherwise choose to scan) and the scan.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from registry.matching.index import HashIndex, Matches
from tests.benchmarks.datasets import (
    PdqShape,
    bytes_to_coefficients,
    flip_bits,
    make_dataset,
    uniform_hashes,
)

DISTANCES = [0, 1, 8, 31, 32, 40, 64, 256]
# Small chunk shapes, so that small indexes still have buckets worth probing: (chunks, bits).
SHAPES = [(12, 12), (16, 8), (11, 14), (3, 20)]

Hashes = NDArray[np.uint8]


def reference(
    ids: NDArray[np.int64], hashes: Hashes, query: Hashes, max_distance: int
) -> list[tuple[int, int]]:
    """(distance, id) of every stored hash within ``max_distance``, nearest first."""
    if ids.shape[0] == 0:
        return []
    dists = np.unpackbits(hashes ^ query, axis=1).sum(axis=1)
    hits = np.flatnonzero(dists <= max_distance)
    return sorted(zip(dists[hits].tolist(), ids[hits].tolist(), strict=True))


def pairs(match: Matches) -> list[tuple[int, int]]:
    return list(zip(match.distances.tolist(), match.ids.tolist(), strict=True))


def probing(index: HashIndex, plan: str = "probe") -> HashIndex:
    """The index, made to probe its chunks whenever that is exact (white box, for coverage).

    ``plan``: "probe" lets each query choose its plan; "single" or "double" forces one.
    """
    index._strategy = plan
    return index


def assert_exact(
    index: HashIndex,
    ids: NDArray[np.int64],
    hashes: Hashes,
    queries: Hashes,
    distances: list[int] = DISTANCES,
) -> None:
    for max_distance in distances:
        results = index.search(queries, max_distance)
        assert len(results) == queries.shape[0]
        for i, query in enumerate(queries):
            assert pairs(results[i]) == reference(ids, hashes, query, max_distance), (
                f"query {i} at max_distance {max_distance}"
            )


def near_queries(rng: np.random.Generator, hashes: Hashes, per_distance: int = 2) -> Hashes:
    """Copies of random stored hashes with every distance from 0 to 40 bits, and 8 unrelated."""
    distances = np.repeat(np.arange(41), per_distance)
    sources = hashes[rng.integers(0, hashes.shape[0], size=distances.shape[0])]
    return np.concatenate([flip_bits(sources, distances, rng), uniform_hashes(8, rng)])


def planted(rng: np.random.Generator, n: int) -> tuple[NDArray[np.int64], Hashes]:
    """n uniform hashes where a fifth are near-duplicates (0 to 40 bits) of others."""
    hashes = uniform_hashes(n, rng)
    copies = n // 5
    targets = rng.choice(n, size=copies, replace=False)
    sources = rng.integers(0, n, size=copies)
    hashes[targets] = flip_bits(hashes[sources], rng.integers(0, 41, size=copies), rng)
    ids = rng.permutation(n).astype(np.int64) * 3 - 5_000
    return ids, hashes


@pytest.mark.parametrize("plan", ["single", "double"])
@pytest.mark.parametrize("shape", SHAPES)
def test_probing_finds_exactly_the_hashes_within_every_distance(
    shape: tuple[int, int], plan: str
) -> None:
    rng = np.random.default_rng(1)
    ids, hashes = planted(rng, 3000)
    index = probing(HashIndex.build(ids, hashes, chunk_shape=shape), plan)
    assert index._snapshot.main.layout is not None
    assert_exact(index, ids, hashes, near_queries(rng, hashes))


def test_scanning_finds_exactly_the_hashes_within_every_distance() -> None:
    rng = np.random.default_rng(2)
    ids, hashes = planted(rng, 2000)
    index = HashIndex.build(ids, hashes)
    assert index._snapshot.main.layout is None  # too small to be worth indexing
    assert_exact(index, ids, hashes, near_queries(rng, hashes))


def test_automatic_choice_is_exact_on_a_large_index() -> None:
    rng = np.random.default_rng(3)
    ids, hashes = planted(rng, 60_000)
    index = HashIndex.build(ids, hashes)
    assert index._snapshot.main.layout is not None
    queries = near_queries(rng, hashes, per_distance=1)
    # Probes for small distances, scans for large ones: both must be exact.
    assert_exact(index, ids, hashes, queries, [0, 31, 40, 256])


def test_pdq_shaped_hashes_are_searched_exactly() -> None:
    rng = np.random.default_rng(4)
    shape = PdqShape.create(seed=5)
    hashes = shape.sample(4000, rng)
    copies = 800
    targets = rng.choice(4000, size=copies, replace=False)
    distances = rng.integers(0, 41, size=copies)
    hashes[targets] = flip_bits(hashes[rng.integers(0, 4000, copies)], distances, rng)
    ids = np.arange(4000, dtype=np.int64)
    queries = np.concatenate([near_queries(rng, hashes), shape.sample(20, rng)])
    for plan in ("single", "double"):
        index = probing(HashIndex.build(ids, hashes, chunk_shape=(12, 12)), plan)
        assert_exact(index, ids, hashes, queries, [0, 8, 31, 32, 40, 64])


def test_double_cover_is_exact_across_row_groups_even_when_one_is_crowded() -> None:
    # The double cover counts rows by groups of 65,536 consecutive rows, each given room for
    # twice its share of a query's postings; near-duplicates of one hash stored under the
    # smallest ids (the first rows) crowd the first group past its room.
    rng = np.random.default_rng(6)
    n = 300_000
    hashes = uniform_hashes(n, rng)
    base = uniform_hashes(1, rng)
    crowd = 4000
    hashes[:crowd] = flip_bits(np.repeat(base, crowd, axis=0), rng.integers(0, 41, crowd), rng)
    ids = np.arange(n, dtype=np.int64) * 2
    index = probing(HashIndex.build(ids, hashes, chunk_shape=(12, 16)), "double")
    crowded = flip_bits(np.repeat(base, 4, axis=0), np.array([0, 5, 20, 31]), rng)
    spread = flip_bits(hashes[rng.integers(crowd, n, 8)], rng.integers(0, 41, 8), rng)
    gone = ids[rng.choice(n, size=n // 10, replace=False)]
    gone = np.concatenate([gone, ids[:crowd:3]])
    index.remove(gone)
    live = ~np.isin(ids, gone)
    assert_exact(
        index,
        ids[live],
        hashes[live],
        np.concatenate([crowded, spread, uniform_hashes(4, rng)]),
        [0, 8, 31, 40],
    )


def test_pdq_shaped_generator_makes_hashes_like_pdq() -> None:
    rng = np.random.default_rng(6)
    hashes = PdqShape.create().sample(3000, rng)
    bits = bytes_to_coefficients(hashes)
    assert (bits.sum(axis=1) == 128).all()
    rates = bits.mean(axis=0)
    # Some bits are far more likely to be set than others.
    assert rates.min() < 0.35
    assert rates.max() > 0.65
    # Neighbouring coefficients are correlated.
    corr = np.atleast_2d(np.corrcoef(bits[:, :64].T.astype(np.float64)))
    assert np.mean([corr[i, i + 1] for i in range(63)]) > 0.1
    kept = flip_bits(hashes[:50], np.arange(50), rng, keep_weight=True)
    assert (bytes_to_coefficients(kept).sum(axis=1) == 128).all()
    assert (np.unpackbits(kept ^ hashes[:50], axis=1).sum(axis=1) == np.arange(50) // 2 * 2).all()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.sampled_from([*SHAPES, None]),
    plan=st.sampled_from(["probe", "single", "double", "scan"]),
    merge_threshold=st.sampled_from([1, 7, 50, 10_000]),
    steps=st.lists(
        st.tuples(st.sampled_from(["add", "remove", "readd", "merge"]), st.integers(1, 60)),
        max_size=6,
    ),
    max_distance=st.sampled_from(DISTANCES),
)
def test_any_sequence_of_writes_keeps_search_exact(
    seed: int,
    shape: tuple[int, int] | None,
    plan: str,
    merge_threshold: int,
    steps: list[tuple[str, int]],
    max_distance: int,
) -> None:
    rng = np.random.default_rng(seed)
    model: dict[int, bytes] = {}
    n = int(rng.integers(0, 400))
    ids, hashes = planted(rng, n) if n else (np.empty(0, np.int64), np.empty((0, 32), np.uint8))
    index = HashIndex.build(ids, hashes, chunk_shape=shape, merge_threshold=merge_threshold)
    probing(index, plan)
    model.update(zip(ids.tolist(), (h.tobytes() for h in hashes), strict=True))
    next_id = 10**6
    for action, count in steps:
        known = np.array(sorted(model), dtype=np.int64)
        if action == "add":
            # New ids, near-duplicates of stored hashes, some repeated within the call.
            new = np.arange(next_id, next_id + count, dtype=np.int64)
            new[count // 2 :] = new[: count - count // 2]
            next_id += count
            base = hashes[rng.integers(0, n, count)] if n else uniform_hashes(count, rng)
            added = flip_bits(base, rng.integers(0, 41, count), rng)
            index.add(new, added)
            model.update(zip(new.tolist(), (h.tobytes() for h in added), strict=True))
        elif action == "remove" and known.size:
            gone = rng.choice(known, size=min(count, known.size), replace=False)
            index.remove(np.concatenate([gone, [-(10**9)]]))  # an unknown id too
            for i in gone.tolist():
                del model[i]
        elif action == "readd" and known.size:
            # Remove some ids, then store them again with new hashes.
            again = rng.choice(known, size=min(count, known.size), replace=False)
            index.remove(again)
            fresh = uniform_hashes(again.size, rng)
            index.add(again, fresh)
            model.update(zip(again.tolist(), (h.tobytes() for h in fresh), strict=True))
        elif action == "merge":
            index.merge()
    assert len(index) == len(model)
    live_ids = np.array(sorted(model), dtype=np.int64)
    live = np.frombuffer(b"".join(model[i] for i in live_ids.tolist()), np.uint8).reshape(-1, 32)
    source = live if live.shape[0] else uniform_hashes(1, rng)
    queries = np.concatenate(
        [flip_bits(source[rng.integers(0, source.shape[0], 12)], rng.integers(0, 41, 12), rng)]
    )
    assert_exact(index, live_ids, live, queries, [max_distance])


def test_adding_a_present_id_replaces_its_hash_in_main_and_in_delta() -> None:
    rng = np.random.default_rng(7)
    hashes = uniform_hashes(500, rng)
    ids = np.arange(500, dtype=np.int64)
    index = probing(HashIndex.build(ids, hashes, chunk_shape=(12, 8)))
    new_a, new_b = uniform_hashes(2, rng)
    index.add([10], new_a[None, :])  # 10 was in the main segment
    index.add([10], new_b[None, :])  # now it is in the delta
    assert len(index) == 500
    assert index.search(hashes[10:11], 0)[0].ids.tolist() == []
    assert index.search(new_a[None, :], 0)[0].ids.tolist() == []
    assert index.search(new_b[None, :], 0)[0].ids.tolist() == [10]


def test_an_id_given_twice_in_one_call_keeps_its_last_hash() -> None:
    rng = np.random.default_rng(8)
    first, second, third = uniform_hashes(3, rng)
    index = HashIndex.build([5, 5], np.stack([first, second]))
    assert len(index) == 1
    assert index.search(second[None, :], 0)[0].ids.tolist() == [5]
    assert index.search(first[None, :], 0)[0].ids.tolist() == []
    index.add([6, 6], np.stack([third, first]))
    assert len(index) == 2
    assert index.search(first[None, :], 0)[0].ids.tolist() == [6]


def test_removed_ids_are_not_returned_from_main_or_delta_and_can_return() -> None:
    rng = np.random.default_rng(9)
    hashes = uniform_hashes(300, rng)
    ids = np.arange(300, dtype=np.int64)
    index = probing(HashIndex.build(ids, hashes, chunk_shape=(12, 8)))
    extra = uniform_hashes(1, rng)
    index.add([1000], extra)
    index.remove([3, 1000, 123456])  # one in main, one in delta, one unknown
    assert len(index) == 299
    assert index.search(hashes[3:4], 256)[0].ids.tolist().count(3) == 0
    assert 1000 not in index.search(extra, 256)[0].ids.tolist()
    index.remove([3])  # already gone: ignored
    assert len(index) == 299
    index.add([3], hashes[3:4])
    assert index.search(hashes[3:4], 0)[0].ids.tolist() == [3]
    assert len(index) == 300


def test_reaching_the_merge_threshold_folds_the_delta_into_main() -> None:
    rng = np.random.default_rng(10)
    ids, hashes = planted(rng, 8000)
    index = probing(HashIndex.build(ids[:5000], hashes[:5000], merge_threshold=100))
    index.remove(ids[:40])
    for start in range(5000, 5099, 33):
        index.add(ids[start : start + 33], hashes[start : start + 33])
    assert index._snapshot.delta_ids.shape[0] == 99
    assert index._snapshot.dead_count == 40
    index.add(ids[5099:5100], hashes[5099:5100])
    snapshot = index._snapshot
    assert snapshot.delta_ids.shape[0] == 0
    assert snapshot.dead_count == 0
    assert len(snapshot.main) == len(index) == 5060
    live_ids, live = ids[40:5100], hashes[40:5100]
    assert_exact(index, live_ids, live, near_queries(rng, live, 1), [0, 31, 40])


def test_an_empty_index_finds_nothing() -> None:
    index = HashIndex()
    rng = np.random.default_rng(11)
    assert len(index) == 0
    assert index.nbytes < 4096
    results = index.search(uniform_hashes(3, rng), 256)
    assert [r.ids.tolist() for r in results] == [[], [], []]
    assert index.search(np.empty((0, 32), np.uint8)) == []
    index.add([1], uniform_hashes(1, rng))
    index.remove([1])
    assert len(index) == 0
    assert [r.ids.tolist() for r in index.search(uniform_hashes(2, rng), 256)] == [[], []]


def test_build_of_many_equals_adding_in_pieces() -> None:
    rng = np.random.default_rng(12)
    ids, hashes = planted(rng, 6000)
    built = HashIndex.build(ids, hashes)
    added = HashIndex(merge_threshold=1500)
    for start in range(0, 6000, 700):
        added.add(ids[start : start + 700], hashes[start : start + 700])
    queries = near_queries(rng, hashes, 1)
    for max_distance in (8, 31):
        assert [pairs(m) for m in built.search(queries, max_distance)] == [
            pairs(m) for m in added.search(queries, max_distance)
        ]
    assert len(built) == len(added) == 6000


@pytest.mark.parametrize("count", [40, 131, 336])  # one part, one a thread, four a thread
def test_a_batch_spread_over_threads_equals_one_query_at_a_time(count: int) -> None:
    rng = np.random.default_rng(13)
    ids, hashes = planted(rng, 5000)
    index = probing(HashIndex.build(ids, hashes, chunk_shape=(12, 12)))
    queries = near_queries(rng, hashes, 8)[rng.permutation(336)[:count]]
    batch = index.search(queries, 31)
    assert sum(len(m.ids) for m in batch) > 0
    assert [pairs(m) for m in batch] == [pairs(index.search(q[None, :], 31)[0]) for q in queries]


def test_nbytes_counts_every_array_and_stays_under_100_bytes_a_hash_when_large() -> None:
    rng = np.random.default_rng(14)
    n = 200_000
    index = HashIndex.build(np.arange(n), uniform_hashes(n, rng))
    layout = index._snapshot.main.layout
    assert layout is not None
    expected = n * (32 + 8 + 4 * layout.chunks) + layout.chunks * (2**layout.bits + 1) * 4
    assert expected <= index.nbytes <= expected + n // 8 + 64 * 1024
    assert index.nbytes / n < 100


def test_searches_stay_exact_while_another_thread_writes() -> None:
    rng = np.random.default_rng(15)
    ids, hashes = planted(rng, 6000)
    stable_ids, stable = ids[:3000], hashes[:3000]
    index = probing(HashIndex.build(stable_ids, stable, merge_threshold=400))
    churn_ids, churn = ids[3000:], hashes[3000:]
    removed_for_good = churn_ids[:100]
    index.add(removed_for_good, churn[:100])
    index.remove(removed_for_good)
    queries = np.concatenate([near_queries(rng, stable, 1), churn[:100]])
    expected = [reference(stable_ids, stable, q, 31) for q in queries]
    stop = threading.Event()
    errors: list[str] = []

    def write() -> None:
        # Adds and removes other ids, merging every few hundred rows, until told to stop.
        k = 0
        while not stop.is_set():
            part = slice(100 + (k * 50) % 2900, 100 + (k * 50) % 2900 + 50)
            index.add(churn_ids[part], churn[part])
            index.remove(churn_ids[part][::2])
            k += 1

    def read() -> None:
        while not stop.is_set():
            for i, match in enumerate(index.search(queries, 31)):
                got = pairs(match)
                # Churned ids may come and go; the stable ones must all be there, and the ids
                # removed before the threads started must never be.
                stable_part = [p for p in got if p[1] in stable_set]
                if stable_part != expected[i]:
                    errors.append(f"query {i}: {stable_part} != {expected[i]}")
                if removed_set.intersection(p[1] for p in got):
                    errors.append(f"query {i}: a removed id was returned")

    stable_set = set(stable_ids.tolist())
    removed_set = set(removed_for_good.tolist())
    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert index._snapshot.main.ids.shape[0] > 3000  # merges happened meanwhile


def test_bad_arguments_are_refused() -> None:
    rng = np.random.default_rng(16)
    index = HashIndex.build([1], uniform_hashes(1, rng))
    with pytest.raises(ValueError, match="max_distance"):
        index.search(uniform_hashes(1, rng), 257)
    with pytest.raises(ValueError, match="max_distance"):
        index.search(uniform_hashes(1, rng), -1)
    with pytest.raises(TypeError, match="max_distance"):
        index.search(uniform_hashes(1, rng), 3.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="queries"):
        index.search(uniform_hashes(1, rng)[0])
    with pytest.raises(ValueError, match="queries"):
        index.search(uniform_hashes(1, rng).astype(np.int64))
    with pytest.raises(ValueError, match="same length"):
        index.add([1, 2], uniform_hashes(1, rng))
    with pytest.raises(ValueError, match="ids"):
        index.add(np.array([[1]]), uniform_hashes(1, rng))
    with pytest.raises(ValueError, match="merge_threshold"):
        HashIndex(merge_threshold=0)


def test_benchmark_dataset_plants_near_duplicates_of_stored_hashes() -> None:
    for kind in ("uniform", "pdq"):
        data = make_dataset(kind, 2000, 40, seed=1)
        assert data.hashes.shape == (2000, 32)
        assert np.unique(data.ids).shape[0] == 2000
        index = HashIndex.build(data.ids, data.hashes)
        found = [len(m.ids) for m in index.search(data.queries, 31)]
        assert min(found[: data.near_queries]) >= 1  # every near-duplicate query matches


@pytest.mark.parametrize("kind", ["uniform", "pdq"])
def test_the_shape_chosen_from_the_data_is_exact(kind: str) -> None:
    # From 250,000 rows on the shape is chosen on rows met estimated from the data (17 chunks
    # of 15 bits on both kinds at this size, probed at 1 bit); it must stay exact.
    rng = np.random.default_rng(9)
    data = make_dataset(kind, 300_000, 24, seed=9)
    index = HashIndex.build(data.ids, data.hashes)
    assert index._snapshot.main.layout is not None
    queries = np.concatenate([data.queries, near_queries(rng, data.hashes, per_distance=1)[::3]])
    assert_exact(index, data.ids, data.hashes, queries, [31])
